/**
 * Device Bound Session Credentials over HTTP, with a browser made of fetch calls that signs as
 * Chromium does (test/support/dbsc-browser.ts): registration after a cookie-mode sign-in, refresh by
 * proof, and every refusal answered as the draft says with nothing changed.
 */
import { runInDurableObject } from 'cloudflare:test';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { now, testClock } from '../../src/clock';
import { call, claimsOf, eventsOf, expectProblem, register, uniqueEmail } from '../support/helpers';
import { challengeOf, DbscBrowser, dbscProof, PAGE_ORIGIN, tokenCookieOf } from '../support/dbsc-browser';
import { authorityStub } from '../support/faults';
import { objectRows } from '../support/user-object';

const TTL_S = 300;

/** What the user's object holds of DBSC: each session's binding and the live challenges. */
function dbscRows(userId: string) {
  return runInDurableObject(authorityStub(userId), (_instance, state) => ({
    sessions: state.storage.sql.exec('SELECT id, gen, dbsc_jkt, dbsc_key, revoked_at FROM sessions ORDER BY created_at').toArray(),
    challenges: state.storage.sql.exec('SELECT challenge, session_id, expires_at FROM dbsc_challenges ORDER BY rowid').toArray(),
  }));
}

/**
 * A bound session's cookie lives as long as its token, less a second: gone (so the browser
 * refreshes) before a request it went out with could arrive with an expired token.
 */
function expectCookieGoesBeforeItsToken(cookie: { value: string; maxAge: number } | undefined): void {
  const { exp } = claimsOf(cookie?.value as string) as { exp: number };
  expect(cookie?.maxAge).toBeGreaterThanOrEqual(TTL_S - 3);
  // Read a few milliseconds after the answer was made, hence the slack.
  expect(now() + (cookie?.maxAge as number) * 1000).toBeLessThanOrEqual(exp * 1000 - 1000 + 200);
}

async function signedInBrowser() {
  const email = uniqueEmail('dbsc');
  const user = await register(email);
  const browser = await DbscBrowser.create();
  const login = await browser.login(email);
  const sessionId = ((await login.clone().json()) as { session_id: string }).session_id;
  return { user, email, browser, login, sessionId };
}

async function boundBrowser() {
  const signedIn = await signedInBrowser();
  const registration = await signedIn.browser.register();
  expect(registration.status, await registration.clone().text()).toBe(200);
  return { ...signedIn, registration };
}

/** Everything the user's object holds, for "nothing changed" comparisons. */
async function everything(userId: string) {
  return { rows: await objectRows(userId), dbsc: await dbscRows(userId) };
}

describe('DBSC registration', () => {
  it('is offered by a cookie-mode sign-in, and only by one', async () => {
    const { login } = await signedInBrowser();
    const header = login.headers.get('secure-session-registration');
    expect(header).toMatch(/^\(ES256 RS256\);path="\/auth\/dbsc\/register";challenge="[\w-]{43}"$/);

    const email = uniqueEmail();
    await register(email);
    const bearer = await call('/auth/login', { method: 'POST', json: { email, password: 'correct horse battery staple' } });
    expect(bearer.status).toBe(200);
    expect(bearer.headers.get('secure-session-registration')).toBeNull();
  });

  it('binds the session to the key in the proof and answers the session instructions', async () => {
    const { user, browser, sessionId, registration } = await boundBrowser();
    const instructions = await registration.json();
    expect(instructions).toEqual({
      session_identifier: `${user.id}.${sessionId}`,
      refresh_url: '/auth/dbsc/refresh',
      scope: { origin: 'http://localhost', include_site: false, scope_specification: [] },
      credentials: [{ type: 'cookie', name: 'latchkey_at', attributes: 'Path=/; Secure; HttpOnly; SameSite=Strict' }],
      allowed_refresh_initiators: ['localhost'],
    });
    // The cookie now lives as long as its token, so the browser refreshes when it is gone.
    expectCookieGoesBeforeItsToken(tokenCookieOf(registration));
    expect(challengeOf(registration)?.id).toBe(`${user.id}.${sessionId}`);
    const { sessions } = await dbscRows(user.id);
    expect(sessions[0]?.dbsc_jkt).toBe(await calculateJwkThumbprint(browser.publicJwk));
    expect(JSON.parse(sessions[0]?.dbsc_key as string)).toEqual({
      alg: 'ES256',
      jwk: { crv: 'P-256', kty: 'EC', x: browser.publicJwk.x, y: browser.publicJwk.y },
    });
    const events = await eventsOf(browser.cookie as string);
    expect(events.map((event) => event.type)).toContain('device_bound');
  });

  it('refuses a second registration of a bound session, with a challenge of its own: a binding never changes', async () => {
    const { user, browser } = await boundBrowser();
    const before = await dbscRows(user.id);
    const thief = await DbscBrowser.create();
    thief.cookie = browser.cookie;
    // The challenge sent ahead is one of this session's: the only kind a thief could come by.
    await expectProblem(await thief.register(browser.cachedChallenge as string), 400, 'invalid_dbsc_proof');
    expect((await dbscRows(user.id)).sessions).toEqual(before.sessions);
  });

  it('refuses a used challenge, a challenge of another session, and an expired one, with nothing changed', async () => {
    const { user, email, browser } = await signedInBrowser();
    const other = await DbscBrowser.create();
    await other.login(email);

    // Another session's challenge, signed by this browser for its own cookie.
    const state = await everything(user.id);
    await expectProblem(await browser.register(other.registrationChallenge), 400, 'invalid_dbsc_proof');
    expect(await everything(user.id)).toEqual(state);

    // Expired: a minute is all a registration challenge lives.
    testClock.advance(60_000);
    const expiredState = await everything(user.id);
    await expectProblem(await browser.register(), 400, 'invalid_dbsc_proof');
    expect(await everything(user.id)).toEqual(expiredState);

    // The other session registers with its own, once; the same proof again is refused.
    testClock.reset();
    const proof = await other.proof(other.registrationChallenge as string, true);
    expect((await other.register(undefined, proof)).status).toBe(200);
    const usedState = await everything(user.id);
    await expectProblem(await other.register(undefined, proof), 400, 'invalid_dbsc_proof');
    expect(await everything(user.id)).toEqual(usedState);
  });

  it.each([
    ['typ JWT', { typ: 'JWT' }],
    ['alg RS256 over an EC key', { alg: 'RS256' }],
    ['no jwk', { jwk: undefined }],
  ])('refuses a registration proof with %s', async (_name, changes) => {
    const { user, browser } = await signedInBrowser();
    const state = await everything(user.id);
    const options = { jwk: browser.publicJwk, ...changes };
    let proof: string;
    try {
      proof = await dbscProof(browser.privateKey, browser.registrationChallenge as string, options);
    } catch {
      // jose will not sign RS256 with an EC key: forge the header over a real ES256 signature.
      const real = await dbscProof(browser.privateKey, browser.registrationChallenge as string, { jwk: browser.publicJwk });
      const header = btoa(JSON.stringify({ alg: 'RS256', typ: 'dbsc+jwt', jwk: browser.publicJwk })).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
      proof = [header, ...real.split('.').slice(1)].join('.');
    }
    await expectProblem(await browser.register(undefined, proof), 400, 'invalid_dbsc_proof');
    expect(await everything(user.id)).toEqual(state);
  });

  it('refuses a jwk that carries the private key', async () => {
    const { user, browser } = await signedInBrowser();
    const state = await everything(user.id);
    const privateJwk = await exportJWK(browser.privateKey);
    const proof = await dbscProof(browser.privateKey, browser.registrationChallenge as string, { jwk: privateJwk });
    await expectProblem(await browser.register(undefined, proof), 400, 'invalid_dbsc_proof');
    expect(await everything(user.id)).toEqual(state);
  });

  it('needs the session cookie', async () => {
    const { browser } = await signedInBrowser();
    browser.cookie = undefined;
    await expectProblem(await browser.register(), 401, 'missing_token');
  });
});

describe('DBSC refresh', () => {
  it('asks for a proof with 403 and a challenge naming the session, then renews the session at its current generation', async () => {
    const { user, browser, sessionId } = await boundBrowser();
    const identifier = `${user.id}.${sessionId}`;
    testClock.advance(TTL_S * 1000);
    const asked = await browser.refreshRequest();
    await expectProblem(asked.clone(), 403, 'dbsc_proof_required');
    expect(challengeOf(asked)?.id).toBe(identifier);

    const refreshed = await browser.refreshRequest(await browser.proof(challengeOf(asked)?.challenge as string));
    expect(refreshed.status, await refreshed.clone().text()).toBe(200);
    expect(((await refreshed.json()) as { session_identifier: string }).session_identifier).toBe(identifier);
    const cookie = tokenCookieOf(refreshed);
    expect(claimsOf(cookie?.value as string)).toMatchObject({ sid: sessionId, gen: 2 });
    expectCookieGoesBeforeItsToken(cookie);
    expect((await dbscRows(user.id)).sessions[0]?.gen).toBe(2);
  });

  it('uses the challenge sent ahead: each refresh after the first needs one request', async () => {
    const { browser, sessionId } = await boundBrowser();
    for (const gen of [2, 3, 4]) {
      testClock.advance(TTL_S * 1000);
      const response = await browser.refreshRequest(await browser.proof(browser.cachedChallenge as string));
      expect(response.status, await response.clone().text()).toBe(200);
      expect(claimsOf(browser.cookie as string)).toMatchObject({ sid: sessionId, gen });
    }
  });

  it('refuses a challenge used before: the browser resending its last proof gets a fresh challenge, and nothing moves', async () => {
    const { user, browser } = await boundBrowser();
    const proof = await browser.proof(browser.cachedChallenge as string);
    expect((await browser.refreshRequest(proof)).status).toBe(200);
    const state = await dbscRows(user.id);
    const again = await browser.refreshRequest(proof);
    await expectProblem(again.clone(), 403, 'dbsc_proof_required');
    expect((await dbscRows(user.id)).sessions).toEqual(state.sessions);
  });

  it('refuses a proof by another key (a copied cookie in another browser), logs proof_failed, and leaves the session as it was', async () => {
    const { user, browser, sessionId } = await boundBrowser();
    const thief = await DbscBrowser.create();
    thief.sessionIdentifier = `${user.id}.${sessionId}`;
    const before = (await dbscRows(user.id)).sessions;
    const response = await thief.refresh();
    await expectProblem(response, 403, 'dbsc_proof_required');
    expect((await dbscRows(user.id)).sessions).toEqual(before);
    const events = await eventsOf(browser.cookie as string);
    expect(events.find((event) => event.type === 'proof_failed')).toMatchObject({ session_id: sessionId });
    // The original goes on.
    expect((await browser.refresh()).status).toBe(200);
  });

  it('refuses a proof with a jwk of its own, or of the wrong algorithm, even by the right key', async () => {
    const { user, browser } = await boundBrowser();
    const before = (await dbscRows(user.id)).sessions;
    const withJwk = await dbscProof(browser.privateKey, browser.cachedChallenge as string, { jwk: browser.publicJwk });
    await expectProblem(await browser.refreshRequest(withJwk), 403, 'dbsc_proof_required');
    const wrongTyp = await dbscProof(browser.privateKey, browser.cachedChallenge as string, { typ: 'JWT' });
    await expectProblem(await browser.refreshRequest(wrongTyp), 403, 'dbsc_proof_required');
    expect((await dbscRows(user.id)).sessions).toEqual(before);
  });

  it('refuses a challenge issued for another session of the same user', async () => {
    const { user, email, browser } = await boundBrowser();
    const other = await DbscBrowser.create();
    await other.login(email);
    expect((await other.register()).status).toBe(200);
    const before = (await dbscRows(user.id)).sessions;
    const crossed = await browser.proof(other.cachedChallenge as string);
    await expectProblem(await browser.refreshRequest(crossed), 403, 'dbsc_proof_required');
    expect((await dbscRows(user.id)).sessions).toEqual(before);
    // The other session's challenge is still there for it.
    expect((await other.refreshRequest(await other.proof(other.cachedChallenge as string))).status).toBe(200);
  });

  it('refuses an expired challenge', async () => {
    const { user, browser } = await boundBrowser();
    const asked = await browser.refreshRequest();
    const challenge = challengeOf(asked)?.challenge as string;
    testClock.advance(60_000);
    const before = (await dbscRows(user.id)).sessions;
    await expectProblem(await browser.refreshRequest(await browser.proof(challenge)), 403, 'dbsc_proof_required');
    expect((await dbscRows(user.id)).sessions).toEqual(before);
  });

  it('keeps at most four live challenges per session: asking without proofs cannot grow the object', async () => {
    const { user, browser, sessionId } = await boundBrowser();
    const asked: string[] = [];
    for (let i = 0; i < 10; i += 1) asked.push(challengeOf(await browser.refreshRequest())?.challenge as string);
    const { challenges } = await dbscRows(user.id);
    expect(challenges.map((row) => row.challenge)).toEqual(asked.slice(-4));
    expect(challenges.every((row) => row.session_id === sessionId)).toBe(true);
    // The oldest were dropped, and the newest still works.
    await expectProblem(await browser.refreshRequest(await browser.proof(asked[0] as string)), 403, 'dbsc_proof_required');
    expect((await browser.refreshRequest(await browser.proof(asked[9] as string))).status).toBe(200);
  });

  it('answers 400 to a refresh that names no session, or names one in another shape', async () => {
    await expectProblem(await call('/auth/dbsc/refresh', { method: 'POST' }), 400, 'invalid_request');
    const two = await call('/auth/dbsc/refresh', { method: 'POST', headers: { 'sec-secure-session-id': '"a", "b"' } });
    await expectProblem(two, 400, 'invalid_request');
  });

  it('ends the browser session of a revoked session: continue false, whatever the proof, and the page learns why', async () => {
    const { browser } = await boundBrowser();
    const logoutAll = await call('/auth/logout-all', { method: 'POST', token: browser.cookie as string });
    expect(logoutAll.status).toBe(204);
    const response = await browser.refreshRequest(await browser.proof(browser.cachedChallenge as string));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ continue: false });
    // The token cookie is left alone: the browser may hold a newer session's under that name.
    expect(tokenCookieOf(response)).toBeUndefined();
    expect((await browser.refreshRequest()).status).toBe(200);
    // The page, whose next request goes without a token, learns why.
    const ended = response.headers.getSetCookie().find((cookie) => cookie.startsWith('latchkey_ended='));
    expect(ended).toMatch(/^latchkey_ended=session_revoked;/);
    const headers = { cookie: 'latchkey_ended=session_revoked', origin: PAGE_ORIGIN };
    const renew = await call('/auth/renew', { method: 'POST', headers });
    await expectProblem(renew.clone(), 401, 'session_revoked');
    expect(renew.headers.getSetCookie().some((cookie) => /^latchkey_ended=;.*Max-Age=0/i.test(cookie))).toBe(true);
    await expectProblem(await call('/auth/renew', { method: 'POST', headers: { cookie: 'latchkey_ended=anything' } }), 401, 'missing_token');
  });

  it('ends an old session without touching the newer one a password change opened in the same browser', async () => {
    const { browser } = await boundBrowser();
    const oldIdentifier = browser.sessionIdentifier as string;
    const headers = { cookie: `latchkey_at=${browser.cookie}`, origin: PAGE_ORIGIN };
    const changed = await call('/auth/password', {
      method: 'POST',
      headers,
      json: { current_password: 'correct horse battery staple', new_password: 'a brand new passphrase' },
    });
    expect(changed.status, await changed.clone().text()).toBe(200);
    // The new session is offered a registration of its own, and the page's cookie is the new one.
    expect(changed.headers.get('secure-session-registration')).toMatch(/challenge="/);
    const fresh = tokenCookieOf(changed)?.value as string;
    expect(claimsOf(fresh).sid).not.toBe(oldIdentifier.split('.')[1]);
    // The old session's browser-side refresh ends it, and leaves the new cookie where it is.
    const ended = await browser.refreshRequest(await browser.proof(browser.cachedChallenge as string), oldIdentifier);
    expect(await ended.json()).toEqual({ continue: false });
    expect(tokenCookieOf(ended)).toBeUndefined();
  });

  it('ends an idle session, and one past its absolute limit', async () => {
    const idle = await boundBrowser();
    testClock.advance((TTL_S + 14 * 86_400 + 1) * 1000);
    const idled = await idle.browser.refresh();
    expect(await idled.json()).toEqual({ continue: false });
    expect(idled.headers.getSetCookie().join()).toMatch(/latchkey_ended=session_inactive;/);
    testClock.reset();
    const old = await boundBrowser();
    // Kept active up to the absolute limit: renewed every TTL for 30 days would take long; the
    // limit counts from the login, so moving past it with one refresh in between is enough.
    testClock.advance(13 * 86_400_000);
    expect((await old.browser.refresh()).status).toBe(200);
    testClock.advance(13 * 86_400_000);
    expect((await old.browser.refresh()).status).toBe(200);
    testClock.advance(5 * 86_400_000);
    const ended = await old.browser.refresh();
    expect(await ended.json()).toEqual({ continue: false });
    expect(ended.headers.getSetCookie().join()).toMatch(/latchkey_ended=session_expired;/);
  });

  it('ends a made-up session: a well-formed identifier the user object does not hold', async () => {
    const response = await call('/auth/dbsc/refresh', {
      method: 'POST',
      headers: { 'sec-secure-session-id': `${crypto.randomUUID()}.${crypto.randomUUID()}` },
    });
    expect(await response.json()).toEqual({ continue: false });
  });

  it('mints one generation for two refreshes racing with one proof: the other is asked again', async () => {
    const { user, browser } = await boundBrowser();
    const proof = await browser.proof(browser.cachedChallenge as string);
    const answers = await Promise.all([browser.refreshRequest(proof), browser.refreshRequest(proof)]);
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 403]);
    expect((await dbscRows(user.id)).sessions[0]?.gen).toBe(2);
  });
});

describe('a DBSC-bound session and the page', () => {
  it('renews nothing by the cookie alone: the current token is answered as it is, marked device-bound', async () => {
    const { user, browser, sessionId } = await boundBrowser();
    const headers = { cookie: `latchkey_at=${browser.cookie}`, origin: PAGE_ORIGIN };
    const response = await call('/auth/renew', { method: 'POST', headers });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ session_id: sessionId, device_bound: true });
    expect(tokenCookieOf(response)?.value).toBe(browser.cookie);
    expect((await dbscRows(user.id)).sessions[0]?.gen).toBe(1);
  });

  it('refuses the cookie once its token expired (a copy kept past its life), logs it, and revokes nothing', async () => {
    const { user, browser, sessionId } = await boundBrowser();
    testClock.advance(TTL_S * 1000 + 1000);
    const headers = { cookie: `latchkey_at=${browser.cookie}`, origin: PAGE_ORIGIN };
    await expectProblem(await call('/auth/renew', { method: 'POST', headers }), 401, 'invalid_dpop_proof');
    const { sessions } = await dbscRows(user.id);
    expect(sessions[0]).toMatchObject({ gen: 1, revoked_at: null });
    expect((await browser.refresh()).status).toBe(200);
    const events = await eventsOf(browser.cookie as string);
    expect(events.find((event) => event.type === 'proof_failed')).toMatchObject({ session_id: sessionId });
  });

  it('signs out with the live cookie, and the browser session ends at its next refresh', async () => {
    const { browser } = await boundBrowser();
    const headers = { cookie: `latchkey_at=${browser.cookie}`, origin: PAGE_ORIGIN };
    expect((await call('/auth/logout', { method: 'POST', headers })).status).toBe(204);
    expect(await (await browser.refresh()).json()).toEqual({ continue: false });
  });

  it('is not signed out by an expired copy of its cookie', async () => {
    const { browser } = await boundBrowser();
    const copy = browser.cookie as string;
    testClock.advance(TTL_S * 1000 + 1000);
    const headers = { cookie: `latchkey_at=${copy}`, origin: PAGE_ORIGIN };
    await expectProblem(await call('/auth/logout', { method: 'POST', headers }), 401, 'invalid_dpop_proof');
    expect((await browser.refresh()).status).toBe(200);
  });
});
