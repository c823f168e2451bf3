/**
 * Operators' everyday actions (looking a user up, clearing a login lockout) and the deletion of
 * an account by its owner (DELETE /auth/account): what each answers, what it changes, what it
 * refuses, and what an interrupted deletion leaves behind.
 */
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeEach, describe, expect, it } from 'vitest';
import { now, testClock } from '../../src/clock';
import { authorityNamespaceWith } from '../support/authority-with';
import { direct } from '../support/direct';
import { authorityStub, bindingsWith, faultyD1, heldD1, StatementFaults, statementFaultCases } from '../support/faults';
import {
  adminToken,
  call,
  type CallInit,
  eventsOf,
  expectProblem,
  login,
  PASSWORD,
  renew,
  renewOk,
  type TokenBody,
  uniqueEmail,
} from '../support/helpers';
import { type AuthenticationJSON, SoftCredential } from '../support/soft-authenticator';
import { mirrorOf, objectRows, scheduledAlarm } from '../support/user-object';

const ORIGIN = 'http://localhost:8787';
const GRACE_MS = 10_000;
const LOCKOUT_MS = 900_000;

// The user's object sets its retry alarm relative to `now()`: an hour ahead of the wall clock,
// the platform never runs it during a test, only `runDurableObjectAlarm` does, when a test says so.
let clockAt = Date.now() + 3_600_000;
beforeEach(() => {
  clockAt = Math.max(clockAt, Date.now() + 3_600_000) + 120_000;
  testClock.set(clockAt);
});

// ---------------------------------------------------------------------------------------------
// Helpers

interface Account {
  id: string;
  email: string;
  token: TokenBody;
}

/** Registers through the Worker's own fetch, waiting for what it does after answering (the verification message). */
async function newAccount(email = uniqueEmail('ops')): Promise<Account> {
  const response = await direct('/auth/register', { method: 'POST', json: { email, password: PASSWORD } });
  expect(response.status, await response.clone().text()).toBe(201);
  const { user } = (await response.json()) as { user: { id: string } };
  return { id: user.id, email, token: await login(email) };
}

const asAdmin = (init: CallInit = {}): CallInit => ({ ...init, headers: { ...init.headers, authorization: `Bearer ${adminToken()}` } });

function deleteAccount(token: string, json: unknown, init: CallInit = {}, bindings: Env = env): Promise<Response> {
  return direct('/auth/account', { ...init, method: 'DELETE', token, json }, bindings);
}

const from = (ip: string) => ({ 'cf-connecting-ip': ip });

function failLogin(email: string, ip: string): Promise<Response> {
  return call('/auth/login', { method: 'POST', json: { email, password: 'not the password at all' }, headers: from(ip) });
}

/** Every D1 row that names the user or their email, table by table. */
async function d1RowsOf(account: { id: string; email: string }) {
  const count = (sql: string, ...binds: unknown[]) => env.DB.prepare(sql).bind(...binds);
  const results = await env.DB.batch([
    count('SELECT COUNT(*) AS n FROM users WHERE id = ?1 OR email = ?2', account.id, account.email),
    count('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1', account.id),
    count('SELECT COUNT(*) AS n FROM login_attempts WHERE email = ?1', account.email),
    count('SELECT COUNT(*) AS n FROM email_tokens WHERE user_id = ?1', account.id),
    count('SELECT COUNT(*) AS n FROM email_sends WHERE key = ?1', `verify:${account.id}`),
    count('SELECT COUNT(*) AS n FROM passkeys WHERE user_id = ?1', account.id),
  ]);
  const [users, sessions, attempts, links, sends, passkeys] = results.map((result) => (result.results[0] as { n: number }).n) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { users, sessions, attempts, links, sends, passkeys };
}

const NO_D1_ROWS = { users: 0, sessions: 0, attempts: 0, links: 0, sends: 0, passkeys: 0 };

/**
 * The rows of every table of the user's object but the schema's version (AUTOINCREMENT's counters
 * included), whether its key-value storage holds anything, and its alarm.
 */
function objectStorageOf(userId: string): Promise<{ rows: Record<string, number>; keys: number; alarm: number | null }> {
  return runInDurableObject(authorityStub(userId), async (_instance, state) => {
    const tables = state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      .toArray()
      .map((row) => row.name)
      .filter((name) => name !== 'schema_version' && !name.startsWith('_cf_'));
    const rows: Record<string, number> = {};
    for (const name of tables) rows[name] = state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ${name}`).one().n;
    return { rows, keys: (await state.storage.list()).size, alarm: await state.storage.getAlarm() };
  });
}

function emptyObject(rows: Record<string, number>) {
  return Object.fromEntries(Object.keys(rows).map((name) => [name, 0]));
}

/** Nothing of the account is left: no D1 row, no row in its object, no alarm; its tokens are dead everywhere. */
async function expectGone(account: Account, tokens: TokenBody[] = [account.token]): Promise<void> {
  expect(await d1RowsOf(account)).toEqual(NO_D1_ROWS);
  const storage = await objectStorageOf(account.id);
  expect(Object.keys(storage.rows)).toEqual(expect.arrayContaining(['user_state', 'sessions', 'events', 'outbox']));
  expect(storage.rows).toEqual(emptyObject(storage.rows));
  expect(storage.keys).toBe(0);
  expect(storage.alarm).toBeNull();
  for (const token of tokens) {
    await expectProblem(await renew(token.access_token), 401, 'session_revoked');
    await expectProblem(await call('/api/account', { token: token.access_token }), 401, 'session_revoked');
  }
  await expectProblem(await call('/auth/login', { method: 'POST', json: { email: account.email, password: PASSWORD } }), 401, 'invalid_credentials');
}

/** The account is whole: its D1 rows and its session, which renews. */
async function expectIntact(account: Account): Promise<void> {
  expect((await d1RowsOf(account)).users).toBe(1);
  expect((await call('/api/account', { token: account.token.access_token })).status).toBe(200);
  account.token = await renewOk(account.token.access_token);
}

interface RequestOptionsJSON {
  challenge: string;
  rpId: string;
}

async function requestOptions(): Promise<RequestOptionsJSON> {
  const response = await call('/auth/passkeys/login/options', { method: 'POST' });
  expect(response.status).toBe(200);
  return (await response.json()) as RequestOptionsJSON;
}

async function addPasskey(token: string): Promise<SoftCredential> {
  const credential = await SoftCredential.create(ORIGIN);
  const options = await call('/auth/passkeys/register/options', { method: 'POST', token });
  expect(options.status).toBe(200);
  const registration = await credential.register(await options.json());
  const response = await call('/auth/passkeys/register', { method: 'POST', token, json: { response: registration } });
  expect(response.status, await response.clone().text()).toBe(201);
  return credential;
}

// ---------------------------------------------------------------------------------------------
// Operators: looking a user up

interface AccountDocument {
  id: string;
  email: string;
  created_at: string;
  email_verified_at: string | null;
  revoked_before: string | null;
  live_sessions: number;
  passkeys: number;
  lockout: { locked: boolean; locked_until: string | null; locked_addresses: number; failing_addresses: number };
}

async function lookUp(path: string): Promise<AccountDocument> {
  const response = await call(path, asAdmin());
  expect(response.status, await response.clone().text()).toBe(200);
  expect(response.headers.get('cache-control')).toBe('no-store');
  return ((await response.json()) as { user: AccountDocument }).user;
}

describe('GET /admin/users?email= and GET /admin/users/:id', () => {
  it('answer the account as D1 and its object hold it, the same by email and by id, and nothing secret', async () => {
    const account = await newAccount();
    await login(account.email);
    const created = await env.DB.prepare('SELECT created_at FROM users WHERE id = ?1').bind(account.id).first<{ created_at: number }>();
    const byEmail = await lookUp(`/admin/users?email=${encodeURIComponent(` ${account.email.toUpperCase()} `)}`);
    expect(byEmail).toEqual({
      id: account.id,
      email: account.email,
      created_at: new Date(created?.created_at as number).toISOString(),
      email_verified_at: null,
      revoked_before: null,
      live_sessions: 2,
      passkeys: 0,
      lockout: { locked: false, locked_until: null, locked_addresses: 0, failing_addresses: 0 },
    });
    expect(await lookUp(`/admin/users/${account.id}`)).toEqual(byEmail);
  });

  it('follow the account: passkeys, revocations, sessions ended, sessions idle past RENEW_WINDOW', async () => {
    const account = await newAccount();
    await addPasskey(account.token.access_token);
    const second = await login(account.email);
    expect((await call('/auth/logout', { method: 'POST', token: second.access_token })).status).toBe(204);
    expect(await lookUp(`/admin/users/${account.id}`)).toMatchObject({ passkeys: 1, live_sessions: 1, revoked_before: null });

    // D1 still holds the session's mirror unrevoked; the object judges it idle.
    testClock.advance(14 * 86_400_000 + 300_000 + 1000);
    expect(await lookUp(`/admin/users/${account.id}`)).toMatchObject({ live_sessions: 0 });

    const fresh = await login(account.email);
    expect((await call('/auth/logout-all', { method: 'POST', token: fresh.access_token })).status).toBe(204);
    const after = await lookUp(`/admin/users/${account.id}`);
    expect(after.live_sessions).toBe(0);
    expect(Date.parse(after.revoked_before as string)).toBeGreaterThanOrEqual(now() - 1000);
  });

  it('show the lockout: addresses locked out and until when, and addresses with failures still counted', async () => {
    const account = await newAccount();
    for (let i = 0; i < 5; i++) await expectProblem(await failLogin(account.email, '203.0.113.21'), 401, 'invalid_credentials');
    await expectProblem(await failLogin(account.email, '203.0.113.22'), 401, 'invalid_credentials');
    const { lockout } = await lookUp(`/admin/users/${account.id}`);
    expect(lockout).toEqual({
      locked: true,
      locked_until: new Date(now() + LOCKOUT_MS).toISOString(),
      locked_addresses: 1,
      failing_addresses: 2,
    });
    // Once LOGIN_LOCKOUT has passed, nothing counts any more.
    testClock.advance(LOCKOUT_MS);
    expect((await lookUp(`/admin/users/${account.id}`)).lockout).toEqual({
      locked: false,
      locked_until: null,
      locked_addresses: 0,
      failing_addresses: 0,
    });
  });

  it('answer 404 for an unknown user, 400 for a missing or oversized email, 401 without the ADMIN_TOKEN', async () => {
    const account = await newAccount();
    await expectProblem(await call(`/admin/users?email=${encodeURIComponent(uniqueEmail('nobody'))}`, asAdmin()), 404, 'not_found');
    await expectProblem(await call(`/admin/users/${crypto.randomUUID()}`, asAdmin()), 404, 'not_found');
    await expectProblem(await call(`/admin/users/${'a'.repeat(129)}`, asAdmin()), 404, 'not_found');
    await expectProblem(await call('/admin/users', asAdmin()), 400, 'invalid_request');
    await expectProblem(await call('/admin/users?email=%20%20', asAdmin()), 400, 'invalid_request');
    await expectProblem(await call(`/admin/users?email=${'a'.repeat(321)}`, asAdmin()), 400, 'invalid_request');
    await expectProblem(await call(`/admin/users?email=${encodeURIComponent(account.email)}`), 401, 'unauthorized');
    await expectProblem(await call(`/admin/users/${account.id}`, { token: account.token.access_token }), 401, 'unauthorized');
  });
});

// ---------------------------------------------------------------------------------------------
// Operators: clearing a lockout

describe('POST /admin/users/:id/unlock', () => {
  const unlock = (userId: string, init: CallInit = asAdmin()) => call(`/admin/users/${userId}/unlock`, { ...init, method: 'POST' });

  it("clears the account's lockout from every address, and the user sees lockout_cleared", async () => {
    const account = await newAccount();
    for (const ip of ['203.0.113.31', '203.0.113.32']) {
      for (let i = 0; i < 5; i++) await failLogin(account.email, ip);
      await expectProblem(
        await call('/auth/login', { method: 'POST', json: { email: account.email, password: PASSWORD }, headers: from(ip) }),
        429,
        'too_many_attempts',
      );
    }
    expect((await unlock(account.id)).status).toBe(204);
    expect((await lookUp(`/admin/users/${account.id}`)).lockout).toMatchObject({ locked: false, failing_addresses: 0 });
    for (const ip of ['203.0.113.31', '203.0.113.32']) {
      const response = await call('/auth/login', { method: 'POST', json: { email: account.email, password: PASSWORD }, headers: from(ip) });
      expect(response.status, ip).toBe(200);
    }
    const events = await eventsOf(account.token.access_token);
    expect(events.find((event) => event.type === 'lockout_cleared')).toMatchObject({ session_id: null, detail: { addresses: 2 } });
  });

  it("touches no other email's failures, and logs nothing when there was nothing to clear", async () => {
    const [account, other] = [await newAccount(), await newAccount()];
    for (let i = 0; i < 5; i++) await failLogin(other.email, '203.0.113.41');
    expect((await unlock(account.id)).status).toBe(204);
    expect((await eventsOf(account.token.access_token)).map((event) => event.type)).toEqual(['login']);
    expect((await lookUp(`/admin/users/${other.id}`)).lockout).toMatchObject({ locked: true, locked_addresses: 1 });
  });

  it('answers 404 for an unknown user and 401 without the ADMIN_TOKEN, clearing nothing', async () => {
    const account = await newAccount();
    for (let i = 0; i < 5; i++) await failLogin(account.email, '203.0.113.51');
    await expectProblem(await unlock(crypto.randomUUID()), 404, 'not_found');
    await expectProblem(await unlock('x'.repeat(129)), 404, 'not_found');
    await expectProblem(await unlock(account.id, {}), 401, 'unauthorized');
    await expectProblem(await unlock(account.id, { token: account.token.access_token }), 401, 'unauthorized');
    expect((await lookUp(`/admin/users/${account.id}`)).lockout.locked).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Deleting an account

describe('DELETE /auth/account with the password', () => {
  it('answers 204 and leaves nothing: no D1 row, no object row or alarm, no token that renews or passes a strict check', async () => {
    const account = await newAccount();
    const other = await login(account.email, PASSWORD, 'phone');
    await addPasskey(account.token.access_token);
    // A reset link and failed logins, so that each of those tables holds something of the user.
    expect((await direct('/auth/password/forgot', { method: 'POST', json: { email: account.email } })).status).toBe(202);
    await failLogin(account.email, '198.51.100.61');
    const before = await d1RowsOf(account);
    expect(before).toEqual({ users: 1, sessions: 2, attempts: 1, links: 2, sends: 1, passkeys: 1 });
    expect(await scheduledAlarm(account.id)).not.toBeNull();
    // Whatever the object's key-value storage may hold goes too, though nothing of latchkey's is kept there.
    await runInDurableObject(authorityStub(account.id), (_instance, state) => state.storage.put('probe', 1));
    expect((await objectStorageOf(account.id)).rows).toMatchObject({ sqlite_sequence: 1 });

    const response = await deleteAccount(account.token.access_token, { password: PASSWORD });
    expect(response.status, await response.clone().text()).toBe(204);
    expect(await response.text()).toBe('');
    await expectGone(account, [account.token, other]);
  });

  it('lets the email be registered again: a new user id, none of the old state', async () => {
    const account = await newAccount();
    const old = account.token;
    await login(account.email, PASSWORD, 'laptop');
    expect((await deleteAccount(old.access_token, { password: PASSWORD })).status).toBe(204);

    const again = await newAccount(account.email);
    expect(again.id).not.toBe(account.id);
    expect((await eventsOf(again.token.access_token)).map((event) => event.type)).toEqual(['login']);
    const sessions = await call('/auth/sessions', { token: again.token.access_token });
    expect(((await sessions.json()) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id)).toEqual([again.token.session_id]);
    expect((await lookUp(`/admin/users?email=${encodeURIComponent(account.email)}`)).id).toBe(again.id);
    await expectProblem(await renew(old.access_token), 401, 'session_revoked');
  });

  it('a wrong password is 401 invalid_credentials, deletes nothing, counts as a failed login and is logged', async () => {
    const account = await newAccount();
    await expectProblem(await deleteAccount(account.token.access_token, { password: 'not the password at all' }), 401, 'invalid_credentials');
    await expectIntact(account);
    expect((await d1RowsOf(account)).attempts).toBe(1);
    expect((await eventsOf(account.token.access_token)).map((event) => event.type)).toEqual(['login_failed', 'login']);
    // The same throttle as a login: after LOGIN_MAX_FAILURES, even the right password is refused.
    for (let i = 0; i < 4; i++) await deleteAccount(account.token.access_token, { password: `wrong password ${i}xx` });
    const locked = await deleteAccount(account.token.access_token, { password: PASSWORD });
    await expectProblem(locked, 429, 'too_many_attempts');
    await expectIntact(account);
  });

  it('refuses bad bodies with 400 invalid_request, deleting nothing', async () => {
    const account = await newAccount();
    const cases: unknown[] = [
      {},
      { password: PASSWORD, passkey: {} },
      { password: 42 },
      { password: null },
      { password: 'x'.repeat(257) },
      { passkey: 'not an object' },
      { passkey: { id: 'AAAA', rawId: 'BBBB', type: 'public-key', response: {} } },
      [PASSWORD],
    ];
    for (const json of cases) {
      await expectProblem(await deleteAccount(account.token.access_token, json), 400, 'invalid_request');
    }
    const notJson = await direct('/auth/account', {
      method: 'DELETE',
      token: account.token.access_token,
      headers: { 'content-type': 'text/plain' },
      body: PASSWORD,
    });
    await expectProblem(notJson, 400, 'invalid_request');
    await expectIntact(account);
    expect((await d1RowsOf(account)).attempts).toBe(0);
  });

  it('needs a live session: no token, an ended session or a stateless check is not enough', async () => {
    const account = await newAccount();
    await expectProblem(await direct('/auth/account', { method: 'DELETE', json: { password: PASSWORD } }), 401, 'missing_token');
    const ended = await login(account.email);
    expect((await call('/auth/logout', { method: 'POST', token: ended.access_token })).status).toBe(204);
    // Unexpired, so a stateless route would still take it; the strict check does not.
    expect((await call('/api/me', { token: ended.access_token })).status).toBe(200);
    await expectProblem(await deleteAccount(ended.access_token, { password: PASSWORD }), 401, 'session_revoked');
    await expectIntact(account);
  });

  it("the user's object refuses a session it holds revoked, whatever D1's mirror told the strict check", async () => {
    const account = await newAccount();
    const newest = await renewOk(account.token.access_token);
    testClock.advance(GRACE_MS + 1000);
    // A reuse detected while D1 is down: the object ends every session, D1's mirror still says live.
    const down = faultyD1(env.DB, (sql) => (/^UPDATE (users|sessions)/.test(sql) ? 'before' : undefined));
    const detected = await direct('/auth/renew', { method: 'POST', token: account.token.access_token }, {
      ...env,
      USER_AUTHORITY: authorityNamespaceWith({ ...env, DB: down }),
    });
    await expectProblem(detected, 401, 'token_reused');
    expect((await call('/api/account', { token: newest.access_token })).status).toBe(200);

    await expectProblem(await deleteAccount(newest.access_token, { password: PASSWORD }), 401, 'session_revoked');
    expect((await d1RowsOf(account)).users).toBe(1);
    expect((await login(account.email)).session_id).toBeTruthy();
  });

  it('the object refuses a password hash that is no longer the one the Worker checked', async () => {
    const account = await newAccount();
    const stale = await authorityStub(account.id).deleteAccount({
      userId: account.id,
      sessionId: account.token.session_id,
      proof: { kind: 'password', checkedPasswordHash: '$scrypt$v=1$not-the-current-hash' },
    });
    expect(stale).toEqual({ ok: false, code: 'invalid_credentials' });
    expect((await objectRows(account.id)).outbox).toEqual([]);
    await expectIntact(account);
  });

  it('clears the cookie in cookie mode, and needs an allowed Origin there (CSRF)', async () => {
    const account = await newAccount();
    const signedIn = await call('/auth/login', { method: 'POST', json: { email: account.email, password: PASSWORD, mode: 'cookie' } });
    expect(signedIn.status).toBe(200);
    const cookie = (signedIn.headers.get('set-cookie') ?? '').split(';')[0] as string;
    expect(cookie).toMatch(/^latchkey_at=ey/);

    const forged = await direct('/auth/account', { method: 'DELETE', json: { password: PASSWORD }, headers: { cookie } });
    await expectProblem(forged, 403, 'forbidden_origin');
    expect((await d1RowsOf(account)).users).toBe(1);

    const response = await direct('/auth/account', { method: 'DELETE', json: { password: PASSWORD }, headers: { cookie, origin: ORIGIN } });
    expect(response.status, await response.clone().text()).toBe(204);
    expect(response.headers.get('set-cookie')).toMatch(/^latchkey_at=; Max-Age=0; Path=\/; HttpOnly; Secure; SameSite=Strict/);
    await expectGone(account);
  });

  it('a bearer deletion sets no cookie', async () => {
    const account = await newAccount();
    const response = await deleteAccount(account.token.access_token, { password: PASSWORD });
    expect(response.status).toBe(204);
    expect(response.headers.get('set-cookie')).toBeNull();
  });
});

describe('DELETE /auth/account with a passkey', () => {
  async function assertion(credential: SoftCredential, overrides: Parameters<SoftCredential['authenticate']>[1] = {}): Promise<AuthenticationJSON> {
    return credential.authenticate(await requestOptions(), overrides);
  }

  it('answers 204 for a passkey of the account over a challenge from the sign-in options; everything goes', async () => {
    const account = await newAccount();
    const credential = await addPasskey(account.token.access_token);
    const response = await deleteAccount(account.token.access_token, { passkey: await assertion(credential) });
    expect(response.status, await response.clone().text()).toBe(204);
    await expectGone(account);
    // The passkey signs nobody in any more.
    const signIn = await call('/auth/passkeys/login', { method: 'POST', json: { response: await assertion(credential) } });
    await expectProblem(signIn, 401, 'invalid_credentials');
  });

  it("refuses another user's passkey, a spent or unknown challenge, a forged signature and a stale counter, deleting nothing", async () => {
    const account = await newAccount();
    const own = await addPasskey(account.token.access_token);
    const stranger = await newAccount();
    const foreign = await addPasskey(stranger.token.access_token);

    await expectProblem(await deleteAccount(account.token.access_token, { passkey: await assertion(foreign) }), 401, 'invalid_credentials');

    const answered = await assertion(own);
    const signIn = await call('/auth/passkeys/login', { method: 'POST', json: { response: answered } });
    expect(signIn.status).toBe(200);
    await expectProblem(await deleteAccount(account.token.access_token, { passkey: answered }), 401, 'invalid_credentials');

    const unissued = await own.authenticate({ challenge: 'A'.repeat(43), rpId: 'localhost' });
    await expectProblem(await deleteAccount(account.token.access_token, { passkey: unissued }), 401, 'invalid_credentials');

    const forged = await assertion(own);
    const signature = forged.response.signature;
    forged.response.signature = `${signature.slice(0, -4)}${signature.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    await expectProblem(await deleteAccount(account.token.access_token, { passkey: forged }), 401, 'invalid_credentials');

    // The sign-in above stored counter 1; a signature over counter 1 again is a cloned authenticator's.
    const stale = await assertion(own, { counter: 1 });
    await expectProblem(await deleteAccount(account.token.access_token, { passkey: stale }), 401, 'invalid_credentials');
    const regressed = (await eventsOf(account.token.access_token)).find((event) => event.type === 'passkey_counter_regressed');
    expect(regressed).toMatchObject({ detail: { passkey_id: own.id, stored_counter: 1, presented_counter: 1 } });

    await expectIntact(account);
    await expectIntact(stranger);
    expect((await d1RowsOf(account)).passkeys).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// An interrupted deletion

/**
 * The statements DELETE /auth/account sends with a password, Worker and object together, in order:
 * the strict check; the throttle's charge with the lookup of the email (one batch); the object's
 * read of the password hash; then D1's deletion of every row of the user, one batch.
 */
const DELETION = [
  /^\s*SELECT s\.created_at, s\.revoked_at, u\.revoked_before, u\.email/,
  /^\s*INSERT INTO login_attempts/,
  /^SELECT id, password_hash[\w, ]* FROM users WHERE email/,
  /^SELECT password_hash FROM users WHERE id/,
  /^DELETE FROM login_attempts WHERE email = \(SELECT email FROM users/,
  /^DELETE FROM email_sends/,
  /^DELETE FROM email_tokens/,
  /^DELETE FROM passkeys/,
  /^DELETE FROM sessions/,
  /^DELETE FROM users/,
];
const BATCHED = [1, 2, 4, 5, 6, 7, 8, 9];
/** From this statement on, the object has revoked every session and owes D1 the deletion. */
const OWED_FROM = 4;

function deleteThrough(account: Account, faults: StatementFaults): Promise<Response> {
  return deleteAccount(account.token.access_token, { password: PASSWORD }, {}, bindingsWith(faultyD1(env.DB, faults.pick)));
}

describe('an interrupted deletion', () => {
  it('sends the statements declared, batched as declared', async () => {
    const account = await newAccount();
    const recorder = new StatementFaults(undefined);
    expect((await deleteThrough(account, recorder)).status).toBe(204);
    expect(recorder.seen).toHaveLength(DELETION.length);
    for (const [index, sql] of DELETION.entries()) expect(recorder.seen[index], `statement ${index}`).toMatch(sql);
    expect([...recorder.batched]).toEqual(BATCHED);
    await expectGone(account);
  });

  it.each(statementFaultCases(DELETION.map((sql, index) => ({ sql, batch: BATCHED.includes(index) }))))('statement $index ($sql) failing $timing: 503, D1 unchanged, no token renews once owed; the retry finishes', async ({
    index,
    timing,
  }) => {
    const account = await newAccount();
    const before = await d1RowsOf(account);
    const answer = await deleteThrough(account, new StatementFaults(index, timing));
    await expectProblem(answer, 503, 'temporarily_unavailable');
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // D1 exactly as before (a batch failing in its middle rolled back whole), but the charged attempt.
    const charged = index >= 3 ? 1 : 0;
    expect(await d1RowsOf(account)).toEqual({ ...before, attempts: before.attempts + charged });

    const rows = await objectRows(account.id);
    if (index < OWED_FROM) {
      expect(rows.outbox).toEqual([]);
      account.token = await renewOk(account.token.access_token);
    } else {
      // Owed: every session revoked in the object, the deletion queued, its retry seconds away.
      expect(rows.outbox.map((row) => JSON.parse(row.write).kind)).toEqual(['delete_user']);
      expect(rows.user?.revoked_before).toBeGreaterThanOrEqual(rows.sessions[0]?.created_at as number);
      expect(await scheduledAlarm(account.id)).toBeLessThanOrEqual(now() + 5 * 60_000);
      await expectProblem(await renew(account.token.access_token), 401, 'session_revoked');
      // The documented lag: D1, which the strict check reads, still holds the session.
      expect((await call('/api/account', { token: account.token.access_token })).status).toBe(200);
    }

    // The same request again, D1 working: 204, and nothing is left.
    const retried = await deleteAccount(account.token.access_token, { password: PASSWORD });
    expect(retried.status, await retried.clone().text()).toBe(204);
    await expectGone(account);
  });

  it('while D1 has not answered, every session is already refused and the alarm is already set to finish', async () => {
    const account = await newAccount();
    // The daily prune's alarm, set by the login: a day away.
    expect(await scheduledAlarm(account.id)).toBeGreaterThan(now() + 3_600_000);
    const held = heldD1(env.DB, (sql) => /^DELETE FROM users/.test(sql));
    const pending = deleteAccount(account.token.access_token, { password: PASSWORD }, {}, bindingsWith(held.db));
    await held.reached();
    // Were this instance to die now, the alarm would deliver what is owed, seconds from now.
    expect(await scheduledAlarm(account.id)).toBeLessThanOrEqual(now() + 5 * 60_000);
    await expectProblem(await renew(account.token.access_token), 401, 'session_revoked');
    held.release();
    expect((await pending).status).toBe(204);
    await expectGone(account);
  });

  it('the alarm alone finishes a deletion nobody retries', async () => {
    const account = await newAccount();
    await expectProblem(await deleteThrough(account, new StatementFaults(9, 'during')), 503, 'temporarily_unavailable');
    expect(await runDurableObjectAlarm(authorityStub(account.id))).toBe(true);
    await expectGone(account);
  });

  it('D1 committing with the answer lost: D1 has no user, the object refuses every token, the alarm erases the rest', async () => {
    const account = await newAccount();
    await expectProblem(await deleteThrough(account, new StatementFaults(9, 'after')), 503, 'temporarily_unavailable');
    expect(await d1RowsOf(account)).toEqual(NO_D1_ROWS);
    expect((await objectRows(account.id)).outbox).toHaveLength(1);
    await expectProblem(await renew(account.token.access_token), 401, 'session_revoked');
    await expectProblem(await call('/api/account', { token: account.token.access_token }), 401, 'session_revoked');
    // The retry cannot pass the strict check any more; the alarm sends the deletion again, idempotently.
    await expectProblem(await deleteAccount(account.token.access_token, { password: PASSWORD }), 401, 'session_revoked');
    expect(await runDurableObjectAlarm(authorityStub(account.id))).toBe(true);
    await expectGone(account);
  });

  it('a sign-in while the deletion is owed carries it to D1 in its batch: refused, and the object is erased with it', async () => {
    const account = await newAccount();
    await expectProblem(await deleteThrough(account, new StatementFaults(4, 'before')), 503, 'temporarily_unavailable');
    const signIn = await call('/auth/login', { method: 'POST', json: { email: account.email, password: PASSWORD } });
    await expectProblem(signIn, 401, 'invalid_credentials');
    expect(await d1RowsOf(account)).toEqual(NO_D1_ROWS);
    const storage = await objectStorageOf(account.id);
    expect(storage.rows).toEqual(emptyObject(storage.rows));
  });

  it('a logout while the deletion is owed delivers it and erases the object too', async () => {
    const account = await newAccount();
    await expectProblem(await deleteThrough(account, new StatementFaults(4, 'before')), 503, 'temporarily_unavailable');
    expect((await call('/auth/logout', { method: 'POST', token: account.token.access_token })).status).toBe(204);
    expect(await d1RowsOf(account)).toEqual(NO_D1_ROWS);
    const storage = await objectStorageOf(account.id);
    expect(storage.rows).toEqual(emptyObject(storage.rows));
    expect((await mirrorOf(env.DB, account.token.session_id)) ?? null).toBeNull();
  });
});
