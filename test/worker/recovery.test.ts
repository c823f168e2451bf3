/**
 * Email verification and password reset by emailed link: every flow and its refusals, with each
 * message read from what the `send_email` binding took (test/support/mailbox.ts).
 */
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import wranglerToml from '../../wrangler.toml?raw';
import { app } from '../../src/app';
import { testClock } from '../../src/clock';
import { MESSAGES_PER_WINDOW, SEND_WINDOW_MS } from '../../src/email/links';
import { linkTokenHash, newLinkToken } from '../../src/email/tokens';
import { ADDRESS_RATE_LIMIT_PERIOD_SECONDS } from '../../src/http/rate-limit';
import worker from '../../src/index';
import { direct } from '../support/direct';
import { authorityStub } from '../support/faults';
import {
  call,
  claimsOf,
  eventsOf,
  expectProblem,
  login,
  PASSWORD,
  renew,
  renewOk,
  requestTo,
  type TokenBody,
  uniqueEmail,
} from '../support/helpers';
import { type DeliveredMail, linkIn, mailbox } from '../support/mailbox';

const NEW_PASSWORD = 'a brand new passphrase, long enough';
const RESET_TTL_MS = 1800 * 1000;
const VERIFY_TTL_MS = 86_400 * 1000;

/** Registers through a mailbox and returns the user with the verification message it was sent. */
async function registered(box = mailbox(), email = uniqueEmail('mail')) {
  const response = await box.call('/auth/register', { method: 'POST', json: { email, password: PASSWORD } });
  expect(response.status).toBe(201);
  const { user } = (await response.json()) as { user: { id: string; email: string } };
  return { ...user, box, verification: box.to(email).at(-1) };
}

async function account(token: string): Promise<{ email_verified: boolean; email: string }> {
  const response = await call('/api/account', { token });
  expect(response.status).toBe(200);
  return (await response.json()) as { email_verified: boolean; email: string };
}

async function userRow(id: string) {
  return env.DB.prepare('SELECT password_hash, email_verified_at FROM users WHERE id = ?1')
    .bind(id)
    .first<{ password_hash: string; email_verified_at: number | null }>();
}

async function forgot(box: ReturnType<typeof mailbox>, email: string): Promise<Response> {
  return box.call('/auth/password/forgot', { method: 'POST', json: { email } });
}

/** A registered user who asked for a reset, and the reset message. */
async function resetRequested() {
  const user = await registered();
  const response = await forgot(user.box, user.email);
  expect(response.status).toBe(202);
  const mail = user.box.to(user.email).at(-1);
  return { ...user, mail, token: linkIn(mail, 'reset').token };
}

function reset(token: unknown, newPassword: unknown = NEW_PASSWORD, extra: Record<string, unknown> = {}): Promise<Response> {
  return call('/auth/password/reset', { method: 'POST', json: { token, new_password: newPassword, ...extra } });
}

function verify(token: unknown): Promise<Response> {
  return call('/auth/email/verify', { method: 'POST', json: { token } });
}

const MALFORMED_TOKENS: Array<[string, unknown, number, string]> = [
  ['too short', 'abc', 400, 'invalid'],
  ['one character too long', `${'A'.repeat(43)}B`, 400, 'invalid'],
  ['outside base64url', `${'A'.repeat(42)}+`, 400, 'invalid'],
  ['with padding', `${'A'.repeat(42)}=`, 400, 'invalid'],
  ['empty', '', 400, 'invalid'],
  ['a number', 42, 400, 'invalid_request'],
  ['null', null, 400, 'invalid_request'],
  ['over 128 characters', 'A'.repeat(129), 400, 'invalid_request'],
];

describe('messages', () => {
  it('go through the binding as multipart text and HTML, from EMAIL_FROM, with the link at APP_URL', async () => {
    const { email, verification } = await registered();
    const mail = verification as DeliveredMail;
    expect(mail).toBeDefined();
    expect(mail.from).toBe('no-reply@localhost');
    expect(mail.to).toBe(email);
    expect(mail.headers).toMatchObject({
      from: 'latchkey <no-reply@localhost>',
      to: email,
      subject: 'Confirm your email address',
      'mime-version': '1.0',
      'auto-submitted': 'auto-generated',
    });
    expect(mail.headers['message-id']).toMatch(/^<[0-9a-f-]{36}@localhost>$/);
    expect(mail.headers['content-type']).toMatch(/^multipart\/alternative; boundary="/);
    const { url, token } = linkIn(mail, 'verify');
    // wrangler.toml's APP_URL, with the token in the fragment: never sent to a server.
    expect(url).toBe(`http://localhost:8787/#verify=${token}`);
    expect(mail.text).toContain('within 24 hours');
    expect(mail.html).toContain(`<a href="${url}">`);
  });

  it('build links from APP_URL, never from the Host header', async () => {
    const box = mailbox();
    const email = uniqueEmail('host');
    const response = await box.call('/auth/register', {
      method: 'POST',
      json: { email, password: PASSWORD },
      headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example' },
    });
    expect(response.status).toBe(201);
    expect((await forgot(box, email)).status).toBe(202);
    expect(box.to(email)).toHaveLength(2);
    for (const mail of box.to(email)) {
      expect(mail.raw).not.toContain('evil.example');
      expect(mail.text).toContain('http://localhost:8787/#');
    }
  });

  it('store only the hash of a link token in D1', async () => {
    const { id, verification } = await registered();
    const { token } = linkIn(verification, 'verify');
    const rows = await env.DB.prepare('SELECT token_hash FROM email_tokens WHERE user_id = ?1').bind(id).all<{ token_hash: string }>();
    expect(rows.results).toEqual([{ token_hash: await linkTokenHash(token) }]);
    expect(JSON.stringify(rows.results)).not.toContain(token);
  });
});

describe('email verification', () => {
  it('starts unverified: /api/account and the token say so', async () => {
    const { email } = await registered();
    const token = await login(email);
    expect(await account(token.access_token)).toMatchObject({ email, email_verified: false });
    expect(claimsOf(token.access_token).email_verified).toBe(false);
  });

  it('the link verifies the email: /api/account, D1, the event, and the next token say so', async () => {
    const { id, email, verification } = await registered();
    const token = await login(email);
    const response = await verify(linkIn(verification, 'verify').token);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ email_verified: true });
    expect(await account(token.access_token)).toMatchObject({ email_verified: true });
    expect((await userRow(id))?.email_verified_at).toEqual(expect.any(Number));
    const renewed = await renewOk(token.access_token);
    expect(claimsOf(renewed.access_token).email_verified).toBe(true);
    expect(claimsOf((await login(email)).access_token).email_verified).toBe(true);
    const events = await eventsOf(renewed.access_token);
    expect(events.filter((event) => event.type === 'email_verified')).toEqual([
      expect.objectContaining({ detail: { via: 'link' } }),
    ]);
  });

  it('keeps a generation one token: a grace answer after the verification is the very same token', async () => {
    const { email, verification } = await registered();
    const first = await login(email);
    const second = await renewOk(first.access_token);
    expect((await verify(linkIn(verification, 'verify').token)).status).toBe(200);
    // Within REUSE_GRACE the previous token is answered the current generation again, byte for byte.
    const again = await renewOk(first.access_token);
    expect(again.access_token).toBe(second.access_token);
    expect(claimsOf(again.access_token).email_verified).toBe(false);
    expect(claimsOf((await renewOk(second.access_token)).access_token).email_verified).toBe(true);
  });

  it('refuses a used link', async () => {
    const { verification } = await registered();
    const { token } = linkIn(verification, 'verify');
    expect((await verify(token)).status).toBe(200);
    await expectProblem(await verify(token), 400, 'invalid_verification_token');
  });

  it('refuses an expired link, and the email stays unverified', async () => {
    const { id, verification } = await registered();
    testClock.set(Date.now() + VERIFY_TTL_MS + 1000);
    await expectProblem(await verify(linkIn(verification, 'verify').token), 400, 'invalid_verification_token');
    expect((await userRow(id))?.email_verified_at).toBeNull();
  });

  it('refuses an unknown link and a reset link', async () => {
    const { token: unknown } = await newLinkToken();
    await expectProblem(await verify(unknown), 400, 'invalid_verification_token');
    const { id, token } = await resetRequested();
    await expectProblem(await verify(token), 400, 'invalid_verification_token');
    expect((await userRow(id))?.email_verified_at).toBeNull();
  });

  it.each(MALFORMED_TOKENS)('refuses a token %s', async (_name, token, status, code) => {
    await expectProblem(await verify(token), status, code === 'invalid' ? 'invalid_verification_token' : code);
  });

  it("refuses another user's link in a user's object, and changes nothing", async () => {
    const alice = await registered();
    const bob = await registered();
    const tokenHash = await linkTokenHash(linkIn(bob.verification, 'verify').token);
    const outcome = await authorityStub(alice.id).markEmailVerified({ userId: alice.id, tokenHash });
    expect(outcome).toEqual({ ok: false, code: 'invalid_verification_token' });
    expect((await userRow(alice.id))?.email_verified_at).toBeNull();
    expect((await userRow(bob.id))?.email_verified_at).toBeNull();
    // Bob's link still works for Bob.
    expect((await verify(linkIn(bob.verification, 'verify').token)).status).toBe(200);
  });

  it('resend: a fresh link for the signed-in user, throttled per user, 409 once verified', async () => {
    const start = Date.now();
    testClock.set(start);
    const { email, box } = await registered();
    let token = (await login(email)).access_token;
    const resend = () => box.call('/auth/email/resend', { method: 'POST', token });
    // Registration sent the first of the window's messages.
    for (let sent = 1; sent < MESSAGES_PER_WINDOW; sent++) expect((await resend()).status).toBe(202);
    expect(box.to(email)).toHaveLength(MESSAGES_PER_WINDOW);
    const refused = await resend();
    await expectProblem(refused, 429, 'too_many_attempts');
    expect(Number(refused.headers.get('retry-after'))).toBe(SEND_WINDOW_MS / 1000);
    expect(box.to(email)).toHaveLength(MESSAGES_PER_WINDOW);
    testClock.set(start + SEND_WINDOW_MS);
    token = (await login(email)).access_token;
    expect((await resend()).status).toBe(202);
    // Every link sent works until used: the newest verifies.
    expect((await verify(linkIn(box.to(email).at(-1), 'verify').token)).status).toBe(200);
    await expectProblem(await resend(), 409, 'email_already_verified');
    // An older link of the same user, unused, still consumes cleanly and changes nothing.
    expect((await verify(linkIn(box.to(email)[0], 'verify').token)).status).toBe(200);
  });

  it('resend needs a signed-in user', async () => {
    await expectProblem(await call('/auth/email/resend', { method: 'POST' }), 401, 'missing_token');
  });
});

describe('REQUIRE_VERIFIED_EMAIL=true', () => {
  const required = { ...env, REQUIRE_VERIFIED_EMAIL: 'true' } as Env;
  const loginWith = (box: ReturnType<typeof mailbox>, email: string, password: string) =>
    box.call('/auth/login', { method: 'POST', json: { email, password }, headers: { 'cf-connecting-ip': '192.0.2.44' } });

  it('refuses an unverified account after the password check, with a fresh link; verified, it signs in', async () => {
    const box = mailbox(required);
    const { email } = await registered(box);
    // A wrong password says nothing about verification: the same answer as for an unknown email.
    const wrong = await loginWith(box, email, `${PASSWORD}!`);
    const unknown = await loginWith(box, uniqueEmail('nobody'), `${PASSWORD}!`);
    await expectProblem(wrong, 401, 'invalid_credentials');
    await expectProblem(unknown, 401, 'invalid_credentials');
    expect(box.to(email)).toHaveLength(1);

    await expectProblem(await loginWith(box, email, PASSWORD), 403, 'email_unverified');
    // The refusal sent a new link (someone whose first link expired is not stuck)...
    expect(box.to(email)).toHaveLength(2);
    expect((await verify(linkIn(box.to(email).at(-1), 'verify').token)).status).toBe(200);
    const response = await loginWith(box, email, PASSWORD);
    expect(response.status).toBe(200);
    expect(claimsOf(((await response.json()) as TokenBody).access_token).email_verified).toBe(true);
  });

  it('a refused right password does not count towards the lockout', async () => {
    const box = mailbox({ ...required, LOGIN_MAX_FAILURES: '2' } as Env);
    const { email } = await registered(box);
    for (let i = 0; i < 4; i++) await expectProblem(await loginWith(box, email, PASSWORD), 403, 'email_unverified');
    // Only the allowance's worth of links went out, however often the person tried.
    expect(box.to(email)).toHaveLength(MESSAGES_PER_WINDOW);
    expect((await verify(linkIn(box.to(email).at(-1), 'verify').token)).status).toBe(200);
    expect((await loginWith(box, email, PASSWORD)).status).toBe(200);
  });
});

describe('forgotten password', () => {
  it('answers 202 with one body whether or not the account exists; only a real account gets mail', async () => {
    const box = mailbox();
    const { email } = await registered(box);
    const known = await forgot(box, `  ${email.toUpperCase()} `);
    const unknownEmail = uniqueEmail('nobody');
    const unknown = await forgot(box, unknownEmail);
    expect(known.status).toBe(202);
    expect(unknown.status).toBe(202);
    expect(await known.text()).toBe(await unknown.text());
    expect(known.headers.get('cache-control')).toBe('no-store');
    const mail = box.to(email).at(-1) as DeliveredMail;
    expect(mail.headers.subject).toBe('Reset your password');
    expect(mail.text).toContain('within 30 minutes');
    expect(linkIn(mail, 'reset').url).toMatch(/^http:\/\/localhost:8787\/#reset=/);
    expect(box.to(unknownEmail)).toEqual([]);
    // Unknown emails never wake a user object or write a link.
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM email_tokens t JOIN users u ON u.id = t.user_id WHERE u.email = ?1')
      .bind(unknownEmail)
      .first('n')).toBe(0);
  });

  it('does nothing that depends on the account before its answer has left', async () => {
    const { email } = await registered();
    const work = async (target: string) => {
      const seen = { statements: 0, objects: 0, mails: 0 };
      const box = mailbox();
      const DB = new Proxy(env.DB, {
        get(target, property) {
          if (property === 'prepare' || property === 'batch') seen.statements += 1;
          const value = Reflect.get(target, property, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const USER_AUTHORITY = new Proxy(env.USER_AUTHORITY, {
        get(target, property) {
          if (property === 'get') seen.objects += 1;
          const value = Reflect.get(target, property, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const ctx = createExecutionContext();
      const response = await app.fetch(
        requestTo('/auth/password/forgot', { method: 'POST', json: { email: target } }),
        { ...box.bindings, DB, USER_AUTHORITY },
        ctx,
      );
      const atAnswer = { ...seen, mails: box.delivered.length, status: response.status, body: await response.text() };
      await waitOnExecutionContext(ctx);
      return { atAnswer, after: { ...seen, mails: box.delivered.length } };
    };
    const known = await work(email);
    const unknown = await work(uniqueEmail('nobody'));
    expect(known.atAnswer).toEqual(unknown.atAnswer);
    expect(known.atAnswer).toMatchObject({ statements: 0, objects: 0, mails: 0, status: 202 });
    expect(known.after).toMatchObject({ mails: 1, objects: 0 });
    expect(unknown.after).toMatchObject({ mails: 0, objects: 0 });
    expect(known.after.statements).toBeGreaterThan(0);
  });

  it('sends at most MESSAGES_PER_WINDOW per email and window, answering alike, whether or not it has an account', async () => {
    const start = Date.now();
    testClock.set(start);
    const box = mailbox();
    const { email } = await registered(box);
    const unknownEmail = uniqueEmail('nobody');
    for (let i = 0; i < MESSAGES_PER_WINDOW + 2; i++) {
      expect((await forgot(box, email)).status).toBe(202);
      expect((await forgot(box, unknownEmail)).status).toBe(202);
    }
    const resets = () => box.to(email).filter((mail) => mail.headers.subject === 'Reset your password');
    expect(resets()).toHaveLength(MESSAGES_PER_WINDOW);
    const counted = await env.DB.prepare('SELECT key, sent FROM email_sends WHERE key IN (?1, ?2) ORDER BY key')
      .bind(`reset:${email}`, `reset:${unknownEmail}`)
      .all();
    expect(counted.results.map((row) => row.sent)).toEqual([MESSAGES_PER_WINDOW + 2, MESSAGES_PER_WINDOW + 2]);
    testClock.set(start + SEND_WINDOW_MS);
    expect((await forgot(box, email)).status).toBe(202);
    expect(resets()).toHaveLength(MESSAGES_PER_WINDOW + 1);
  });

  it.each([
    ['a malformed email', { email: 'not-an-email' }],
    ['an email of the wrong type', { email: ['a@example.com'] }],
    ['no email', {}],
  ])('refuses %s with 400 invalid_request', async (_name, body) => {
    await expectProblem(await call('/auth/password/forgot', { method: 'POST', json: body }), 400, 'invalid_request');
  });
});

describe('password reset', () => {
  it('sets the password, revokes every session, records the event, and signs in a fresh session', async () => {
    const { id, email, token } = await resetRequested();
    const phone = await login(email, PASSWORD, 'phone');
    const response = await reset(token, NEW_PASSWORD, { client: 'laptop' });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const fresh = (await response.json()) as TokenBody;
    expect(fresh).toMatchObject({ token_type: 'Bearer', expires_in: 300 });
    expect(claimsOf(fresh.access_token)).toMatchObject({ sub: id, email_verified: true });

    await expectProblem(await renew(phone.access_token), 401, 'session_revoked');
    await expectProblem(await call('/api/account', { token: phone.access_token }), 401, 'session_revoked');
    await expectProblem(
      await call('/auth/login', { method: 'POST', json: { email, password: PASSWORD } }),
      401,
      'invalid_credentials',
    );
    await login(email, NEW_PASSWORD);
    // The mailbox is proved: the email counts as verified.
    expect(await account(fresh.access_token)).toMatchObject({ email_verified: true });
    const sessions = (await (await call('/auth/sessions', { token: fresh.access_token })).json()) as {
      sessions: Array<{ client: string; current: boolean }>;
    };
    expect(sessions.sessions).toContainEqual(expect.objectContaining({ client: 'laptop', current: true }));
    const events = await eventsOf(fresh.access_token);
    expect(events.map((event) => event.type)).toEqual(['login', 'login_failed', 'password_reset', 'email_verified', 'login']);
    expect(events[2]).toMatchObject({ session_id: fresh.session_id });
    expect(events[3]).toMatchObject({ detail: { via: 'password_reset' } });
  });

  it('in cookie mode answers with the cookie and no token in the body', async () => {
    const { token } = await resetRequested();
    const response = await reset(token, NEW_PASSWORD, { mode: 'cookie' });
    expect(response.status).toBe(200);
    expect(await response.json()).not.toHaveProperty('access_token');
    expect(response.headers.get('set-cookie')).toMatch(/^latchkey_at=.*HttpOnly/);
  });

  it('works once: a used link is refused, and refusing it signs nobody out', async () => {
    const { token } = await resetRequested();
    const fresh = (await (await reset(token)).json()) as TokenBody;
    await expectProblem(await reset(token, `${NEW_PASSWORD} again`), 400, 'invalid_reset_token');
    expect((await call('/api/account', { token: fresh.access_token })).status).toBe(200);
    await renewOk(fresh.access_token);
  });

  it('works once under concurrency: two resets with one link, one wins, the winner stays signed in', async () => {
    const { email, token } = await resetRequested();
    const answers = await Promise.all([reset(token, `${NEW_PASSWORD} one`), reset(token, `${NEW_PASSWORD} two`)]);
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 400]);
    const winner = answers.findIndex((answer) => answer.status === 200);
    const fresh = (await answers[winner]?.json()) as TokenBody;
    await expectProblem(answers[1 - winner] as Response, 400, 'invalid_reset_token');
    await renewOk(fresh.access_token);
    await login(email, `${NEW_PASSWORD} ${winner === 0 ? 'one' : 'two'}`);
  });

  it('refuses an expired link, and the password stays', async () => {
    const { id, token } = await resetRequested();
    const before = await userRow(id);
    testClock.set(Date.now() + RESET_TTL_MS + 1000);
    await expectProblem(await reset(token), 400, 'invalid_reset_token');
    expect((await userRow(id))?.password_hash).toBe(before?.password_hash);
  });

  it('dies when the password changes by another path: a password change', async () => {
    const { email, token } = await resetRequested();
    const session = await login(email);
    const change = await call('/auth/password', {
      method: 'POST',
      token: session.access_token,
      json: { current_password: PASSWORD, new_password: `${PASSWORD} changed` },
    });
    expect(change.status).toBe(200);
    await expectProblem(await reset(token), 400, 'invalid_reset_token');
    await login(email, `${PASSWORD} changed`);
  });

  it('dies when the password changes by another path: another reset link', async () => {
    const { email, box, token: first } = await resetRequested();
    expect((await forgot(box, email)).status).toBe(202);
    const second = linkIn(box.to(email).at(-1), 'reset').token;
    expect(second).not.toBe(first);
    expect((await reset(second)).status).toBe(200);
    await expectProblem(await reset(first, `${NEW_PASSWORD} again`), 400, 'invalid_reset_token');
    await login(email, NEW_PASSWORD);
  });

  it('refuses an unknown link and a verification link', async () => {
    const { token: unknown } = await newLinkToken();
    await expectProblem(await reset(unknown), 400, 'invalid_reset_token');
    const { id, verification } = await registered();
    const before = await userRow(id);
    await expectProblem(await reset(linkIn(verification, 'verify').token), 400, 'invalid_reset_token');
    expect(await userRow(id)).toEqual(before);
  });

  it.each(MALFORMED_TOKENS)('refuses a token %s', async (_name, token, status, code) => {
    await expectProblem(await reset(token), status, code === 'invalid' ? 'invalid_reset_token' : code);
  });

  it('refuses a new password shorter than PASSWORD_MIN_LENGTH, and the link still works after', async () => {
    const { token } = await resetRequested();
    await expectProblem(await reset(token, 'too short'), 400, 'invalid_request');
    await expectProblem(await reset(token, 42), 400, 'invalid_request');
    expect((await reset(token)).status).toBe(200);
  });

  it("refuses another user's link in a user's object, and revokes nothing", async () => {
    const alice = await registered();
    const aliceSession = await login(alice.email);
    const bob = await resetRequested();
    const tokenHash = await linkTokenHash(bob.token);
    const outcome = await authorityStub(alice.id).resetPassword({
      userId: alice.id,
      tokenHash,
      newPasswordHash: (await userRow(bob.id))?.password_hash as string,
      client: null,
    });
    expect(outcome).toEqual({ ok: false, code: 'invalid_reset_token' });
    await renewOk(aliceSession.access_token);
    await login(alice.email);
    // Bob's link still works for Bob.
    expect((await reset(bob.token)).status).toBe(200);
  });
});

describe('Security: the per-address limit covers the routes that send mail or hash', () => {
  const declared = /\[\[ratelimits\]\][^[]*?simple\s*=\s*\{\s*limit\s*=\s*(\d+)\s*,\s*period\s*=\s*(\d+)\s*\}/.exec(wranglerToml);
  const LIMIT = Number(declared?.[1]);
  const PERIOD_SECONDS = Number(declared?.[2]);

  it('forgot, reset and resend answer 429 too_many_attempts with Retry-After once an address spent its allowance', async () => {
    const { email, box } = await registered();
    const session = await login(email);
    const limited = { ...box.bindings, ADDRESS_RATE_LIMIT: 'on' } as Env;
    const group = () => Math.floor(Math.random() * 0x10000).toString(16);
    const from = (network: string) => ({ 'cf-connecting-ip': `${network}::1` });

    async function storm(network: string) {
      const spent: number[] = [];
      while (spent.length < LIMIT) {
        const response = await direct('/auth/password/forgot', { method: 'POST', json: { email: uniqueEmail('flood') }, headers: from(network) }, limited);
        spent.push(response.status);
      }
      const forgotAgain = await direct('/auth/password/forgot', { method: 'POST', json: { email }, headers: from(network) }, limited);
      const resetAgain = await direct('/auth/password/reset', {
        method: 'POST',
        json: { token: 'A'.repeat(43), new_password: NEW_PASSWORD },
        headers: from(network),
      }, limited);
      const resendAgain = await direct('/auth/email/resend', { method: 'POST', token: session.access_token, headers: from(network) }, limited);
      return { spent, refused: [forgotAgain, resetAgain, resendAgain] };
    }

    const windowOf = () => Math.floor(Date.now() / (PERIOD_SECONDS * 1000));
    let window = windowOf();
    let outcome = await storm(`2001:db8:${group()}:${group()}`);
    if (windowOf() !== window) {
      window = windowOf();
      outcome = await storm(`2001:db8:${group()}:${group()}`);
      expect(windowOf()).toBe(window);
    }
    expect(new Set(outcome.spent)).toEqual(new Set([202]));
    for (const refused of outcome.refused) {
      expect(refused.headers.get('retry-after')).toBe(String(ADDRESS_RATE_LIMIT_PERIOD_SECONDS));
      await expectProblem(refused, 429, 'too_many_attempts');
    }
  });
});

describe('nothing grows without bound', () => {
  it('the daily Cron Trigger deletes expired links and spent message counts, and keeps the rest', async () => {
    const { id, verification } = await registered();
    const live = await linkTokenHash(linkIn(verification, 'verify').token);
    const nowMs = Date.now();
    await env.DB.batch([
      env.DB.prepare(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, expires_at) VALUES (?1, ?2, 'verify', ?3)",
      ).bind(`expired-${id}`, id, nowMs - 1000),
      env.DB.prepare('INSERT INTO email_sends (key, window_started_at, sent) VALUES (?1, ?2, 3)').bind(`spent-${id}`, nowMs - SEND_WINDOW_MS - 1000),
      env.DB.prepare('INSERT INTO email_sends (key, window_started_at, sent) VALUES (?1, ?2, 3)').bind(`current-${id}`, nowMs - 1000),
    ]);
    await worker.scheduled({ cron: '17 3 * * *', scheduledTime: nowMs, noRetry() {} } as ScheduledController, env);
    const exists = async (sql: string, key: string) => (await env.DB.prepare(sql).bind(key).first()) !== null;
    expect(await exists('SELECT 1 FROM email_tokens WHERE token_hash = ?1', `expired-${id}`)).toBe(false);
    expect(await exists('SELECT 1 FROM email_tokens WHERE token_hash = ?1', live)).toBe(true);
    expect(await exists('SELECT 1 FROM email_sends WHERE key = ?1', `spent-${id}`)).toBe(false);
    expect(await exists('SELECT 1 FROM email_sends WHERE key = ?1', `current-${id}`)).toBe(true);
  });
});
