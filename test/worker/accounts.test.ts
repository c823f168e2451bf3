import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { testClock } from '../../src/clock';
import {
  adminToken,
  call,
  claimsOf,
  eventsOf,
  expectProblem,
  login,
  PASSWORD,
  register,
  renew,
  renewOk,
  signedInUser,
  type TokenBody,
  uniqueEmail,
} from '../support/helpers';

const post = (path: string, json: unknown, headers: Record<string, string> = {}) =>
  call(path, { method: 'POST', json, headers });

async function countRows(table: 'users' | 'sessions' | 'login_attempts'): Promise<number> {
  return (await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${table}`).first<{ n: number }>())?.n ?? -1;
}

describe('register', () => {
  it('creates a user and answers 201 with id, email and created_at', async () => {
    const email = uniqueEmail();
    const response = await post('/auth/register', { email: `  ${email.toUpperCase()} `, password: PASSWORD });
    expect(response.status).toBe(201);
    const { user } = (await response.json()) as { user: { id: string; email: string; created_at: string } };
    expect(user.email).toBe(email);
    expect(new Date(user.created_at).toISOString()).toBe(user.created_at);
    const row = await env.DB.prepare('SELECT password_hash FROM users WHERE id = ?1').bind(user.id).first<{ password_hash: string }>();
    expect(row?.password_hash).toMatch(/^\$scrypt\$v=1\$ln=14,r=8,p=5\$/);
  });

  it('answers 409 email_taken for an email registered before, whatever its case', async () => {
    const email = uniqueEmail();
    await register(email);
    await expectProblem(await post('/auth/register', { email: email.toUpperCase(), password: PASSWORD }), 409, 'email_taken');
  });

  it.each([
    ['a password shorter than PASSWORD_MIN_LENGTH', { password: 'fourteen chars' }],
    ['a password over 256 characters', { password: 'x'.repeat(257) }],
    ['a malformed email', { email: 'not-an-email' }],
    ['an email with spaces inside', { email: 'a b@example.com' }],
    ['an email of the wrong type', { email: 42 }],
    ['a missing password', { password: undefined }],
    ['a password of the wrong type', { password: ['x'.repeat(20)] }],
  ])('refuses %s with 400 invalid_request and creates nothing', async (_name, override) => {
    const users = await countRows('users');
    const body = { email: uniqueEmail(), password: PASSWORD, ...override };
    await expectProblem(await post('/auth/register', body), 400, 'invalid_request');
    expect(await countRows('users')).toBe(users);
  });

  it('counts password length in code points, not UTF-16 units', async () => {
    // 15 astral characters are 30 UTF-16 units: exactly the minimum.
    const response = await post('/auth/register', { email: uniqueEmail(), password: '😀'.repeat(15) });
    expect(response.status).toBe(201);
    await expectProblem(
      await post('/auth/register', { email: uniqueEmail(), password: '😀'.repeat(14) }),
      400,
      'invalid_request',
    );
  });
});

describe('bad input of any kind', () => {
  it.each([
    ['a body that is not JSON', { body: '{"email":', type: 'application/json' }, 400, 'invalid_request'],
    ['a JSON array', { body: '[]', type: 'application/json' }, 400, 'invalid_request'],
    ['JSON null', { body: 'null', type: 'application/json' }, 400, 'invalid_request'],
    ['a form body', { body: 'email=a&password=b', type: 'application/x-www-form-urlencoded' }, 400, 'invalid_request'],
    ['no content type', { body: '{}', type: undefined }, 400, 'invalid_request'],
    ['invalid UTF-8', { body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), type: 'application/json' }, 400, 'invalid_request'],
    ['a body over 16 KiB', { body: JSON.stringify({ email: 'a@b.co', password: 'x'.repeat(17_000) }), type: 'application/json' }, 413, 'payload_too_large'],
    ['deeply nested JSON arrays', { body: '['.repeat(8000) + ']'.repeat(8000), type: 'application/json' }, 400, 'invalid_request'],
    ['deeply nested JSON objects', { body: `${'{"a":'.repeat(2500)}1${'}'.repeat(2500)}`, type: 'application/json' }, 400, 'invalid_request'],
  ])('%s gets a 4xx problem on every JSON route, never a 500', async (_name, input, status, code) => {
    for (const path of ['/auth/register', '/auth/login']) {
      const headers: Record<string, string> = input.type ? { 'content-type': input.type } : {};
      const response = await call(path, { method: 'POST', body: input.body, headers });
      await expectProblem(response, status, code);
    }
  });

  it('a body streamed without Content-Length is still cut off at 16 KiB', async () => {
    const chunk = new TextEncoder().encode('x'.repeat(4096));
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 6; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const response = await call('/auth/login', {
      method: 'POST',
      body: stream,
      headers: { 'content-type': 'application/json' },
      // @ts-expect-error: required by the fetch spec for streamed bodies
      duplex: 'half',
    });
    await expectProblem(response, 413, 'payload_too_large');
  });

  it('prototype-pollution keys are inert data', async () => {
    const body = '{"__proto__": {"admin": true}, "constructor": {"prototype": {"x": 1}}, "email": "x@example.com"}';
    const response = await call('/auth/login', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    await expectProblem(response, 400, 'invalid_request');
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('an unknown route is a 404 problem', async () => {
    await expectProblem(await call('/nope'), 404, 'not_found');
    await expectProblem(await call('/auth/renew'), 404, 'not_found');
  });

  it('a client label over 64 characters, or an unknown mode, is 400', async () => {
    const { email } = await signedInUser();
    await expectProblem(await post('/auth/login', { email, password: PASSWORD, client: 'x'.repeat(65) }), 400, 'invalid_request');
    await expectProblem(await post('/auth/login', { email, password: PASSWORD, mode: 'magic' }), 400, 'invalid_request');
    await expectProblem(await post('/auth/login', { email, password: PASSWORD, client: 'a\u0000b' }), 400, 'invalid_request');
  });
});

describe('login', () => {
  it('answers a token response with the API.md claims and no email inside', async () => {
    const { id, email, token } = await signedInUser('Firefox on laptop');
    expect(token).toMatchObject({ token_type: 'Bearer', expires_in: 300 });
    const claims = claimsOf(token.access_token);
    expect(claims).toMatchObject({ iss: 'http://localhost:8787', aud: 'latchkey', sub: id, sid: token.session_id, gen: 1 });
    expect(Object.keys(claims).sort()).toEqual(['aud', 'client_id', 'email_verified', 'exp', 'gen', 'iat', 'iss', 'jti', 'sid', 'sub']);
    expect(token.access_token).not.toContain(btoa(email).slice(0, 10));
    const header = JSON.parse(atob((token.access_token.split('.')[0] as string).replace(/-/g, '+').replace(/_/g, '/')));
    expect(header).toMatchObject({ alg: 'EdDSA', typ: 'at+jwt' });
  });

  it('answers an unknown email and a wrong password with the same status and body', async () => {
    const { email } = await signedInUser();
    const wrong = await post('/auth/login', { email, password: 'wrong password, long enough' });
    const unknown = await post('/auth/login', { email: uniqueEmail(), password: 'wrong password, long enough' });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(await wrong.text()).toBe(await unknown.text());
  });

  it('does not create a Durable Object, a user or a session for an unknown email', async () => {
    const sessions = await countRows('sessions');
    await post('/auth/login', { email: uniqueEmail(), password: PASSWORD });
    expect(await countRows('sessions')).toBe(sessions);
  });

  it('refuses passwords over 256 characters before any hashing', async () => {
    const attempts = await countRows('login_attempts');
    await expectProblem(await post('/auth/login', { email: uniqueEmail(), password: 'x'.repeat(257) }), 400, 'invalid_request');
    expect(await countRows('login_attempts')).toBe(attempts);
  });

  it('accepts the email in any case and with surrounding spaces', async () => {
    const { email } = await signedInUser();
    expect((await post('/auth/login', { email: ` ${email.toUpperCase()}  `, password: PASSWORD })).status).toBe(200);
  });
});

describe('throttling', () => {
  const from = (ip: string) => ({ 'cf-connecting-ip': ip });

  it('after LOGIN_MAX_FAILURES failures answers 429 with Retry-After, even for the right password', async () => {
    const { email } = await signedInUser();
    for (let i = 0; i < 5; i++) {
      await expectProblem(await post('/auth/login', { email, password: `wrong password ${i}xx` }, from('203.0.113.7')), 401, 'invalid_credentials');
    }
    const locked = await post('/auth/login', { email, password: PASSWORD }, from('203.0.113.7'));
    await expectProblem(locked, 429, 'too_many_attempts');
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(890);
    // Another client address is not locked out.
    expect((await post('/auth/login', { email, password: PASSWORD }, from('203.0.113.8'))).status).toBe(200);
    // After LOGIN_LOCKOUT the right password works again.
    testClock.advance(900_000);
    expect((await post('/auth/login', { email, password: PASSWORD }, from('203.0.113.7'))).status).toBe(200);
  });

  it('locks unknown emails the same way', async () => {
    const email = uniqueEmail();
    for (let i = 0; i < 5; i++) await post('/auth/login', { email, password: 'guess guess guess' }, from('198.51.100.1'));
    await expectProblem(await post('/auth/login', { email, password: 'guess guess guess' }, from('198.51.100.1')), 429, 'too_many_attempts');
  });

  it('a success resets the count', async () => {
    const { email } = await signedInUser();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) await post('/auth/login', { email, password: 'wrong password here' }, from('192.0.2.9'));
      expect((await post('/auth/login', { email, password: PASSWORD }, from('192.0.2.9'))).status).toBe(200);
    }
  });

  it('a burst of concurrent guesses cannot get more than LOGIN_MAX_FAILURES password checks', async () => {
    const { email } = await signedInUser();
    const guesses = await Promise.all(
      Array.from({ length: 12 }, (_, i) => post('/auth/login', { email, password: `parallel guess ${i}` }, from('192.0.2.50'))),
    );
    const statuses = guesses.map((response) => response.status);
    expect(statuses.filter((status) => status === 401)).toHaveLength(5);
    expect(statuses.filter((status) => status === 429)).toHaveLength(7);
  });
});

describe('protected routes', () => {
  it('a request with no credentials gets missing_token with a bare Bearer challenge', async () => {
    for (const headers of [{}, { authorization: 'Bearer ' }, { authorization: 'Basic dXNlcjpwYXNz' }] as Record<string, string>[]) {
      for (const [method, path] of [['GET', '/api/me'], ['GET', '/api/account'], ['POST', '/auth/renew'], ['POST', '/auth/logout'], ['GET', '/auth/sessions']]) {
        const response = await call(path as string, { method, headers });
        await expectProblem(response, 401, 'missing_token');
        expect(response.headers.get('www-authenticate')).toBe('Bearer');
      }
    }
  });

  it('/api/me is stateless: it answers from the token alone, even for a revoked session', async () => {
    const { id, token } = await signedInUser();
    await call('/auth/logout', { method: 'POST', token: token.access_token });
    const response = await call('/api/me', { token: token.access_token });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ user_id: id, session_id: token.session_id });
  });

  it('the strict routes refuse a revoked session at once', async () => {
    const { email, token } = await signedInUser();
    const account = await call('/api/account', { token: token.access_token });
    expect(await account.json()).toMatchObject({ email, session_id: token.session_id });
    await call('/auth/logout', { method: 'POST', token: token.access_token });
    for (const path of ['/api/account', '/auth/sessions', '/auth/events']) {
      await expectProblem(await call(path, { token: token.access_token }), 401, 'session_revoked');
    }
  });

  it('an expired token is token_expired on every route but renewal and logout', async () => {
    const { token } = await signedInUser();
    testClock.advance(300_000 + 5_000);
    await expectProblem(await call('/api/me', { token: token.access_token }), 401, 'token_expired');
    await expectProblem(await call('/api/account', { token: token.access_token }), 401, 'token_expired');
    expect((await renew(token.access_token)).status).toBe(200);
  });

  it('honours at most 5 seconds of leeway on exp', async () => {
    // Frozen at a whole second, so exp is exactly 300 s away and the boundary is exact however slowly the machine runs.
    testClock.set(Math.floor(Date.now() / 1000) * 1000);
    const { token } = await signedInUser();
    testClock.advance(300_000 + 4_999);
    expect((await call('/api/me', { token: token.access_token })).status).toBe(200);
    testClock.advance(1);
    await expectProblem(await call('/api/me', { token: token.access_token }), 401, 'token_expired');
  });
});

describe('logout, logout-all and password change', () => {
  it('logout revokes only this session and is idempotent', async () => {
    const email = uniqueEmail();
    await register(email);
    const phone = await login(email, PASSWORD, 'phone');
    const laptop = await login(email, PASSWORD, 'laptop');
    for (let i = 0; i < 2; i++) expect((await call('/auth/logout', { method: 'POST', token: phone.access_token })).status).toBe(204);
    await expectProblem(await renew(phone.access_token), 401, 'session_revoked');
    expect((await renew(laptop.access_token)).status).toBe(200);
  });

  it('logout accepts an expired token within RENEW_WINDOW and answers session_inactive past it', async () => {
    const a = await signedInUser();
    testClock.advance(86_400_000);
    expect((await call('/auth/logout', { method: 'POST', token: a.token.access_token })).status).toBe(204);
    const b = await signedInUser();
    testClock.advance(15 * 86_400_000);
    await expectProblem(await call('/auth/logout', { method: 'POST', token: b.token.access_token }), 401, 'session_inactive');
  });

  it('logout-all revokes every session of the user, and only that user', async () => {
    const email = uniqueEmail();
    await register(email);
    const sessions = await Promise.all(['a', 'b', 'c'].map((label) => login(email, PASSWORD, label)));
    const bystander = await signedInUser();
    expect((await call('/auth/logout-all', { method: 'POST', token: sessions[0]?.access_token })).status).toBe(204);
    for (const session of sessions) await expectProblem(await renew(session.access_token), 401, 'session_revoked');
    expect((await renew(bystander.token.access_token)).status).toBe(200);
    const events = await eventsOf((await login(email)).access_token);
    expect(events.map((event) => event.type)).toContain('logout_all');
  });

  it('password change answers a token for a new session, revokes every older one, and needs the current password', async () => {
    const email = uniqueEmail();
    await register(email);
    const phone = await login(email, PASSWORD, 'phone');
    const laptop = await login(email, PASSWORD, 'laptop');
    const newPassword = 'an even better passphrase';
    await expectProblem(
      await call('/auth/password', { method: 'POST', token: laptop.access_token, json: { current_password: 'wrong one entirely', new_password: newPassword } }),
      401,
      'invalid_credentials',
    );
    await expectProblem(
      await call('/auth/password', { method: 'POST', token: laptop.access_token, json: { current_password: PASSWORD, new_password: 'short' } }),
      400,
      'invalid_request',
    );
    const response = await call('/auth/password', {
      method: 'POST',
      token: laptop.access_token,
      json: { current_password: PASSWORD, new_password: newPassword },
    });
    expect(response.status).toBe(200);
    const fresh = (await response.json()) as TokenBody;
    expect(fresh.session_id).not.toBe(laptop.session_id);
    for (const old of [phone, laptop]) await expectProblem(await renew(old.access_token), 401, 'session_revoked');
    expect((await renew(fresh.access_token)).status).toBe(200);
    await expectProblem(await post('/auth/login', { email, password: PASSWORD }), 401, 'invalid_credentials');
    const relogin = await login(email, newPassword);
    const events = await eventsOf(relogin.access_token);
    expect(events.map((event) => event.type)).toContain('password_changed');
    const sessions = (await (await call('/auth/sessions', { token: relogin.access_token })).json()) as {
      sessions: Array<{ id: string; client: string | null }>;
    };
    expect(sessions.sessions.find((session) => session.id === fresh.session_id)?.client).toBe('laptop');
  });
});

describe('sessions and events', () => {
  it('lists the live sessions only, marks the current one, and nulls absent fields', async () => {
    const email = uniqueEmail();
    await register(email);
    const phone = await login(email, PASSWORD, 'phone');
    const cli = await login(email);
    const gone = await login(email, PASSWORD, 'gone');
    await call('/auth/logout', { method: 'POST', token: gone.access_token });
    await renewOk(phone.access_token);
    const response = await call('/auth/sessions', { token: cli.access_token });
    const { sessions } = (await response.json()) as {
      sessions: Array<{ id: string; client: string | null; created_at: string; last_renewed_at: string | null; current: boolean }>;
    };
    expect(sessions.map((session) => session.id).sort()).toEqual([phone.session_id, cli.session_id].sort());
    expect(sessions.find((session) => session.id === cli.session_id)).toMatchObject({ client: null, current: true, last_renewed_at: null });
    const phoneRow = sessions.find((session) => session.id === phone.session_id);
    expect(phoneRow).toMatchObject({ client: 'phone', current: false });
    expect(phoneRow?.last_renewed_at).toMatch(/Z$/);
  });

  it('deletes one of the user\'s own sessions (logged as logout), and 404s another user\'s', async () => {
    const email = uniqueEmail();
    await register(email);
    const phone = await login(email, PASSWORD, 'phone');
    const laptop = await login(email, PASSWORD, 'laptop');
    const stranger = await signedInUser();
    await expectProblem(await call(`/auth/sessions/${stranger.token.session_id}`, { method: 'DELETE', token: laptop.access_token }), 404, 'not_found');
    await expectProblem(await call(`/auth/sessions/${crypto.randomUUID()}`, { method: 'DELETE', token: laptop.access_token }), 404, 'not_found');
    expect((await renew(stranger.token.access_token)).status).toBe(200);
    expect((await call(`/auth/sessions/${phone.session_id}`, { method: 'DELETE', token: laptop.access_token })).status).toBe(204);
    await expectProblem(await renew(phone.access_token), 401, 'session_revoked');
    const events = await eventsOf(laptop.access_token);
    expect(events[0]).toMatchObject({ type: 'logout', session_id: phone.session_id });
  });

  it('lists this user\'s security events newest first, with login_failed', async () => {
    const { email, token } = await signedInUser('laptop');
    await post('/auth/login', { email, password: 'not my password at all' });
    const events = await eventsOf(token.access_token);
    expect(events.map((event) => event.type)).toEqual(['login_failed', 'login']);
    expect(events[1]).toMatchObject({ session_id: token.session_id, detail: { client: 'laptop' } });
  });
});

describe('admin', () => {
  const revoke = (userId: string, token?: string) => call(`/admin/users/${userId}/revoke`, { method: 'POST', token });

  it('revokes every session of a user with the ADMIN_TOKEN, logged as admin_revoked', async () => {
    const { id, email, token } = await signedInUser();
    expect((await revoke(id, adminToken())).status).toBe(204);
    await expectProblem(await renew(token.access_token), 401, 'session_revoked');
    const events = await eventsOf((await login(email)).access_token);
    expect(events.map((event) => event.type)).toContain('admin_revoked');
  });

  it('answers 401 unauthorized without the right token, and 404 for an unknown user', async () => {
    const { id, token } = await signedInUser();
    await expectProblem(await revoke(id), 401, 'unauthorized');
    await expectProblem(await revoke(id, token.access_token), 401, 'unauthorized');
    await expectProblem(await revoke(crypto.randomUUID(), adminToken()), 404, 'not_found');
    expect((await renew(token.access_token)).status).toBe(200);
  });
});

describe('JWKS and health', () => {
  it('serves the public keys only, each with kid, alg and use, cacheable', async () => {
    const response = await call('/.well-known/jwks.json');
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const { keys } = (await response.json()) as { keys: Array<Record<string, string>> };
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
      expect(key).toMatchObject({ alg: 'EdDSA', use: 'sig', kty: 'OKP', crv: 'Ed25519' });
    }
    const { token } = await signedInUser();
    const header = JSON.parse(atob((token.access_token.split('.')[0] as string).replace(/-/g, '+').replace(/_/g, '/')));
    expect(keys[0]?.kid).toBe(header.kid);
  });

  it('/health answers ok', async () => {
    const response = await call('/health');
    expect(await response.json()).toEqual({ ok: true });
  });
});
