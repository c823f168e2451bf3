import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { testClock } from '../../src/clock';
import {
  call,
  claimsOf,
  eventsOf,
  expectProblem,
  PASSWORD,
  register,
  renewOk,
  signedInUser,
  uniqueEmail,
} from '../support/helpers';

// wrangler.toml's ALLOWED_ORIGINS, which the tests run with.
const ALLOWED = 'http://localhost:8787';
const OTHER = 'http://localhost:8788';
const DAY_S = 86_400;
const RENEW_WINDOW_S = 14 * DAY_S;
const TTL_S = 300;

interface CookieSet {
  name: string;
  value: string;
  attributes: Map<string, string>;
}

/** The Set-Cookie headers of an answer, parsed (name, value, attributes by lower-case name). */
function setCookies(response: Response): CookieSet[] {
  return response.headers.getSetCookie().map((line) => {
    const [pair = '', ...rest] = line.split(';').map((part) => part.trim());
    const eq = pair.indexOf('=');
    const attributes = new Map<string, string>();
    for (const attribute of rest) {
      const at = attribute.indexOf('=');
      attributes.set((at < 0 ? attribute : attribute.slice(0, at)).toLowerCase(), at < 0 ? '' : attribute.slice(at + 1));
    }
    return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes };
  });
}

function onlyCookie(response: Response): CookieSet {
  const cookies = setCookies(response);
  expect(cookies).toHaveLength(1);
  return cookies[0] as CookieSet;
}

function expectTokenCookie(cookie: CookieSet, name = 'latchkey_at'): void {
  expect(cookie.name).toBe(name);
  expect(cookie.value).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  expect([...cookie.attributes.keys()].sort()).toEqual(['httponly', 'max-age', 'path', 'samesite', 'secure']);
  expect(cookie.attributes.get('path')).toBe('/');
  expect(cookie.attributes.get('samesite')).toBe('Strict');
}

/** A request as a browser in cookie mode sends it: the cookie, and the page's Origin if given. */
function withCookie(path: string, token: string, init: RequestInit & { origin?: string; json?: unknown } = {}) {
  const headers = new Headers(init.headers);
  headers.set('cookie', `latchkey_at=${token}`);
  if (init.origin !== undefined) headers.set('origin', init.origin);
  return call(path, { ...init, headers });
}

async function cookieLogin(email: string, origin: string | undefined = ALLOWED) {
  const headers: Record<string, string> = origin === undefined ? {} : { origin };
  const response = await call('/auth/login', {
    method: 'POST',
    json: { email, password: PASSWORD, mode: 'cookie', client: 'browser' },
    headers,
  });
  expect(response.status, await response.clone().text()).toBe(200);
  return { response, body: (await response.json()) as Record<string, unknown>, cookie: onlyCookie(response) };
}

async function cookieUser() {
  const email = uniqueEmail();
  const user = await register(email);
  const { cookie, body } = await cookieLogin(email);
  return { ...user, email, token: cookie.value, sessionId: body.session_id as string };
}

describe('CORS', () => {
  it('answers an allowed Origin with that exact origin, credentials and Vary: Origin', async () => {
    const response = await call('/health', { headers: { origin: ALLOWED } });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(response.headers.get('access-control-allow-credentials')).toBe('true');
    expect(response.headers.get('vary')).toMatch(/\bOrigin\b/);
  });

  it('puts the CORS headers on problem documents too, so a page can read the code', async () => {
    const response = await call('/api/me', { headers: { origin: ALLOWED } });
    await expectProblem(response, 401, 'missing_token');
    expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(response.headers.get('access-control-expose-headers')).toMatch(/WWW-Authenticate/);
    expect(response.headers.get('access-control-expose-headers')).toMatch(/Retry-After/);
    // The browser client dates its DPoP proofs by the server's clock, read from Date.
    expect(response.headers.get('access-control-expose-headers')).toMatch(/\bDate\b/);
  });

  it.each([
    ['another port', OTHER],
    ['another scheme', 'https://localhost:8787'],
    ['a trailing slash', `${ALLOWED}/`],
    ['a longer port', `${ALLOWED}0`],
    ['a suffix host', 'http://localhost:8787.evil.example'],
    ['the null origin', 'null'],
  ])('gives no CORS header to %s', async (_name, origin) => {
    const response = await call('/health', { headers: { origin } });
    expect(response.status).toBe(200);
    for (const name of ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers']) {
      expect(response.headers.get(name)).toBeNull();
    }
    expect(response.headers.get('vary')).toMatch(/\bOrigin\b/);
  });

  it('answers a preflight from an allowed Origin with 204 and the methods and headers used here', async () => {
    const response = await call('/auth/sessions/some-id', {
      method: 'OPTIONS',
      headers: { origin: ALLOWED, 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(response.headers.get('access-control-allow-credentials')).toBe('true');
    const methods = (response.headers.get('access-control-allow-methods') ?? '').split(/,\s*/);
    expect(methods).toEqual(expect.arrayContaining(['GET', 'POST', 'DELETE']));
    const headers = (response.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/,\s*/);
    expect(headers).toEqual(expect.arrayContaining(['authorization', 'content-type', 'dpop']));
    expect(Number(response.headers.get('access-control-max-age'))).toBeGreaterThan(0);
    expect(response.headers.get('vary')).toMatch(/\bOrigin\b/);
  });

  it('answers a preflight from another Origin without any CORS header, so the browser stops there', async () => {
    const response = await call('/auth/login', {
      method: 'OPTIONS',
      headers: { origin: OTHER, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(response.headers.get('access-control-allow-methods')).toBeNull();
  });
});

describe("the server's clock on every answer", () => {
  it('states latchkey\'s own clock as Date, on successes and problem documents alike: DPoP clients date proofs by it', async () => {
    const at = Date.UTC(2026, 5, 1, 12, 0, 0);
    testClock.set(at);
    try {
      for (const response of [await call('/health'), await call('/api/me'), await call('/no/such/route')]) {
        expect(response.headers.get('date')).toBe('Mon, 01 Jun 2026 12:00:00 GMT');
      }
    } finally {
      testClock.reset();
    }
  });
});

describe('cookie mode: login', () => {
  it('sets the token as an HttpOnly, Secure, SameSite=Strict cookie and leaves it out of the body', async () => {
    const email = uniqueEmail();
    const user = await register(email);
    const { response, body, cookie } = await cookieLogin(email);
    expect(body).toEqual({ token_type: 'Bearer', expires_in: TTL_S, session_id: expect.any(String) });
    expect(response.headers.get('cache-control')).toBe('no-store');
    expectTokenCookie(cookie);
    // The cookie must outlive the token by the whole renew window, or it could not be renewed.
    expect(Number(cookie.attributes.get('max-age'))).toBe(RENEW_WINDOW_S + TTL_S);
    expect(claimsOf(cookie.value)).toMatchObject({ sub: user.id, sid: body.session_id, gen: 1 });
  });

  it('uses the __Host- prefix over https and reads only that name there', async () => {
    const email = uniqueEmail();
    await register(email);
    const login = await exports.default.fetch(
      new Request('https://latchkey.example/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: ALLOWED },
        body: JSON.stringify({ email, password: PASSWORD, mode: 'cookie' }),
      }),
    );
    expect(login.status).toBe(200);
    const cookie = onlyCookie(login);
    expectTokenCookie(cookie, '__Host-latchkey_at');
    const me = (name: string) =>
      exports.default.fetch(new Request('https://latchkey.example/api/me', { headers: { cookie: `${name}=${cookie.value}` } }));
    expect((await me('__Host-latchkey_at')).status).toBe(200);
    // A plain-named cookie could have been planted by a sibling subdomain: not a credential over https.
    await expectProblem(await me('latchkey_at'), 401, 'missing_token');
  });

  it('is refused with 403 forbidden_origin from an Origin not allowed, before any password check', async () => {
    const email = uniqueEmail();
    await register(email);
    const response = await call('/auth/login', {
      method: 'POST',
      json: { email, password: 'wrong but never checked', mode: 'cookie' },
      headers: { origin: OTHER },
    });
    await expectProblem(response, 403, 'forbidden_origin');
    expect(response.headers.getSetCookie()).toEqual([]);
    const failures = await call('/auth/login', { method: 'POST', json: { email, password: PASSWORD } });
    expect(failures.status).toBe(200);
    const { access_token } = (await failures.json()) as { access_token: string };
    expect((await eventsOf(access_token)).map((event) => event.type)).toEqual(['login']);
  });

  it('is accepted without any Origin (not a browser) and in bearer mode from any Origin', async () => {
    const email = uniqueEmail();
    await register(email);
    await cookieLogin(email, undefined);
    const bearer = await call('/auth/login', { method: 'POST', json: { email, password: PASSWORD }, headers: { origin: OTHER } });
    expect(bearer.status).toBe(200);
    expect(bearer.headers.getSetCookie()).toEqual([]);
    expect(await bearer.json()).toHaveProperty('access_token');
  });
});

describe('cookie mode: every Bearer route takes the cookie', () => {
  it('serves /api/me, /api/account, /auth/sessions and /auth/events by cookie', async () => {
    const user = await cookieUser();
    const me = await withCookie('/api/me', user.token);
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ user_id: user.id, session_id: user.sessionId });
    const account = await withCookie('/api/account', user.token);
    expect(await account.json()).toMatchObject({ email: user.email });
    const sessions = await withCookie('/auth/sessions', user.token, { origin: OTHER });
    expect(sessions.status).toBe(200);
    expect(await sessions.json()).toMatchObject({ sessions: [{ id: user.sessionId, current: true }] });
    const events = await withCookie('/auth/events', user.token);
    expect(events.status).toBe(200);
  });

  it('still answers token faults by cookie with the same codes', async () => {
    const user = await cookieUser();
    testClock.advance((TTL_S + 10) * 1000);
    await expectProblem(await withCookie('/api/me', user.token), 401, 'token_expired');
    await expectProblem(await withCookie('/api/me', 'not.a.token'), 401, 'invalid_token');
    await expectProblem(await call('/api/me', { headers: { cookie: 'latchkey_at=' } }), 401, 'missing_token');
  });

  it('prefers the Authorization header to the cookie', async () => {
    const user = await cookieUser();
    const response = await withCookie('/api/me', user.token, { headers: { authorization: 'Bearer not.a.token' } });
    await expectProblem(response, 401, 'invalid_token');
  });
});

describe('cookie mode: renewal and logout', () => {
  it('renews a cookie with a new cookie and no access_token', async () => {
    const user = await cookieUser();
    testClock.advance((TTL_S + 60) * 1000);
    const response = await withCookie('/auth/renew', user.token, { method: 'POST', origin: ALLOWED });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ token_type: 'Bearer', expires_in: TTL_S, session_id: user.sessionId });
    const cookie = onlyCookie(response);
    expectTokenCookie(cookie);
    expect(claimsOf(cookie.value)).toMatchObject({ sid: user.sessionId, gen: 2 });
    expect((await withCookie('/api/me', cookie.value)).status).toBe(200);
  });

  it('renews a Bearer token in the body, with no cookie', async () => {
    const user = await signedInUser();
    const response = await call('/auth/renew', { method: 'POST', token: user.token.access_token, headers: { origin: ALLOWED } });
    expect(response.status).toBe(200);
    expect(response.headers.getSetCookie()).toEqual([]);
    expect(await response.json()).toHaveProperty('access_token');
  });

  it('caps Max-Age by what is left of the session, never past SESSION_MAX_AGE', async () => {
    const user = await cookieUser();
    const start = Date.now();
    testClock.set(start + 13 * DAY_S * 1000);
    const first = await withCookie('/auth/renew', user.token, { method: 'POST', origin: ALLOWED });
    const middle = onlyCookie(first);
    // 17 days left: the idle limit (14 days + TTL) is the shorter one.
    expect(Number(middle.attributes.get('max-age'))).toBe(RENEW_WINDOW_S + TTL_S);
    testClock.set(start + 26 * DAY_S * 1000);
    const second = await withCookie('/auth/renew', middle.value, { method: 'POST', origin: ALLOWED });
    expect(second.status).toBe(200);
    // 4 days left of the 30 (less the milliseconds between the login and `start`).
    const maxAge = Number(onlyCookie(second).attributes.get('max-age'));
    expect(maxAge).toBeLessThanOrEqual(4 * DAY_S);
    expect(maxAge).toBeGreaterThan(4 * DAY_S - 60);
  });

  it('clears the cookie on logout and ends the session', async () => {
    const user = await cookieUser();
    const response = await withCookie('/auth/logout', user.token, { method: 'POST', origin: ALLOWED });
    expect(response.status).toBe(204);
    const cleared = onlyCookie(response);
    expect(cleared).toMatchObject({ name: 'latchkey_at', value: '' });
    expect(cleared.attributes.get('max-age')).toBe('0');
    expect(cleared.attributes.get('path')).toBe('/');
    await expectProblem(await withCookie('/auth/renew', user.token, { method: 'POST', origin: ALLOWED }), 401, 'session_revoked');
  });

  it('clears the cookie on logout-all', async () => {
    const user = await cookieUser();
    const response = await withCookie('/auth/logout-all', user.token, { method: 'POST', origin: ALLOWED });
    expect(response.status).toBe(204);
    expect(onlyCookie(response)).toMatchObject({ name: 'latchkey_at', value: '' });
  });

  it('sets no cookie when the logout came with a Bearer header', async () => {
    const user = await signedInUser();
    const response = await call('/auth/logout', { method: 'POST', token: user.token.access_token });
    expect(response.status).toBe(204);
    expect(response.headers.getSetCookie()).toEqual([]);
  });

  it('answers a password change made by cookie with a cookie for the new session', async () => {
    const user = await cookieUser();
    const response = await withCookie('/auth/password', user.token, {
      method: 'POST',
      origin: ALLOWED,
      json: { current_password: PASSWORD, new_password: 'an entirely new passphrase' },
    });
    expect(response.status, await response.clone().text()).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).not.toHaveProperty('access_token');
    expect(body.session_id).not.toBe(user.sessionId);
    const cookie = onlyCookie(response);
    expectTokenCookie(cookie);
    expect(claimsOf(cookie.value)).toMatchObject({ sid: body.session_id, gen: 1 });
  });

  it('answers a password change by Bearer with "mode": "cookie" as a cookie', async () => {
    const user = await signedInUser();
    const response = await call('/auth/password', {
      method: 'POST',
      token: user.token.access_token,
      json: { current_password: PASSWORD, new_password: 'an entirely new passphrase', mode: 'cookie' },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).not.toHaveProperty('access_token');
    expectTokenCookie(onlyCookie(response));
  });
});

describe('Security: CSRF on cookie-authenticated requests', () => {
  const stateChanging: Array<[string, string, unknown?]> = [
    ['POST', '/auth/renew'],
    ['POST', '/auth/logout'],
    ['POST', '/auth/logout-all'],
    ['POST', '/auth/password', { current_password: PASSWORD, new_password: 'an entirely new passphrase' }],
  ];

  it.each(stateChanging)('%s %s by cookie without Origin is 403 forbidden_origin', async (method, path, json) => {
    const user = await cookieUser();
    await expectProblem(await withCookie(path, user.token, { method, json }), 403, 'forbidden_origin');
  });

  it.each(stateChanging)('%s %s by cookie from an Origin not allowed is 403 and changes nothing', async (method, path, json) => {
    const user = await cookieUser();
    const response = await withCookie(path, user.token, { method, json, origin: OTHER });
    await expectProblem(response, 403, 'forbidden_origin');
    expect(response.headers.getSetCookie()).toEqual([]);
    // The session is untouched: still live on a strict route, still at generation 1.
    const sessions = await withCookie('/auth/sessions', user.token);
    expect(await sessions.json()).toMatchObject({ sessions: [{ id: user.sessionId, last_renewed_at: null }] });
  });

  it('DELETE /auth/sessions/:id by cookie from an Origin not allowed is 403 and revokes nothing', async () => {
    const user = await cookieUser();
    const response = await withCookie(`/auth/sessions/${user.sessionId}`, user.token, { method: 'DELETE', origin: OTHER });
    await expectProblem(response, 403, 'forbidden_origin');
    expect((await withCookie('/api/account', user.token)).status).toBe(200);
  });

  it('DELETE /auth/sessions/:id by cookie from an allowed Origin revokes and clears the cookie of its own session', async () => {
    const user = await cookieUser();
    const response = await withCookie(`/auth/sessions/${user.sessionId}`, user.token, { method: 'DELETE', origin: ALLOWED });
    expect(response.status).toBe(204);
    expect(onlyCookie(response)).toMatchObject({ value: '' });
    await expectProblem(await withCookie('/api/account', user.token), 401, 'session_revoked');
  });

  it('checks the Origin before the token: a forged cross-origin renew learns nothing about it', async () => {
    await expectProblem(await withCookie('/auth/renew', 'not.a.token', { method: 'POST', origin: OTHER }), 403, 'forbidden_origin');
  });

  it('needs no Origin for a Bearer header, which no browser attaches by itself', async () => {
    const user = await signedInUser();
    const next = await renewOk(user.token.access_token);
    expect(next.session_id).toBe(user.token.session_id);
  });
});
