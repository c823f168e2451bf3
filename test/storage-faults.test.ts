/**
 * Fault injection: D1 failing on each statement of each write path in turn.
 *
 * A path's statements run partly in the Worker (the login throttle, the strict check, the admin
 * route's existence check) and partly in the user's Durable Object. The Worker's D1 is swapped by
 * calling its fetch handler with other bindings (test/direct.ts); the object's by replacing its
 * store (test/faults.ts). One `StatementFaults` numbers the statements of a request across both,
 * so "statement k" is the k-th statement the request sends, wherever it runs. No source change is
 * needed for either seam.
 *
 * For every statement k of every path, and each way of failing (before D1 sees it; inside D1 in
 * the middle of its batch, so that only the transaction's rollback keeps the earlier statements
 * out), the request must answer 503 `temporarily_unavailable` with Retry-After, the user's rows
 * must be exactly as before, and the same request, retried, must succeed. Where D1 commits and
 * only the answer is lost, the retry's outcome is asserted per path at the end.
 */
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { testClock } from '../src/clock';
import { direct } from './direct';
import { faultyD1, type FaultTiming, setAuthorityD1, StatementFaults } from './faults';
import { adminToken, claimsOf, login, PASSWORD, register, type TokenBody, uniqueEmail } from './helpers';

// ---------------------------------------------------------------------------------------------
// The rows a request may touch

interface Rows {
  user: unknown;
  sessions: unknown[];
  events: unknown[];
  /** Failed-attempt counters of this email (the login throttle). */
  attempts: number[];
}

async function rowsOf(userId: string, email: string): Promise<Rows> {
  const [user, sessions, events, attempts] = await env.DB.batch([
    env.DB.prepare('SELECT email, password_hash, revoked_before, last_login_at FROM users WHERE id = ?1').bind(userId),
    env.DB.prepare(
      'SELECT id, client, created_at, gen, gen_minted_at, gen_expires_at, revoked_at, revoked_reason FROM sessions WHERE user_id = ?1 ORDER BY id',
    ).bind(userId),
    env.DB.prepare('SELECT type, at, session_id, detail FROM security_events WHERE user_id = ?1 ORDER BY id').bind(userId),
    env.DB.prepare('SELECT failures FROM login_attempts WHERE email = ?1 ORDER BY client_ip').bind(email),
  ]);
  return {
    user: user?.results[0],
    sessions: sessions?.results ?? [],
    events: events?.results ?? [],
    attempts: ((attempts?.results ?? []) as Array<{ failures: number }>).map((row) => row.failures),
  };
}

// ---------------------------------------------------------------------------------------------
// The write paths

interface Account {
  id: string;
  email: string;
  password: string;
  /** A live session's newest token, kept up to date by each path. */
  token: TokenBody;
}

interface WritePath {
  name: string;
  /** The answer of a successful request. */
  success: number;
  /** Readies the account for one request (a fresh session where the request ends one). */
  prepare(account: Account): Promise<void>;
  /** The request itself: the same one is sent with faults and then retried without. */
  send(account: Account, bindings: Env): Promise<Response>;
  /** Applies a successful answer to the account. */
  accept(account: Account, response: Response): Promise<void>;
  /**
   * The statements a request sends, in order, Worker and object together; `batch` marks those
   * that run in one transaction with others. Checked against a recording, so the matrix below
   * follows the code when it changes.
   */
  statements: Array<{ sql: RegExp; batch?: true }>;
  /** Statements after which a 503 leaves the login attempt charged (see login). */
  chargesBefore?: number;
}

const B = true as const;
const LOAD_SESSION = { sql: /^\s*SELECT s\.id, s\.user_id/ };
const LOAD_USER = { sql: /^\s*SELECT id, email, password_hash, revoked_before/ };
const ROTATE_IF_CURRENT = { sql: /^\s*UPDATE sessions SET gen = / };
const CHARGE = [{ sql: /^\s*INSERT INTO login_attempts/, batch: B }, { sql: /^SELECT id, password_hash FROM users/, batch: B }];
const REVOKE_ALL = [{ sql: /^UPDATE users SET revoked_before/, batch: B }, { sql: /^INSERT INTO security_events/, batch: B }];

let clockShift = 0;

const freshSession = async (account: Account) => {
  account.token = await login(account.email, account.password);
};

const takeToken = async (account: Account, response: Response) => {
  account.token = (await response.json()) as TokenBody;
};

const PATHS: WritePath[] = [
  {
    name: 'login',
    success: 200,
    prepare: async () => {},
    send: (account, bindings) =>
      direct('/auth/login', { method: 'POST', json: { email: account.email, password: account.password, client: 'faults' } }, bindings),
    accept: takeToken,
    statements: [
      ...CHARGE,
      LOAD_USER,
      { sql: /^\s*INSERT INTO sessions/, batch: B },
      { sql: /^\s*UPDATE users SET last_login_at/, batch: B },
      { sql: /^INSERT INTO security_events/, batch: B },
      { sql: /^DELETE FROM login_attempts/, batch: B },
    ],
    // The throttle charge is the first batch (2 statements). Once the password has been checked
    // the attempt stays counted even if a later statement fails: refunding it on failure would
    // make a guess free whenever storage hiccups. A successful retry clears it.
    chargesBefore: 2,
  },
  {
    name: 'renew',
    success: 200,
    prepare: async () => {},
    send: (account, bindings) => direct('/auth/renew', { method: 'POST', token: account.token.access_token }, bindings),
    accept: takeToken,
    // The guarded compare-and-swap alone: it applies, so nothing is read (Store.rotateIfCurrent).
    statements: [ROTATE_IF_CURRENT],
  },
  {
    name: 'renew that detects a reuse',
    success: 401,
    prepare: async (account) => {
      // Each case starts further ahead than the last: the user's clock never runs backwards, so
      // a case must not begin before the instants an earlier one recorded.
      clockShift += 120_000;
      testClock.set(Date.now() + clockShift);
      await freshSession(account);
      const superseded = account.token;
      await takeToken(account, await direct('/auth/renew', { method: 'POST', token: superseded.access_token }));
      testClock.advance(60_000);
      account.token = superseded;
    },
    send: (account, bindings) => direct('/auth/renew', { method: 'POST', token: account.token.access_token }, bindings),
    accept: async (_account, response) => {
      expect(((await response.json()) as { code: string }).code).toBe('token_reused');
    },
    statements: [
      // The guarded compare-and-swap does not apply to a superseded token; then read and decide.
      ROTATE_IF_CURRENT,
      LOAD_SESSION,
      { sql: /^UPDATE sessions SET revoked_at/, batch: B },
      { sql: /^UPDATE users SET revoked_before/, batch: B },
      { sql: /^INSERT INTO security_events/, batch: B },
    ],
  },
  {
    name: 'logout',
    success: 204,
    prepare: freshSession,
    send: (account, bindings) => direct('/auth/logout', { method: 'POST', token: account.token.access_token }, bindings),
    accept: async () => {},
    statements: [LOAD_SESSION, { sql: /^UPDATE sessions SET revoked_at/, batch: B }, { sql: /^INSERT INTO security_events/, batch: B }],
  },
  {
    name: 'logout-all',
    success: 204,
    prepare: freshSession,
    send: (account, bindings) => direct('/auth/logout-all', { method: 'POST', token: account.token.access_token }, bindings),
    accept: async () => {},
    statements: [LOAD_SESSION, LOAD_USER, ...REVOKE_ALL],
  },
  {
    name: 'password change',
    success: 200,
    // Each success answers a token for a fresh session: the next case uses it.
    prepare: async () => {},
    send: (account, bindings) =>
      direct(
        '/auth/password',
        {
          method: 'POST',
          token: account.token.access_token,
          json: { current_password: account.password, new_password: `${account.password}!` },
        },
        bindings,
      ),
    accept: async (account, response) => {
      account.password = `${account.password}!`;
      await takeToken(account, response);
    },
    statements: [
      LOAD_SESSION,
      ...CHARGE,
      LOAD_USER,
      LOAD_SESSION,
      { sql: /^\s*UPDATE users SET password_hash/, batch: B },
      { sql: /^\s*INSERT INTO sessions/, batch: B },
      { sql: /^\s*INSERT INTO security_events/, batch: B },
      { sql: /^\s*DELETE FROM login_attempts/, batch: B },
    ],
    // Strict check (1 statement), then the throttle charge (2): as for login.
    chargesBefore: 3,
  },
  {
    name: 'admin revoke',
    success: 204,
    prepare: async () => {},
    send: (account, bindings) =>
      direct(`/admin/users/${account.id}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${adminToken()}` } }, bindings),
    accept: async () => {},
    statements: [{ sql: /^SELECT 1 AS one FROM users/ }, LOAD_USER, ...REVOKE_ALL],
  },
];

// ---------------------------------------------------------------------------------------------

const byName = (name: string) => PATHS.find((path) => path.name === name) as WritePath;

/** Sends the path's request with every D1 statement (Worker and object) going through `faults`. */
async function sendThrough(path: WritePath, account: Account, faults: StatementFaults): Promise<Response> {
  const db = faultyD1(env.DB, faults.pick);
  await setAuthorityD1(account.id, db);
  try {
    return await path.send(account, { ...env, DB: db });
  } finally {
    await setAuthorityD1(account.id, undefined);
  }
}

async function newAccount(): Promise<Account> {
  const email = uniqueEmail('faults');
  const { id } = await register(email);
  return { id, email, password: PASSWORD, token: await login(email) };
}

describe('D1 failing on each statement of each write path', () => {
  describe.each(PATHS)('$name', (path) => {
    let account: Account;

    beforeAll(async () => {
      account = await newAccount();
    }, 30_000);

    it('sends the statements declared for it, in order, batched as declared', async () => {
      await path.prepare(account);
      const recorder = new StatementFaults(undefined);
      const response = await sendThrough(path, account, recorder);
      expect(response.status, await response.clone().text()).toBe(path.success);
      await path.accept(account, response);
      expect(recorder.seen).toHaveLength(path.statements.length);
      for (const [index, statement] of path.statements.entries()) {
        expect(recorder.seen[index], `statement ${index}`).toMatch(statement.sql);
        expect(recorder.batched.has(index), `statement ${index} batched`).toBe(statement.batch === true);
      }
    });

    const cases = path.statements.flatMap((statement, index) => [
      { index, timing: 'before' as FaultTiming, sql: statement.sql.source },
      ...(statement.batch ? [{ index, timing: 'during' as FaultTiming, sql: statement.sql.source }] : []),
    ]);

    it.each(cases)('statement $index ($sql) failing $timing: 503, nothing written, the retry succeeds', async ({ timing, index }) => {
      await path.prepare(account);
      const before = await rowsOf(account.id, account.email);
      const failed = await sendThrough(path, account, new StatementFaults(index, timing));
      const text = await failed.text();
      expect({ status: failed.status, code: (JSON.parse(text) as { code?: string }).code }, text).toEqual({
        status: 503,
        code: 'temporarily_unavailable',
      });
      expect(failed.headers.get('content-type')).toBe('application/problem+json');
      expect(Number(failed.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

      const { attempts: attemptsBefore, ...restBefore } = before;
      const { attempts: attemptsAfter, ...restAfter } = await rowsOf(account.id, account.email);
      expect(restAfter).toEqual(restBefore);
      const charged = path.chargesBefore !== undefined && index >= path.chargesBefore;
      expect(attemptsAfter).toEqual(charged ? [(attemptsBefore[0] ?? 0) + 1] : attemptsBefore);

      const retried = await path.send(account, env);
      expect(retried.status, await retried.clone().text()).toBe(path.success);
      await path.accept(account, retried);
      expect((await rowsOf(account.id, account.email)).attempts).toEqual([]);
    });
  });
});

describe('D1 committing but the answer being lost (the last write of each path)', () => {
  /** A clean request to learn the path's last statement, then the same request losing its answer there. */
  async function loseLastAnswer(name: string) {
    const path = byName(name);
    const account = await newAccount();
    const recorder = new StatementFaults(undefined);
    await path.prepare(account);
    const clean = await sendThrough(path, account, recorder);
    expect(clean.status).toBe(path.success);
    await path.accept(account, clean);
    await path.prepare(account);
    const before = await rowsOf(account.id, account.email);
    const lost = await sendThrough(path, account, new StatementFaults(recorder.seen.length - 1, 'after'));
    expect(lost.status).toBe(503);
    return { account, before, retried: await path.send(account, env) };
  }

  it('login: the retry signs in again (the first session is complete, just never handed out)', async () => {
    const { account, before, retried } = await loseLastAnswer('login');
    expect(retried.status).toBe(200);
    expect((await rowsOf(account.id, account.email)).sessions.length).toBe(before.sessions.length + 2);
  });

  it('renew: the retry gets the generation that was minted (grace), nothing is revoked', async () => {
    const { account, retried } = await loseLastAnswer('renew');
    expect(retried.status).toBe(200);
    const gen = claimsOf(account.token.access_token).gen as number;
    expect(claimsOf(((await retried.json()) as TokenBody).access_token).gen).toBe(gen + 1);
  });

  it('logout: the retry is 204 (idempotent)', async () => {
    expect((await loseLastAnswer('logout')).retried.status).toBe(204);
  });

  it('logout-all: done; the retry is 401 session_revoked, which is the state it asked for', async () => {
    // Accepting a revoked session's token here would let a stolen, already revoked token sign the
    // user out again and again; refusing it is the price of a lost answer.
    const { retried } = await loseLastAnswer('logout-all');
    expect(retried.status).toBe(401);
    expect(((await retried.json()) as { code: string }).code).toBe('session_revoked');
  });

  it('password change: done; the retry is 401, and the new password signs in', async () => {
    const { account, retried } = await loseLastAnswer('password change');
    expect(retried.status).toBe(401);
    expect((await login(account.email, `${account.password}!`)).session_id).toBeTruthy();
  });

  it('admin revoke: the retry is 204 and revokes again (idempotent for the user)', async () => {
    expect((await loseLastAnswer('admin revoke')).retried.status).toBe(204);
  });
});
