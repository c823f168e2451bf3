/**
 * Bugs found by the property tests and the attack corpus, each kept as a named test.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { direct } from '../support/direct';
import { faultyD1, StatementFaults } from '../support/faults';
import { call, claimsOf, eventsOf, expectProblem, PASSWORD, renew, signedInUser, uniqueEmail } from '../support/helpers';

const rawJson = (path: string, body: string) =>
  call(path, { method: 'POST', body, headers: { 'content-type': 'application/json' } });

describe('lone surrogates in JSON strings', () => {
  // "\ud800" is valid JSON but not Unicode text. Before the fix it was stored in D1 as bytes that
  // are not UTF-8 (a client label came back from /auth/sessions as three U+FFFD) and hashed by
  // scrypt as U+FFFD, so "\ud800" and "\udfff" were the same password.
  it('an email with a lone surrogate is refused at registration and nothing is stored', async () => {
    const email = uniqueEmail();
    const response = await rawJson('/auth/register', `{"email":"a\\ud800${email}","password":"${PASSWORD}"}`);
    await expectProblem(response, 400, 'invalid_request');
    const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM users WHERE email LIKE ?1').bind(`%${email}`).first<{ n: number }>();
    expect(row?.n).toBe(0);
  });

  it('a client label with a lone surrogate is refused at login, before any session is opened', async () => {
    const { id, email } = await signedInUser();
    const response = await rawJson('/auth/login', `{"email":"${email}","password":"${PASSWORD}","client":"x\\udc00y"}`);
    await expectProblem(response, 400, 'invalid_request');
    const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1').bind(id).first<{ n: number }>();
    expect(row?.n).toBe(1);
  });

  it('a password with a lone surrogate is refused, so it cannot collide with U+FFFD', async () => {
    const body = (password: string) => `{"email":"${uniqueEmail()}","password":"${password}"}`;
    await expectProblem(await rawJson('/auth/register', body(`${PASSWORD}\\ud800`)), 400, 'invalid_request');
    // A well-formed pair of surrogates is an ordinary astral character.
    expect((await rawJson('/auth/register', body(`${PASSWORD}\\ud83d\\ude00`))).status).toBe(201);
  });
});

describe('non-canonical base64url in a token', () => {
  // The last character of a segment can carry bits a decoder drops; before the fix a genuine
  // token with those bits set (16 spellings of one signature) verified, so one credential had
  // several spellings for anything that compares, logs or deny-lists tokens.
  it('a genuine token whose signature has its unused trailing bits set is invalid_token on every route', async () => {
    const { token } = await signedInUser();
    const [header, payload, signature] = token.access_token.split('.') as [string, string, string];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(signature.slice(-1));
    expect(signature.length % 4).toBe(2);
    const variant = `${header}.${payload}.${signature.slice(0, -1)}${alphabet[last | 0b0001]}`;
    expect(variant).not.toBe(token.access_token);
    await expectProblem(await call('/api/me', { token: variant }), 401, 'invalid_token');
    await expectProblem(await renew(variant), 401, 'invalid_token');
    // The canonical spelling still works, and nothing changed.
    expect((await call('/api/me', { token: token.access_token })).status).toBe(200);
    const renewed = await renew(token.access_token);
    expect(claimsOf(((await renewed.json()) as { access_token: string }).access_token).gen).toBe(2);
  });
});

describe('failed logins cost the same D1 work whether or not the email has an account', () => {
  // A wrong password for a real account used to add one D1 write (its login_failed event) that
  // an unknown email did not: a difference of one round trip to the primary, measurable from
  // outside. Now both send the same statements; the event is still written for real accounts.
  it('an unknown email and a wrong password send the same statements, and only the account gets an event', async () => {
    const { email, token } = await signedInUser();
    const statementsOf = async (body: { email: string; password: string }) => {
      const recorder = new StatementFaults(undefined);
      const response = await direct('/auth/login', { method: 'POST', json: body }, { ...env, DB: faultyD1(env.DB, recorder.pick) });
      await expectProblem(response, 401, 'invalid_credentials');
      return recorder.seen;
    };
    const unknown = await statementsOf({ email: uniqueEmail('nobody'), password: PASSWORD });
    const wrong = await statementsOf({ email, password: `${PASSWORD} but wrong` });
    expect(wrong).toEqual(unknown);
    expect((await eventsOf(token.access_token)).map((event) => event.type)).toEqual(['login_failed', 'login']);
  });
});

describe('the login throttle counts an IPv6 client by its /64', () => {
  // Counting each IPv6 address on its own gave one subscriber 2^64 fresh counters: rotating the
  // interface part of the address made the lockout meaningless.
  it('failures from different addresses of one /64 share one lockout; another /64 is not locked', async () => {
    const { email } = await signedInUser();
    const from = (ip: string) => ({ 'content-type': 'application/json', 'cf-connecting-ip': ip });
    const attempt = (ip: string, password: string) =>
      call('/auth/login', { method: 'POST', headers: from(ip), body: JSON.stringify({ email, password }) });
    for (let i = 1; i <= 5; i++) {
      await expectProblem(await attempt(`2001:db8:77:1::${i}`, `wrong guess number ${i}`), 401, 'invalid_credentials');
    }
    await expectProblem(await attempt('2001:db8:77:1:ffff:ffff:ffff:fffe', PASSWORD), 429, 'too_many_attempts');
    expect((await attempt('2001:db8:77:2::1', PASSWORD)).status).toBe(200);
  });
});
