// Browser tests: the demo page, the client and the HTTP rules of API.md "Browsers", in headless
// Chromium against `npm start`. Run with `npm run test:browser`.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { calculateJwkThumbprint } from 'jose';
import {
  ALLOWED_PAGE,
  API,
  ARTIFACTS,
  boundKeyOf,
  countRenewals,
  foreignProofKey,
  launchChromium,
  linkInMail,
  newAccount,
  newContext,
  OTHER_PAGE,
  PORTS,
  proofFor,
  proofKeyThumbprint,
  servePage,
  startLatchkey,
  storedProofKey,
  TTL_SECONDS,
} from '../support/browser-harness.mjs';

const TTL_MS = TTL_SECONDS * 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let server;
let browser;
const pageServers = [];
/** Uncaught errors of any page: a test fails if its pages threw. */
let pageErrors = [];

function watchErrors(page) {
  page.on('pageerror', (error) => pageErrors.push(`${page.url()}: ${error.message}`));
}

before(async () => {
  browser = await launchChromium();
  server = await startLatchkey();
  // A page on another origin that loads the client from latchkey, as an app would.
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>app</title></head><body>
<script type="module">
import * as latchkey from '${API}/client.js';
window.latchkey = latchkey;
document.body.dataset.ready = 'true';
</script></body></html>`;
  pageServers.push(await servePage(PORTS.allowedPage, html), await servePage(PORTS.otherPage, html));
}, { timeout: 180_000 });

afterEach(() => {
  const errors = pageErrors;
  pageErrors = [];
  assert.deepEqual(errors, [], 'no page threw');
});

after(async () => {
  await browser?.close();
  await Promise.all(pageServers.map((page) => page.close()));
  await server?.stop();
});

/** Opens the demo page and waits until it knows whether it is signed in. Page errors fail the test. */
async function openDemo(context) {
  const page = await context.newPage();
  watchErrors(page);
  await page.goto(`${API}/`);
  await page.waitForSelector('#app[data-state="signed-in"], #app[data-state="signed-out"]');
  return page;
}

async function signUp(page, account) {
  await page.fill('#signup-email', account.email);
  await page.fill('#signup-password', account.password);
  await page.click('#signup-form button[type="submit"]');
  await page.waitForFunction(() => document.querySelector('#form-message')?.textContent?.includes('Account created'));
}

async function signIn(page, account, mode) {
  await page.fill('#signin-email', account.email);
  await page.fill('#signin-password', account.password);
  await page.check(`#signin-form input[name="mode"][value="${mode}"]`);
  await page.click('#signin-form button[type="submit"]');
  await page.waitForSelector('#app[data-state="signed-in"]');
  await page.waitForFunction((email) => document.querySelector('#account-email')?.textContent === email, account.email);
}

/** A demo page of `context`, signed in to a new account. */
async function signedInDemo(context, mode, prefix) {
  const page = await openDemo(context);
  const account = newAccount(prefix);
  await signUp(page, account);
  await signIn(page, account, mode);
  return { page, account };
}

/** Renewals this tab has seen: its own and those handed over by other tabs. */
async function renewalsSeen(page) {
  const [here, elsewhere] = await Promise.all([page.textContent('#renewals-here'), page.textContent('#renewals-elsewhere')]);
  return { here: Number(here), elsewhere: Number(elsewhere), total: Number(here) + Number(elsewhere) };
}

async function waitForRenewals(page, total, timeout = 3 * TTL_MS) {
  await page.waitForFunction(
    (wanted) =>
      Number(document.querySelector('#renewals-here')?.textContent) +
        Number(document.querySelector('#renewals-elsewhere')?.textContent) >=
      wanted,
    total,
    { timeout },
  );
}

const stateOf = (page) => page.getAttribute('#app', 'data-state');

/** A phone's screen, in CSS pixels. */
const PHONE = { width: 390, height: 844 };

/**
 * What elements matching `selector` say: their code (data-code), their heading (`strong`), their
 * words without the detail line, and the detail line that names the code.
 */
function wordsAndCodes(page, selector) {
  return page.$$eval(selector, (elements) =>
    elements.map((element) => {
      const words = element.cloneNode(true);
      const codeLine = words.querySelector('.code-line');
      codeLine?.remove();
      return {
        code: element.dataset.code,
        title: element.querySelector('strong')?.textContent ?? '',
        words: words.textContent,
        codeLine: codeLine?.textContent ?? '',
      };
    }),
  );
}

/** Every date on the page is written one way: the demo's format, in the browser's locale. */
async function assertOneDateFormat(page) {
  const dates = await page.$$eval('time', (times) => {
    const format = new Intl.DateTimeFormat(undefined, {
      day: 'numeric',
      month: 'short',
      year: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    return times.map((time) => ({ shown: time.textContent, expected: format.format(new Date(time.dateTime)) }));
  });
  assert.ok(dates.length > 0, 'the page shows dates');
  for (const date of dates) assert.equal(date.shown, date.expected);
}

/** The demo page's sessions list, emptied and loaded afresh: a strict route answered its client. */
async function sessionsListLoads(page) {
  await page.evaluate(() => document.querySelector('#sessions')?.replaceChildren());
  await page.click('#refresh-lists');
  await page.waitForSelector('#sessions tr');
}

/** A request from the page with the cookie and nothing else (no DPoP proof), outside the client. */
function bareCookieFetch(page, path) {
  return page.evaluate(async (path) => {
    const response = await fetch(path, { credentials: 'include' });
    return { status: response.status, code: (await response.json()).code };
  }, path);
}

/**
 * The key the client of `mode` keeps for latchkey in the IndexedDB of `page`'s origin: a P-256
 * private key that not even the page's own scripts can export. Returns its thumbprint.
 */
async function assertUnexportableKey(page, mode) {
  const stored = await storedProofKey(page, `${mode}:${API}`);
  assert.ok(stored, `the ${mode} client stored a key`);
  assert.deepEqual(
    {
      isCryptoKey: stored.isCryptoKey,
      type: stored.type,
      extractable: stored.extractable,
      algorithm: stored.algorithm,
      export: stored.export,
    },
    {
      isCryptoKey: true,
      type: 'private',
      extractable: false,
      algorithm: { name: 'ECDSA', namedCurve: 'P-256' },
      export: { jwk: 'InvalidAccessError', pkcs8: 'InvalidAccessError' },
    },
  );
  return calculateJwkThumbprint(stored.jwk);
}

/** The token the browser holds now: the last renewal's in bearer mode, the cookie's in cookie mode. */
async function currentToken(context, mode, renewals) {
  if (mode === 'bearer') {
    await renewals.settled();
    return renewals.responses.at(-1).accessToken;
  }
  return (await context.cookies(API)).find((cookie) => cookie.name === 'latchkey_at')?.value;
}

/** Every renewal in `responses` was answered 200 with a bound token, its request signed by the key `jkt`. */
async function assertBoundRenewals(responses, jkt, label = '') {
  assert.ok(responses.length > 0, `${label}renewals happened`);
  for (const response of responses) {
    assert.equal(response.status, 200, `${label}renewal answered ${response.status}`);
    assert.equal(response.tokenType, 'DPoP', `${label}the renewal's token is bound`);
    assert.ok(response.proof, `${label}the renewal carried a DPoP proof`);
    assert.equal(await proofKeyThumbprint(response.proof), jkt, `${label}signed by the stored key`);
  }
}

describe('the demo page', () => {
  it('signs in, stays signed in past expiry through renewal, and keeps the cookie from scripts', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const renewals = countRenewals(context);
    const { page } = await signedInDemo(context, 'cookie', 'demo');
    // (Opening the page signed out tried the cookie once: a 401 missing_token before this point.)
    const answered = renewals.responses.length;

    await sleep(TTL_MS * 1.75);
    assert.equal(await stateOf(page), 'signed-in');
    assert.ok((await renewalsSeen(page)).here >= 1, 'the page renewed on its own');
    const statuses = renewals.responses.slice(answered).map((response) => response.status);
    assert.ok(statuses.length >= 1 && statuses.every((status) => status === 200), `renewals answered ${statuses}`);
    // Past the first token's expiry, a strict route still answers the page's client for this session.
    await sessionsListLoads(page);
    // The cookie alone, without a proof of the page's key, is refused, and that changes nothing.
    assert.deepEqual(await bareCookieFetch(page, '/api/account'), { status: 401, code: 'invalid_dpop_proof' });
    assert.equal(await stateOf(page), 'signed-in');
    assert.notEqual(await page.textContent('#countdown'), '0.0 s');

    // The session is bound to the key the page keeps (the proof goes beside the cookie).
    const jkt = await assertUnexportableKey(page, 'cookie');
    await renewals.settled();
    await assertBoundRenewals(renewals.responses.slice(answered), jkt);
    assert.equal(boundKeyOf(await currentToken(context, 'cookie', renewals)), jkt);

    // The token is in an HttpOnly cookie: the page's scripts cannot read it.
    assert.equal(await page.evaluate(() => document.cookie), '');
    const [cookie] = await context.cookies(API);
    assert.deepEqual(
      { name: cookie.name, httpOnly: cookie.httpOnly, secure: cookie.secure, sameSite: cookie.sameSite, path: cookie.path },
      { name: 'latchkey_at', httpOnly: true, secure: true, sameSite: 'Strict', path: '/' },
    );

    // Let the lists catch up with the latest renewal, then keep a picture of the page.
    await page.click('#refresh-lists');
    await page.waitForSelector('#sessions tr');
    await page.screenshot({ path: join(ARTIFACTS, 'demo-signed-in.png'), fullPage: true });
    await context.close();
  });

  it('the replay button: a copy of the token without the key is refused, and nothing is revoked', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const renewals = countRenewals(context);
    const { page } = await signedInDemo(context, 'bearer', 'replay');
    // (Opening the page signed out tried the cookie once: a 401 missing_token before this point.)
    const answered = renewals.responses.length;
    for (const wanted of [1, 2]) {
      await page.click('#renew-now');
      await waitForRenewals(page, wanted);
    }
    assert.equal(await page.isEnabled('#replay'), true);
    await page.click('#replay');
    await page.waitForSelector('#replay-result[data-code="invalid_dpop_proof"]', { state: 'attached' });
    const explained = await page.textContent('#replay-result');
    assert.match(explained, /401 invalid_dpop_proof/);
    assert.match(explained, /without a proof of (that|this browser's) key/);
    assert.match(explained, /Nothing was revoked/);

    // The page's session goes on: it renews, and the refusal is in the security events.
    const seen = await renewalsSeen(page);
    await page.click('#renew-now');
    await waitForRenewals(page, seen.total + 1);
    assert.equal(await stateOf(page), 'signed-in');
    await page.waitForFunction(
      () => {
        if (!document.querySelector('#events')?.textContent?.includes('proof_failed')) {
          document.querySelector('#refresh-lists')?.click();
          return false;
        }
        return true;
      },
      undefined,
      { timeout: 10_000, polling: 500 },
    );
    assert.doesNotMatch(await page.textContent('#events'), /reuse_detected/);
    await renewals.settled();
    // The replay itself went out from the page too, as a bare Bearer token: the one refusal.
    const sent = renewals.responses.slice(answered);
    assert.deepEqual(
      sent.filter((response) => response.status !== 200).map((response) => [response.status, response.proof]),
      [[401, null]],
    );
    await assertBoundRenewals(
      sent.filter((response) => response.status === 200),
      await assertUnexportableKey(page, 'bearer'),
    );
    await page.screenshot({ path: join(ARTIFACTS, 'demo-replay-refused.png'), fullPage: true });
    await context.close();
  });

  it('on a phone: the sessions list fits 390 px, a loading state comes before the first answer, and codes read as words', { timeout: 90_000 }, async () => {
    const account = newAccount('phone');
    // A desktop browser of the same user first, so that the phone lists two sessions.
    const desktop = await newContext(browser);
    const onDesktop = await openDemo(desktop);
    await signUp(onDesktop, account);
    await signIn(onDesktop, account, 'bearer');
    // A failed sign-in, for the events list.
    const failed = await fetch(`${API}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: account.email, password: 'not the password at all' }),
    });
    assert.equal(failed.status, 401);

    const phone = await newContext(browser, { viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const signingIn = await openDemo(phone);
    await signIn(signingIn, account, 'cookie');
    await signingIn.close();

    // Opened again, the page asks whether the cookie still signs in (POST /auth/renew). That first
    // answer is held back: meanwhile the page says it is checking, instead of showing an empty card.
    let release;
    const held = new Promise((resolve) => {
      release = resolve;
    });
    let asked;
    const renewAsked = new Promise((resolve) => {
      asked = resolve;
    });
    let first = true;
    await phone.route(`${API}/auth/renew`, async (route) => {
      if (first) {
        first = false;
        asked();
        await held;
      }
      await route.continue();
    });
    const page = await phone.newPage();
    watchErrors(page);
    await page.goto(`${API}/`);
    await renewAsked;
    assert.equal(await page.isVisible('#loading'), true, 'the loading state shows while the first answer is awaited');
    assert.match(await page.textContent('#loading'), /Checking whether you are signed in/);
    assert.equal(await stateOf(page), 'loading');
    for (const view of ['#signed-in-view', '#signed-out-view', '#activity']) assert.equal(await page.isVisible(view), false, `${view} waits`);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-phone-loading.png') });
    release();
    await page.waitForSelector('#app[data-state="signed-in"]');
    assert.equal(await page.isVisible('#loading'), false);
    await page.waitForFunction(() => document.querySelectorAll('#sessions tr').length === 2);
    await page.waitForSelector('#events li[data-code="login_failed"]', { state: 'attached' });

    // Every Revoke button is on the screen, and nothing is wider than it.
    const revokes = await page.$$('#sessions button');
    assert.equal(revokes.length, 2);
    for (const revoke of revokes) {
      await revoke.scrollIntoViewIfNeeded();
      const box = await revoke.boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= PHONE.width, `a Revoke button at ${JSON.stringify(box)}`);
    }
    const widths = await page.evaluate(() => ({ document: document.documentElement.scrollWidth, body: document.body.scrollWidth }));
    assert.ok(widths.document <= PHONE.width && widths.body <= PHONE.width, `no horizontal scrolling: ${JSON.stringify(widths)}`);

    // Events in words, each with its code in a detail line.
    const events = await wordsAndCodes(page, '#events li');
    assert.ok(events.length >= 3, JSON.stringify(events));
    assert.deepEqual(
      events.filter((event) => ['login', 'login_failed'].includes(event.code)).map((event) => [event.code, event.title]),
      [
        ['login', 'Signed in'],
        ['login_failed', 'Failed sign-in'],
        ['login', 'Signed in'],
      ],
    );
    for (const event of events) {
      assert.doesNotMatch(event.words, /\b[a-z]+_[a-z_]+\b/, `"${event.words}" has no code in it`);
      assert.match(event.codeLine, new RegExp(`\\b${event.code}\\b`));
    }
    await assertOneDateFormat(page);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-phone.png'), fullPage: true });

    // The same page at a desktop width.
    await onDesktop.click('#refresh-lists');
    await onDesktop.waitForFunction(() => document.querySelectorAll('#sessions tr').length === 2);
    await onDesktop.waitForSelector('#events li[data-code="login_failed"]', { state: 'attached' });
    await assertOneDateFormat(onDesktop);
    await onDesktop.screenshot({ path: join(ARTIFACTS, 'demo-desktop.png'), fullPage: true });

    // Signing out everywhere says so in words, here and, at its next renewal, on the desktop.
    await page.click('#sign-out-everywhere');
    await page.waitForSelector('#signedout-reason[data-code="logout_all"]:not([hidden])');
    const [reason] = await wordsAndCodes(page, '#signedout-reason');
    assert.equal(reason.title, 'Signed out everywhere');
    assert.doesNotMatch(reason.words, /logout_all/);
    assert.match(reason.codeLine, /logout_all/);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-phone-signed-out.png'), fullPage: true });
    await onDesktop.waitForSelector('#signedout-reason[data-code="session_revoked"]:not([hidden])', { timeout: 3 * TTL_MS });
    const [revoked] = await wordsAndCodes(onDesktop, '#signedout-reason');
    assert.equal(revoked.title, 'Session revoked');
    assert.doesNotMatch(revoked.words, /session_revoked/);
    await phone.close();
    await desktop.close();
  });
});

describe('a session bound to the browser\'s key', () => {
  it('a token copied out of the page cannot renew from elsewhere, with or without a proof by another key; the page goes on', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const renewals = countRenewals(context);
    const page = await context.newPage();
    watchErrors(page);
    await page.goto(ALLOWED_PAGE);
    await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
    const account = newAccount('copied');
    // What a script in the page can do: read the token (bearer mode) and send it away.
    const copied = await page.evaluate(
      async ({ api, email, password }) => {
        const client = window.latchkey.createClient({ baseUrl: api, mode: 'bearer', clientLabel: 'copied token' });
        window.client = client;
        await client.register(email, password);
        const { sessionId } = await client.login(email, password);
        return { sessionId, token: client.accessToken };
      },
      { api: API, ...account },
    );
    const jkt = await assertUnexportableKey(page, 'bearer');
    assert.equal(boundKeyOf(copied.token), jkt, 'the login bound the session to the stored key');

    const thief = await foreignProofKey();
    const renewUrl = `${API}/auth/renew`;
    /** The copied token sent to POST /auth/renew from this process, every way it could go. */
    const replay = async (token) => {
      const outcomes = [];
      for (const [scheme, withProof] of [['Bearer', false], ['Bearer', true], ['DPoP', false], ['DPoP', true]]) {
        const headers = { authorization: `${scheme} ${token}` };
        if (withProof) headers.dpop = await proofFor(thief, { method: 'POST', url: renewUrl, token });
        const response = await fetch(renewUrl, { method: 'POST', headers });
        const body = await response.json();
        outcomes.push({
          as: `${scheme}${withProof ? ' with a proof by another key' : ''}`,
          status: response.status,
          code: body.code,
          challenge: response.headers.get('www-authenticate')?.split(',')[0],
          token: body.access_token,
        });
      }
      return outcomes;
    };
    const refused = (as) => ({ as, status: 401, code: 'invalid_dpop_proof', challenge: 'DPoP error="invalid_dpop_proof"', token: undefined });
    const everyWay = ['Bearer', 'Bearer with a proof by another key', 'DPoP', 'DPoP with a proof by another key'];

    // While the copy is the current token (unbound, it would renew: rule 5) ...
    assert.deepEqual(await replay(copied.token), everyWay.map(refused));
    // ... and once the page has renewed past it (unbound, rule 6's grace or reuse detection).
    await page.waitForFunction((token) => window.client.accessToken !== token, copied.token, { timeout: 2 * TTL_MS });
    assert.deepEqual(await replay(copied.token), everyWay.map(refused));
    // Nor can the copy sign the session out.
    const logout = await fetch(`${API}/auth/logout`, {
      method: 'POST',
      headers: { authorization: `DPoP ${copied.token}`, dpop: await proofFor(thief, { method: 'POST', url: `${API}/auth/logout`, token: copied.token }) },
    });
    assert.equal(logout.status, 401);

    // The page's session is untouched: same session, renewing with its key, not revoked; the
    // refusals are one coalesced proof_failed event, and no reuse was detected.
    const after = await page.evaluate(async () => {
      const { client } = window;
      const renewed = await client.renew();
      const me = await (await client.fetch('/api/me')).json();
      const sessions = await client.sessions();
      const events = await client.events();
      return { renewed, signedIn: client.signedIn, sessionId: client.sessionId, me, sessions, events, token: client.accessToken };
    });
    assert.equal(after.renewed, true);
    assert.equal(after.signedIn, true);
    assert.equal(after.sessionId, copied.sessionId);
    assert.equal(after.me.session_id, copied.sessionId);
    assert.deepEqual(after.sessions.map((session) => [session.id, session.current]), [[copied.sessionId, true]]);
    assert.equal(boundKeyOf(after.token), jkt);
    const types = after.events.map((event) => event.type);
    assert.equal(types.filter((type) => type === 'proof_failed').length, 1, `events: ${types}`);
    assert.deepEqual(types.filter((type) => !['login', 'proof_failed'].includes(type)), [], `events: ${types}`);
    await renewals.settled();
    await assertBoundRenewals(renewals.responses, jkt);
    await context.close();
  });
});

describe('emailed links', () => {
  /** POST /auth/login from outside the browser: the status only. */
  const loginStatus = async (email, password) =>
    (
      await fetch(`${API}/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password }),
      })
    ).status;

  it('forgot password, clicked through: the link from the mail file, a new password, signed in', { timeout: 90_000 }, async () => {
    const context = await newContext(browser);
    const { page: first, account } = await signedInDemo(context, 'cookie', 'forgot');
    // Another device of the same user, signed in before the reset.
    const otherDevice = await newContext(browser);
    const other = await openDemo(otherDevice);
    await signIn(other, account, 'bearer');
    await first.click('#sign-out');
    await first.waitForSelector('#app[data-state="signed-out"]');

    await first.click('#forgot summary');
    await first.fill('#forgot-email', account.email);
    await first.click('#forgot-form button[type="submit"]');
    await first.waitForFunction(() => document.querySelector('#form-message')?.textContent?.includes('on its way'));

    // The local send_email binding stored the message as a file and logged its path.
    const mail = await server.mailTo(account.email, 'Reset your password');
    const link = linkInMail(mail.raw, 'reset');
    assert.match(link, new RegExp(`^${API}/#reset=`), 'the link is built from APP_URL');
    assert.match(mail.raw, /Content-Type: text\/html/, 'an HTML part beside the text');

    // Opened from the mail, in a new tab, as a mail client would.
    const page = await context.newPage();
    watchErrors(page);
    await page.goto(link);
    await page.waitForSelector('#reset-form:not([hidden])');
    assert.equal(new URL(page.url()).hash, '', 'the token left the address bar at once');
    const newPassword = 'a fresh passphrase from the reset link';
    await page.fill('#reset-password', newPassword);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-reset-password.png'), fullPage: true });
    await page.click('#reset-form button[type="submit"]');
    await page.waitForSelector('#app[data-state="signed-in"]');
    await page.waitForFunction((email) => document.querySelector('#account-email')?.textContent === email, account.email);
    // Following the link proved the mailbox.
    await page.waitForSelector('#email-status[data-verified="true"]');
    assert.equal(await page.isVisible('#reset-form'), false);

    assert.equal(await loginStatus(account.email, account.password), 401, 'the old password is dead');
    assert.equal(await loginStatus(account.email, newPassword), 200, 'the new password works');
    // The other device was signed out by the reset, and says why at its next renewal.
    await other.waitForSelector('#signedout-reason[data-code="session_revoked"]:not([hidden])', { timeout: 3 * TTL_MS });

    // The link worked once: opened again, it is refused and the page says so.
    const again = await context.newPage();
    watchErrors(again);
    await again.goto(link);
    await again.fill('#reset-password', `${newPassword} again`);
    await again.click('#reset-form button[type="submit"]');
    await again.waitForFunction(() => document.querySelector('#form-message')?.textContent?.includes('invalid_reset_token'));
    await context.close();
    await otherDevice.close();
  });

  it('sign up, then verify: the link from the mail file marks the address verified', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const { page, account } = await signedInDemo(context, 'bearer', 'verify');
    await page.waitForSelector('#email-status[data-verified="false"]');
    assert.equal(await page.isVisible('#resend-verification'), true);

    const mail = await server.mailTo(account.email, 'Confirm your email address');
    await page.goto(linkInMail(mail.raw, 'verify'));
    await page.waitForFunction(() => document.querySelector('#form-message')?.textContent?.includes('verified'));
    await page.waitForSelector('#app[data-state="signed-in"]');
    await page.waitForSelector('#email-status[data-verified="true"]');
    assert.equal(await page.isVisible('#resend-verification'), false);
    await context.close();
  });
});

describe('renewal across tabs', () => {
  for (const mode of ['bearer', 'cookie']) {
    it(`five tabs whose tokens expire together renew once, in ${mode} mode`, { timeout: 90_000 }, async () => {
      const context = await newContext(browser);
      const renewals = countRenewals(context);
      const { page: first } = await signedInDemo(context, mode, `tabs-${mode}`);
      const answered = renewals.responses.length;
      const others = [];
      for (let i = 0; i < 4; i++) others.push(await openDemo(context));
      const tabs = [first, ...others];
      const sessionId = await first.textContent('#session-id');
      for (const tab of tabs) {
        assert.equal(await stateOf(tab), 'signed-in', 'every tab picked up the sign-in from the first one');
        assert.equal(await tab.textContent('#session-id'), sessionId);
      }

      for (const round of [1, 2]) {
        const sent = renewals.count;
        const seen = await Promise.all(tabs.map(renewalsSeen));
        await Promise.all(tabs.map((tab, i) => waitForRenewals(tab, seen[i].total + 1)));
        assert.equal(renewals.count - sent, 1, `round ${round}: exactly one renewal request for five tabs`);
        const after = await Promise.all(tabs.map(renewalsSeen));
        assert.equal(after.reduce((sum, tab, i) => sum + tab.here - seen[i].here, 0), 1, 'one tab renewed, four were handed over');
      }
      // One key for the five tabs: every renewal was signed by the key the origin stores, and the
      // tokens are bound to it.
      const jkt = await assertUnexportableKey(first, mode);
      for (const tab of others) assert.equal(await calculateJwkThumbprint((await storedProofKey(tab, `${mode}:${API}`)).jwk), jkt);
      await renewals.settled();
      await assertBoundRenewals(renewals.responses.slice(answered), jkt);
      assert.equal(boundKeyOf(await currentToken(context, mode, renewals)), jkt);
      for (const tab of tabs) assert.equal(await stateOf(tab), 'signed-in');
      await context.close();
    });
  }

  it('logout-all in one tab: others are signed out at their next renewal, with the reason shown', { timeout: 60_000 }, async () => {
    const account = newAccount('logout-all');
    // Browser A with two tabs (one shared sign-in), and browser B, another device of the same user.
    const contextA = await newContext(browser);
    const contextB = await newContext(browser);
    const renewalsB = countRenewals(contextB);
    const a1 = await openDemo(contextA);
    await signUp(a1, account);
    await signIn(a1, account, 'cookie');
    const a2 = await openDemo(contextA);
    assert.equal(await stateOf(a2), 'signed-in');
    const b1 = await openDemo(contextB);
    await signIn(b1, account, 'bearer');

    const beforeLogout = renewalsB.responses.length;
    await a1.click('#sign-out-everywhere');
    await a1.waitForSelector('#signedout-reason[data-code="logout_all"]:not([hidden])');
    // The other tab of browser A shares the sign-in and hears of it from the first tab at once.
    await a2.waitForSelector('#signedout-reason[data-code="logout_all"]:not([hidden])', { timeout: 5_000 });

    // Browser B keeps its token until it renews; the renewal is refused and the page says why.
    await b1.waitForSelector('#signedout-reason[data-code="session_revoked"]:not([hidden])', { timeout: 2 * TTL_MS });
    // (A renewal already on its way when the logout-all landed may still have been answered 200.)
    const statuses = renewalsB.responses.slice(beforeLogout).map((response) => response.status);
    assert.equal(statuses.at(-1), 401, `B was signed out by a refused renewal (${statuses})`);
    assert.equal(statuses.filter((status) => status !== 200).length, 1, `one refused renewal (${statuses})`);
    assert.match(await b1.textContent('#signedout-reason'), /revoked/);
    await contextA.close();
    await contextB.close();
  });
});

describe('origins', () => {
  it('a page on an origin not allowed cannot make a cookie-authenticated POST succeed', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const { page: demo, account } = await signedInDemo(context, 'cookie', 'csrf');

    const attacker = await context.newPage();
    await attacker.goto(OTHER_PAGE);
    await attacker.waitForSelector('body[data-ready="true"]', { state: 'attached' });

    // A CORS fetch with credentials: the page cannot read any answer.
    const outcome = await attacker.evaluate(async (api) => {
      try {
        await fetch(`${api}/auth/logout-all`, { method: 'POST', credentials: 'include' });
        return 'readable';
      } catch (error) {
        return error.name;
      }
    }, API);
    assert.equal(outcome, 'TypeError');
    // The classic CSRF: a no-cors POST the page need not read. The browser sends it with the
    // cookie (same site, so SameSite=Strict lets it through); the Origin check refuses it.
    const answered = attacker.waitForResponse((response) => response.url() === `${API}/auth/logout-all`);
    await attacker.evaluate(
      (api) => fetch(`${api}/auth/logout-all`, { method: 'POST', credentials: 'include', mode: 'no-cors' }),
      API,
    );
    const response = await answered;
    // 403 is forbidden_origin, the one 403 of the API, and only ever the answer to a request
    // that carried the cookie (without it the answer would be 401 missing_token).
    assert.equal(response.status(), 403);

    // A plain form post, which no CORS rule stops: refused all the same.
    const navigation = attacker.waitForResponse((candidate) => candidate.url() === `${API}/auth/logout-all`);
    await attacker.evaluate((api) => {
      const form = document.createElement('form');
      form.method = 'POST';
      form.action = `${api}/auth/logout-all`;
      document.body.append(form);
      form.submit();
    }, API);
    const formResponse = await navigation;
    assert.equal(formResponse.status(), 403);
    assert.match(await formResponse.text(), /forbidden_origin/);

    // The client loads there (it is public), but signing in from that origin fails at the preflight.
    const other = await context.newPage();
    await other.goto(OTHER_PAGE);
    await other.waitForSelector('body[data-ready="true"]', { state: 'attached' });
    const login = await other.evaluate(
      async ({ api, email, password }) => {
        const client = window.latchkey.createClient({ baseUrl: api, mode: 'cookie' });
        try {
          await client.login(email, password);
          return 'signed in';
        } catch (error) {
          return error.name;
        }
      },
      { api: API, ...account },
    );
    assert.equal(login, 'TypeError');

    // Nothing happened to the session: a strict route still answers its client, and the page is signed in.
    await sessionsListLoads(demo);
    assert.equal(await stateOf(demo), 'signed-in');
    await context.close();
  });

  it('a page on an allowed origin uses the API with CORS, in cookie and in bearer mode', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    watchErrors(page);
    await page.goto(ALLOWED_PAGE);
    await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
    const account = newAccount('allowed');
    const result = await page.evaluate(
      async ({ api, email, password }) => {
        const { createClient, LatchkeyError } = window.latchkey;
        const cookieClient = createClient({ baseUrl: api, mode: 'cookie', clientLabel: 'allowed origin' });
        const user = await cookieClient.register(email, password);
        let duplicate = null;
        try {
          await cookieClient.register(email, password);
        } catch (error) {
          duplicate = error instanceof LatchkeyError ? error.code : String(error);
        }
        await cookieClient.login(email, password);
        const accountResponse = await cookieClient.fetch('/api/account');
        const accountBody = await accountResponse.json();
        const sessions = await cookieClient.sessions();
        const renewed = await cookieClient.renew();
        const tokenVisible = cookieClient.accessToken;
        await cookieClient.logout();
        const afterLogout = await (await fetch(`${api}/api/me`, { credentials: 'include' })).json();
        cookieClient.close();

        const bearerClient = createClient({ baseUrl: api, mode: 'bearer' });
        await bearerClient.login(email, password);
        const me = await (await bearerClient.fetch('/api/me')).json();
        const hasToken = typeof bearerClient.accessToken === 'string';
        await bearerClient.logout();
        return { user, duplicate, status: accountResponse.status, accountBody, sessions, renewed, tokenVisible, afterLogout, me, hasToken };
      },
      { api: API, ...account },
    );
    assert.equal(result.user.email, account.email);
    assert.equal(result.duplicate, 'email_taken', 'problem codes are readable across origins');
    assert.equal(result.status, 200);
    assert.equal(result.accountBody.email, account.email);
    assert.deepEqual(result.sessions.map((session) => [session.client, session.current]), [['allowed origin', true]]);
    assert.equal(result.renewed, true);
    assert.equal(result.tokenVisible, null, 'cookie mode never hands the token to the page');
    assert.equal(result.afterLogout.code, 'missing_token', 'logout cleared the cookie');
    assert.equal(typeof result.me.session_id, 'string');
    assert.equal(result.hasToken, true);
    await context.close();
  });
});

/**
 * A virtual authenticator of Chromium (the DevTools Protocol's WebAuthn domain) in the tab of
 * `page`: a platform authenticator holding discoverable credentials, that verifies the user and
 * confirms presence by itself, so ceremonies complete with nobody at the keyboard.
 */
async function virtualAuthenticator(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials,
  };
}

/** The base64url form of what CDP reports as base64. */
const base64url = (base64) => base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

describe('passkeys', () => {
  it('the demo adds a passkey, and the email field signs in with it by autofill (conditional UI)', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const { page, account } = await signedInDemo(context, 'cookie', 'passkey');
    const authenticator = await virtualAuthenticator(context, page);
    // The session is bound to the page's key, so a bare fetch gets nowhere: read the cookie's token.
    const cookie = (await context.cookies()).find((entry) => entry.name === 'latchkey_at');
    const userId = JSON.parse(Buffer.from(cookie.value.split('.')[1], 'base64url').toString()).sub;

    await page.fill('#passkey-name', 'Virtual authenticator');
    await page.click('#passkey-add');
    await page.waitForSelector('#passkeys tr');
    const [credential] = await authenticator.credentials();
    assert.equal(credential.isResidentCredential, true, 'a discoverable credential');
    assert.equal(credential.rpId, 'localhost');
    assert.equal(Buffer.from(credential.userHandle, 'base64').toString(), userId, 'the user handle is the user id, not the email');
    assert.equal(await page.getAttribute('#passkeys tr', 'data-passkey-id'), base64url(credential.credentialId));
    assert.match(await page.textContent('#passkeys tr'), /Virtual authenticator.*never/s);
    const countAtRegistration = credential.signCount;

    // Signed out, the page offers passkeys in the email field's autofill. The virtual authenticator
    // answers a conditional request at once, as a person picking the suggestion would.
    await page.click('#sign-out');
    await page.waitForSelector('#activity li[data-code="logout"]', { state: 'attached' });
    await page.waitForFunction(() => document.querySelector('#activity')?.textContent?.includes('Signed in with a passkey.'), null, {
      timeout: 15_000,
    });
    assert.equal(await stateOf(page), 'signed-in');
    await page.waitForFunction((email) => document.querySelector('#account-email')?.textContent === email, account.email);
    assert.equal(await page.evaluate(() => document.cookie), '', 'cookie mode: the token is in the HttpOnly cookie');

    const [used] = await authenticator.credentials();
    assert.ok(used.signCount > countAtRegistration, 'the authenticator signed once more');
    await page.click('#refresh-lists');
    await page.waitForFunction(() => !document.querySelector('#passkeys tr')?.textContent?.includes('never'));
    await page.waitForFunction(() => document.querySelector('#events')?.textContent?.includes('with a passkey'));
    await page.screenshot({ path: join(ARTIFACTS, 'demo-passkey.png'), fullPage: true });
    await context.close();
  });

  it('a page on an allowed origin registers a passkey and signs in with it in a dialog, through the client', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    watchErrors(page);
    await page.goto(ALLOWED_PAGE);
    await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
    const authenticator = await virtualAuthenticator(context, page);
    const account = newAccount('passkey-allowed');
    const result = await page.evaluate(
      async ({ api, email, password }) => {
        const { createClient, LatchkeyError } = window.latchkey;
        const client = createClient({ baseUrl: api, mode: 'bearer', clientLabel: 'allowed origin, passkey' });
        await client.register(email, password);
        await client.login(email, password);
        const added = await client.registerPasskey('Allowed page');
        const passwordSession = client.sessionId;
        await client.logout();

        const signedIn = await client.loginWithPasskey();
        const account = await (await client.fetch('/api/account')).json();
        const passkeys = await client.passkeys();
        const sessions = await client.sessions();
        await client.removePasskey(added.id);
        const left = await client.passkeys();
        await client.logout();
        let refused = null;
        try {
          await client.loginWithPasskey();
        } catch (error) {
          refused = error instanceof LatchkeyError ? error.code : String(error);
        }
        return { added, passwordSession, signedIn, account, passkeys, sessions, left, refused, signedInAfter: client.signedIn };
      },
      { api: API, ...account },
    );
    assert.equal(result.added.name, 'Allowed page');
    assert.equal(result.account.email, account.email);
    assert.notEqual(result.signedIn.sessionId, result.passwordSession, 'a new session');
    assert.deepEqual(result.passkeys.map((passkey) => passkey.id), [result.added.id]);
    assert.ok(result.passkeys[0].last_used_at, 'the sign-in is recorded on the passkey');
    assert.deepEqual(result.sessions.map((session) => [session.client, session.current]), [['allowed origin, passkey', true]]);
    assert.deepEqual(result.left, []);
    // The authenticator still holds the credential; latchkey no longer accepts it.
    assert.equal((await authenticator.credentials()).length, 1);
    assert.equal(result.refused, 'invalid_credentials');
    assert.equal(result.signedInAfter, false);
    await context.close();
  });
});

describe('clock skew', () => {
  it('a device clock two hours off neither renews in a loop nor lets the token lapse', { timeout: 60_000 }, async () => {
    const skews = [
      { mode: 'cookie', offsetMs: 2 * 3600_000 },
      { mode: 'bearer', offsetMs: -2 * 3600_000 },
    ];
    const runs = await Promise.all(
      skews.map(async ({ mode, offsetMs }) => {
        const context = await newContext(browser);
        await context.addInitScript((offset) => {
          const RealDate = Date;
          class SkewedDate extends RealDate {
            constructor(...args) {
              if (args.length === 0) super(RealDate.now() + offset);
              else super(...args);
            }
            static now() {
              return RealDate.now() + offset;
            }
          }
          globalThis.Date = SkewedDate;
        }, offsetMs);
        const renewals = countRenewals(context);
        const { page } = await signedInDemo(context, mode, `skew-${mode}`);
        const skew = await page.evaluate(() => Date.now() - (performance.timeOrigin + performance.now()));
        const sent = renewals.count;
        const answered = renewals.responses.length;
        let lowest = Infinity;
        const until = Date.now() + 3 * TTL_MS;
        while (Date.now() < until) {
          lowest = Math.min(lowest, Number.parseFloat(await page.textContent('#countdown')));
          await sleep(200);
        }
        await renewals.settled();
        const result = {
          mode,
          skew,
          jkt: await assertUnexportableKey(page, mode),
          renewalAnswers: renewals.responses.slice(answered),
          offsetMs,
          renewals: renewals.count - sent,
          lowest,
          state: await stateOf(page),
          statuses: renewals.responses.slice(answered).map((response) => response.status),
        };
        await context.close();
        return result;
      }),
    );
    for (const run of runs) {
      assert.ok(Math.abs(run.skew - run.offsetMs) < 5_000, `${run.mode}: the page's Date is really off`);
      // One renewal about every 3/4 of the lifetime: 4 in three lifetimes, give or take one.
      assert.ok(run.renewals >= 3 && run.renewals <= 5, `${run.mode}: ${run.renewals} renewals in ${3 * TTL_SECONDS} s`);
      assert.ok(run.lowest > 0, `${run.mode}: the token never ran out (lowest ${run.lowest} s)`);
      assert.equal(run.state, 'signed-in');
      assert.ok(run.statuses.every((status) => status === 200));
      // Bound all along: each renewal carried a proof dated by latchkey's clock, not the page's.
      await assertBoundRenewals(run.renewalAnswers, run.jkt, `${run.mode}: `);
    }
  });
});
