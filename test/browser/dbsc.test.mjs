// Device Bound Session Credentials in a real Chromium: the browser registers a key after a
// cookie-mode sign-in and renews the cookie itself, proving that key; a copied cookie renews
// nothing. Run with `npm run test:browser` (Chromium started with DBSC_CHROMIUM_FLAGS).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, generateKeyPair, SignJWT, exportJWK } from 'jose';
import { launchChromium, newAccount, newContext, PORTS, startLatchkey } from '../support/browser-harness.mjs';

/**
 * Tokens of six seconds: a bound cookie goes a second before its token, and its Max-Age is whole
 * seconds, so it lives four to five; the refreshes counted below are per cookie lifetime.
 */
const TTL_SECONDS = 6;
const TTL_MS = TTL_SECONDS * 1000;
const COOKIE_LIFETIME_MS = { min: (TTL_SECONDS - 2) * 1000, max: (TTL_SECONDS - 1) * 1000 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// A server of its own, beside the other browser file's ports.
const PORT = PORTS.api + 3;
const API = `http://localhost:${PORT}`;

let server;
let browser;

before(async () => {
  browser = await launchChromium({ dbsc: true });
  server = await startLatchkey({
    port: PORT,
    inspectorPort: PORTS.inspector + 2,
    ttlSeconds: TTL_SECONDS,
    logName: 'latchkey-dbsc.log',
  });
}, { timeout: 180_000 });

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The server's DBSC log lines about `sessionId` so far. */
function dbscLog(sessionId) {
  return readFileSync(server.logPath, 'utf8')
    .split('\n')
    .filter((line) => line.includes('latchkey: dbsc') && line.includes(sessionId));
}

async function waitForLog(sessionId, pattern, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (dbscLog(sessionId).some((line) => pattern.test(line))) return;
    await sleep(100);
  }
  assert.fail(`no log line ${pattern} for session ${sessionId}: ${dbscLog(sessionId).join(' | ')}`);
}

async function registerAccount(prefix) {
  const account = newAccount(prefix);
  const response = await fetch(`${API}/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(account),
  });
  assert.equal(response.status, 201);
  return account;
}

/**
 * A page on latchkey's origin that signs in in cookie mode with a plain fetch (no client, no DPoP
 * key): the session the browser then binds is bound through DBSC alone.
 */
async function plainCookieSignIn(context, account) {
  const page = await context.newPage();
  await page.goto(`${API}/health`);
  const answer = await page.evaluate(async ({ email, password }) => {
    const response = await fetch('/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password, mode: 'cookie' }),
      credentials: 'include',
    });
    return { status: response.status, body: await response.json() };
  }, account);
  assert.equal(answer.status, 200);
  return { page, sessionId: answer.body.session_id };
}

/** The page's own strict request, outside any client: the cookie the browser has, nothing else. */
function accountFromPage(page) {
  return page.evaluate(async () => {
    const response = await fetch('/api/account', { credentials: 'include' });
    return response.status;
  });
}

async function tokenCookie(context) {
  return (await context.cookies(API)).find((cookie) => cookie.name === 'latchkey_at');
}

describe('DBSC in Chromium', () => {
  it('registers after a cookie-mode sign-in, and the browser alone renews: one refresh per lifetime, each proven', { timeout: 90_000 }, async () => {
    const context = await newContext(browser);
    const renewCalls = [];
    context.on('request', (request) => {
      if (new URL(request.url()).pathname === '/auth/renew') renewCalls.push(request.url());
    });
    const account = await registerAccount('dbsc-life');
    const { page, sessionId } = await plainCookieSignIn(context, account);
    await waitForLog(sessionId, /registered session/);
    const registered = await tokenCookie(context);
    assert.ok(registered.expires > 0 && registered.expires * 1000 <= Date.now() + TTL_MS + 1000, 'the bound cookie lives as long as its token');

    // The page only uses the API, once a second, for three token lifetimes.
    const statuses = [];
    const started = Date.now();
    while (Date.now() - started < 3 * TTL_MS) {
      statuses.push(await accountFromPage(page));
      await sleep(1000);
    }
    const elapsedMs = Date.now() - started;
    assert.ok(statuses.every((status) => status === 200), `every request of the page answered 200: ${statuses}`);
    assert.equal(renewCalls.length, 0, 'no page script asked for a renewal');

    // One refresh each time the cookie was gone, not one per request, each a single request with
    // a proof over the challenge sent ahead (no 403 asking for one).
    const refreshed = dbscLog(sessionId).filter((line) => /: refreshed \(proof verified\)/.test(line));
    const fewest = Math.floor(elapsedMs / COOKIE_LIFETIME_MS.max) - 1;
    const most = Math.ceil(elapsedMs / COOKIE_LIFETIME_MS.min) + 1;
    assert.ok(refreshed.length >= fewest && refreshed.length <= most, `${refreshed.length} refreshes in ${elapsedMs} ms`);
    assert.ok(refreshed.length < statuses.length / 2, 'far fewer refreshes than requests');
    assert.equal(dbscLog(sessionId).filter((line) => /proof asked for/.test(line)).length, 0, 'no refresh needed a second request');
    assert.ok(dbscLog(sessionId).every((line) => !/ended/.test(line)), 'the session never ended');
    const { gen, sid } = decodeJwt((await tokenCookie(context)).value);
    assert.equal(sid, sessionId);
    assert.equal(gen, 1 + refreshed.length, 'each refresh minted the next generation, and nothing else did');
    await context.close();
  });

  it('a copied cookie renews nothing, in another profile or from Node, and the original session goes on', { timeout: 90_000 }, async () => {
    const original = await newContext(browser);
    const account = await registerAccount('dbsc-copy');
    const { page, sessionId } = await plainCookieSignIn(original, account);
    await waitForLog(sessionId, /registered session/);
    const copied = await tokenCookie(original);
    const { sub: userId } = decodeJwt(copied.value);

    // Another profile of the same Chromium, with the cookie put into its jar: it has no DBSC
    // session, so once the token expires its requests carry an expired token and are refused.
    const thief = await newContext(browser);
    await thief.addCookies([{ ...copied, expires: Math.floor(Date.now() / 1000) + 3600 }]);
    const thiefPage = await thief.newPage();
    await thiefPage.goto(`${API}/health`);
    await sleep(TTL_MS + 500);
    const stolenRenewal = await thiefPage.evaluate(async () => {
      const response = await fetch('/auth/renew', { method: 'POST', credentials: 'include' });
      return { status: response.status, code: (await response.json()).code };
    });
    assert.deepEqual(stolenRenewal, { status: 401, code: 'invalid_dpop_proof' });

    // From Node: the refresh URL, naming the session, with proofs by a key of its own.
    const identifier = `${userId}.${sessionId}`;
    const asked = await fetch(`${API}/auth/dbsc/refresh`, { method: 'POST', headers: { 'sec-secure-session-id': identifier } });
    assert.equal(asked.status, 403);
    const challenge = /^"([^"]+)"/.exec(asked.headers.get('secure-session-challenge'))[1];
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    for (const withJwk of [false, true]) {
      const header = { alg: 'ES256', typ: 'dbsc+jwt', ...(withJwk ? { jwk: await exportJWK(publicKey) } : {}) };
      const proof = await new SignJWT({ jti: challenge }).setProtectedHeader(header).sign(privateKey);
      const refused = await fetch(`${API}/auth/dbsc/refresh`, {
        method: 'POST',
        headers: { 'sec-secure-session-id': identifier, 'secure-session-response': proof },
      });
      assert.equal(refused.status, 403, 'a proof by another key is asked again');
    }
    const byCookie = await fetch(`${API}/auth/renew`, { method: 'POST', headers: { cookie: `latchkey_at=${copied.value}`, origin: API } });
    assert.equal(byCookie.status, 401);

    // The original goes on: its browser refreshes with its own key.
    assert.equal(await accountFromPage(page), 200);
    assert.equal(decodeJwt((await tokenCookie(original)).value).gen, 2);
    assert.ok(dbscLog(sessionId).some((line) => /refreshed \(proof verified\)/.test(line)));
    await original.close();
    await thief.close();
  });

  it('logout-all elsewhere ends the browser session (continue false), and the demo page learns why', { timeout: 90_000 }, async () => {
    const context = await newContext(browser);
    const renewAnswers = [];
    const isRenewal = (request) => new URL(request.url()).pathname === '/auth/renew' && request.method() === 'POST';
    const sentAt = new Map();
    context.on('request', (request) => {
      if (isRenewal(request)) sentAt.set(request, Date.now());
    });
    context.on('response', async (response) => {
      if (!isRenewal(response.request())) return;
      const answer = { status: response.status(), sentAt: sentAt.get(response.request()), answeredAt: Date.now() };
      renewAnswers.push(answer);
      answer.body = await response.json().catch(() => null);
    });
    const account = await registerAccount('dbsc-end');
    const page = await context.newPage();
    await page.goto(`${API}/`);
    await page.waitForSelector('#app[data-state="signed-out"]');
    await page.fill('#signin-email', account.email);
    await page.fill('#signin-password', account.password);
    await page.check('#signin-form input[name="mode"][value="cookie"]');
    await page.click('#signin-form button[type="submit"]');
    await page.waitForSelector('#app[data-state="signed-in"]');
    const { sid: sessionId } = decodeJwt((await tokenCookie(context)).value);
    await waitForLog(sessionId, /registered session/);
    // The page's client leaves renewing to the browser, and keeps signed in across a lifetime.
    await waitForLog(sessionId, /refreshed \(proof verified\)/, 3 * TTL_MS);
    assert.equal(await page.getAttribute('#app', 'data-state'), 'signed-in');
    // The client's own looks (before signing in, one 401 for the missing cookie) minted nothing:
    // each was answered with the token the browser had, marked device-bound.
    const deadline = Date.now() + 3 * TTL_MS;
    while (!renewAnswers.some((answer) => answer.status === 200) && Date.now() < deadline) await sleep(100);
    const looks = renewAnswers.filter((answer) => answer.status === 200);
    assert.ok(looks.length > 0 && looks.every((answer) => answer.body?.device_bound === true), JSON.stringify(renewAnswers));
    // The client looks only once the token it was told about has expired (the browser refreshes
    // then), never ahead of expiry as it renews an unbound session. Judged over a look that
    // followed an answer with a few seconds to run, where the two schedules differ.
    const followsLongAnswer = () =>
      renewAnswers.some((answer, i) => answer.body?.expires_in >= 3 && renewAnswers[i + 1]?.body !== undefined);
    const lookDeadline = Date.now() + 4 * TTL_MS;
    while (!followsLongAnswer() && Date.now() < lookDeadline) await sleep(100);
    assert.ok(followsLongAnswer(), JSON.stringify(renewAnswers));
    const answered = renewAnswers.filter((answer) => answer.status === 200);
    for (let i = 0; i + 1 < answered.length; i++) {
      const { answeredAt, body } = answered[i];
      assert.ok(answered[i + 1].sentAt >= answeredAt + body.expires_in * 1000 - 500, `look ${i + 1} came before the token expired`);
    }
    // (Read between two counts of the log: the browser may refresh meanwhile.)
    const refreshes = () => dbscLog(sessionId).filter((line) => /refreshed \(proof verified\)/.test(line)).length;
    const before = refreshes();
    const minted = decodeJwt((await tokenCookie(context)).value).gen - 1;
    assert.ok(minted >= before && minted <= refreshes(), `only the browser minted: ${minted} generations, ${before} refreshes`);

    // Another device of the same user signs out everywhere.
    const login = await fetch(`${API}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(account),
    });
    const { access_token: token } = await login.json();
    const logoutAll = await fetch(`${API}/auth/logout-all`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(logoutAll.status, 204);

    await page.waitForSelector('#signedout-reason[data-code="session_revoked"]:not([hidden])', { timeout: 3 * TTL_MS });
    await waitForLog(sessionId, /: end \(session_revoked\)/);
    assert.equal(await tokenCookie(context), undefined, 'the cookie is gone');
    await context.close();
  });
});
