/**
 * Fault injection: D1 failing on each statement of each write path in turn.
 *
 * Where things live: each user's sessions, generations, instants and events are in the user's
 * Durable Object's SQLite; D1 holds the directory, the login throttle and a mirror of each
 * session's revocation and of the user's `revoked_before`, which the strict check reads. A path's
 * D1 statements run partly in the Worker (the throttle, the strict check, the admin route's
 * existence check) and partly in the object (a login's or password change's batch, and the
 * delivery of the writes its outbox owes D1). The Worker is called with other bindings
 * (test/support/direct.ts) whose D1 fails where told, and whose `USER_AUTHORITY` runs each call on a
 * fresh object instance over the user's real storage constructed with that same D1
 * (`bindingsWith`, test/support/faults.ts). One `StatementFaults` numbers the statements of a request
 * across both: "statement k" is the k-th statement the request sends, wherever it runs.
 *
 * The rule under test (PROTOCOL.md invariant 7), as the code implements it:
 * - The object's storage alone decides renewals; a renewal sends D1 nothing at all.
 * - A revocation is recorded in the object first, and the D1 write it owes is queued in the
 *   object's outbox in the same transaction. The caller hears success only once D1 holds it; if D1
 *   fails, the caller gets 503 and the object, which already refuses the revoked sessions, keeps the
 *   write and retries it (the retried request delivers it, and so does the alarm, with backoff).
 *   A reuse detected during a renewal is the one revocation nobody waits for: the answer is 401
 *   `token_reused` whatever D1 does, and the alarm delivers it.
 * - Hence D1 never says revoked what the object still renews; D1 may say live what the object has
 *   revoked, but only while that revocation is still in the object's outbox, i.e. not yet
 *   acknowledged to anyone but a reuse's renewal. Strict checks read D1, so they lag by as much.
 * - A login records D1's mirror row first and the session in the object only after: a mirror row
 *   whose session the object never recorded (the answer was lost) names no token that was ever
 *   signed, the object refuses any token naming it (an unknown session is rule 3), and the daily
 *   prune deletes the row after SESSION_MAX_AGE.
 *
 * For every statement k of every path and each way of failing (before D1 sees it; inside D1 in
 * the middle of its batch, so that only the batch's rollback keeps the earlier statements out),
 * D1's rows must be exactly as before, the object must hold exactly the revocation it recorded (if
 * the failure came after it did) and nothing else, and the retried request, or the alarm, must
 * bring D1 in line. Where D1 commits and only the answer is lost, each path is asserted on its own.
 *
 * Every case moves the clock an hour ahead of the wall clock, further each time: the object's
 * retry alarm is set relative to `now()`, so the platform never runs it during a test, only
 * `runDurableObjectAlarm` does, when a test says so; and a user's clock never runs backwards.
 */
import { runDurableObjectAlarm } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { now, testClock } from '../../src/clock';
import type { AccessTokenClaims } from '../../src/tokens/claims';
import { direct } from '../support/direct';
import { authorityStub, bindingsWith, faultyD1, StatementFaults, statementFaultCases } from '../support/faults';
import { adminToken, call, claimsOf, login, PASSWORD, register, renew, type TokenBody, uniqueEmail } from '../support/helpers';
import {
  divergence,
  expectMirrorInLine,
  expectMirrorSafe,
  mirrorOf,
  type ObjectRows,
  objectRows,
  scheduledAlarm,
  storedSession,
} from '../support/user-object';

const GRACE_MS = 10_000;

let clockAt = Date.now() + 3_600_000;
beforeEach(() => {
  clockAt = Math.max(clockAt, Date.now() + 3_600_000) + 120_000;
  testClock.set(clockAt);
});

// ---------------------------------------------------------------------------------------------
// The rows a request may touch

interface Rows {
  d1: {
    user: unknown;
    sessions: Array<{ id: string; created_at: number; revoked_at: number | null }>;
    /** Failed-attempt counters of this email (the login throttle). */
    attempts: number[];
  };
  object: ObjectRows;
}

async function rowsOf(account: Account): Promise<Rows> {
  const [user, sessions, attempts] = await env.DB.batch([
    env.DB.prepare('SELECT email, password_hash, revoked_before FROM users WHERE id = ?1').bind(account.id),
    env.DB.prepare('SELECT id, created_at, revoked_at FROM sessions WHERE user_id = ?1 ORDER BY id').bind(account.id),
    env.DB.prepare('SELECT failures FROM login_attempts WHERE email = ?1 ORDER BY client_ip').bind(account.email),
  ]);
  return {
    d1: {
      user: user?.results[0],
      sessions: (sessions?.results ?? []) as Rows['d1']['sessions'],
      attempts: ((attempts?.results ?? []) as Array<{ failures: number }>).map((row) => row.failures),
    },
    object: await objectRows(account.id),
  };
}

/** The object's rows without the user's clock, which any operation may move forward. */
function withoutClock(rows: ObjectRows) {
  const { clock: _clock, ...user } = rows.user ?? { clock: 0 };
  return { ...rows, user };
}

// ---------------------------------------------------------------------------------------------
// The write paths

interface Account {
  id: string;
  email: string;
  password: string;
  /** The token the request presents (a live session's newest, or a superseded one for a reuse). */
  token: TokenBody;
  /** A second token the path needs: the session to end (DELETE), the newest of a reused session. */
  other?: TokenBody;
}

/** What the object records, before its D1 write, for a path that revokes. */
interface Revocation {
  /** Tokens of the sessions the object refuses from then on (each unexpired, for the strict check). */
  refused: TokenBody[];
  /** Sessions marked revoked one by one (the others fall under `revoked_before`). */
  marked: string[];
  /** Whether `revoked_before` moves (every session of the user ends). */
  all: boolean;
  /** The security event recorded with it, if any before D1 answers. */
  event: string | null;
  /** The writes owed to D1, in order. */
  owed: Array<'revoke_session' | 'revoke_user'>;
}

interface WritePath {
  name: string;
  /** The answer of a successful request. */
  success: number;
  /** The answer while D1 fails: 503, except where nobody waits on D1 (a reuse's renewal). */
  failure: { status: number; code: string };
  /** Readies the account for one request. */
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
  /** Statements from which a failure leaves the login attempt charged (see login). */
  chargesBefore?: number;
  /** The first statement the object sends after recording its revocation, and what it recorded. */
  revokesFrom?: number;
  revocation?(account: Account): Revocation;
  /** The retry's answer once the object has recorded the revocation, if not `success`. */
  retriedAfterRevocation?: { status: number; code: string };
}

const B = true as const;
const STRICT_CHECK = { sql: /^\s*SELECT s\.created_at, s\.revoked_at, u\.revoked_before, u\.email/ };
const CHARGE = [{ sql: /^\s*INSERT INTO login_attempts/, batch: B }, { sql: /^SELECT id, password_hash[\w, ]* FROM users WHERE email/, batch: B }];
const REVOKE_SESSION = { sql: /^UPDATE sessions SET revoked_at = COALESCE/, batch: B };
const REVOKE_USER = { sql: /^UPDATE users SET revoked_before = MAX/, batch: B };
const UNAVAILABLE = { status: 503, code: 'temporarily_unavailable' };

const freshSession = async (account: Account) => {
  account.token = await login(account.email, account.password);
};

const takeToken = async (account: Account, response: Response) => {
  account.token = (await response.json()) as TokenBody;
};

const expectCode = (code: string) => async (_account: Account, response: Response) => {
  expect(((await response.json()) as { code: string }).code).toBe(code);
};

const sessionOf = (token: TokenBody) => token.session_id;

const PATHS: WritePath[] = [
  {
    name: 'login',
    success: 200,
    failure: UNAVAILABLE,
    prepare: async () => {},
    send: (account, bindings) =>
      direct('/auth/login', { method: 'POST', json: { email: account.email, password: account.password, client: 'faults' } }, bindings),
    accept: takeToken,
    statements: [
      ...CHARGE,
      { sql: /^\s*INSERT INTO sessions/, batch: B },
      { sql: /^\s*UPDATE users SET password_hash/, batch: B },
      { sql: /^DELETE FROM login_attempts/, batch: B },
    ],
    // The throttle charge is the first batch (2 statements). Once the password has been checked
    // the attempt stays counted even if a later statement fails: refunding it on failure would
    // make a guess free whenever storage hiccups. A successful retry clears it.
    chargesBefore: 2,
  },
  {
    name: 'renew that detects a reuse (every session ends)',
    success: 401,
    // Nobody waits on D1 here: the answer is the same whatever D1 does.
    failure: { status: 401, code: 'token_reused' },
    prepare: async (account) => {
      const superseded = await login(account.email, account.password);
      account.other = (await call('/auth/renew', { method: 'POST', token: superseded.access_token }).then((r) => r.json())) as TokenBody;
      testClock.advance(GRACE_MS + 50_000);
      account.token = superseded;
    },
    send: (account, bindings) => direct('/auth/renew', { method: 'POST', token: account.token.access_token }, bindings),
    accept: expectCode('token_reused'),
    statements: [REVOKE_SESSION, REVOKE_USER],
    revokesFrom: 0,
    revocation: (account) => ({
      refused: [account.other as TokenBody],
      marked: [sessionOf(account.token)],
      all: true,
      event: 'reuse_detected',
      owed: ['revoke_session', 'revoke_user'],
    }),
    retriedAfterRevocation: { status: 401, code: 'session_revoked' },
  },
  {
    name: 'renew that detects a reuse older than the last login (its session ends)',
    success: 401,
    failure: { status: 401, code: 'token_reused' },
    prepare: async (account) => {
      const superseded = await login(account.email, account.password);
      account.other = (await call('/auth/renew', { method: 'POST', token: superseded.access_token }).then((r) => r.json())) as TokenBody;
      testClock.advance(1000);
      await login(account.email, account.password);
      testClock.advance(GRACE_MS + 50_000);
      account.token = superseded;
    },
    send: (account, bindings) => direct('/auth/renew', { method: 'POST', token: account.token.access_token }, bindings),
    accept: expectCode('token_reused'),
    statements: [REVOKE_SESSION],
    revokesFrom: 0,
    revocation: (account) => ({
      refused: [account.other as TokenBody],
      marked: [sessionOf(account.token)],
      all: false,
      event: 'reuse_detected',
      owed: ['revoke_session'],
    }),
    retriedAfterRevocation: { status: 401, code: 'session_revoked' },
  },
  {
    name: 'logout',
    success: 204,
    failure: UNAVAILABLE,
    prepare: freshSession,
    send: (account, bindings) => direct('/auth/logout', { method: 'POST', token: account.token.access_token }, bindings),
    accept: async () => {},
    statements: [REVOKE_SESSION],
    revokesFrom: 0,
    revocation: (account) => ({
      refused: [account.token],
      marked: [sessionOf(account.token)],
      all: false,
      event: 'logout',
      owed: ['revoke_session'],
    }),
  },
  {
    name: 'logout-all',
    success: 204,
    failure: UNAVAILABLE,
    prepare: freshSession,
    send: (account, bindings) => direct('/auth/logout-all', { method: 'POST', token: account.token.access_token }, bindings),
    accept: async () => {},
    statements: [STRICT_CHECK, REVOKE_USER],
    revokesFrom: 1,
    revocation: (account) => ({ refused: [account.token], marked: [], all: true, event: 'logout_all', owed: ['revoke_user'] }),
  },
  {
    name: 'DELETE /auth/sessions/:id',
    success: 204,
    failure: UNAVAILABLE,
    prepare: async (account) => {
      await freshSession(account);
      account.other = await login(account.email, account.password);
    },
    send: (account, bindings) =>
      direct(`/auth/sessions/${sessionOf(account.other as TokenBody)}`, { method: 'DELETE', token: account.token.access_token }, bindings),
    accept: async () => {},
    statements: [STRICT_CHECK, REVOKE_SESSION],
    revokesFrom: 1,
    revocation: (account) => ({
      refused: [account.other as TokenBody],
      marked: [sessionOf(account.other as TokenBody)],
      all: false,
      event: 'logout',
      owed: ['revoke_session'],
    }),
  },
  {
    name: 'password change',
    success: 200,
    failure: UNAVAILABLE,
    prepare: freshSession,
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
      STRICT_CHECK,
      ...CHARGE,
      { sql: /^SELECT password_hash FROM users WHERE id/ },
      REVOKE_USER,
      { sql: /^UPDATE users SET password_hash/, batch: B },
      { sql: /^\s*INSERT INTO sessions/, batch: B },
      { sql: /^\s*DELETE FROM login_attempts/, batch: B },
    ],
    // Strict check (1 statement), then the throttle charge (2): as for login.
    chargesBefore: 3,
    // Every older session is revoked in the object before the batch that changes the password:
    // whatever D1 does with that batch, the object renews none of them again.
    revokesFrom: 4,
    revocation: (account) => ({ refused: [account.token], marked: [], all: true, event: null, owed: ['revoke_user'] }),
    // The caller's own session is among those revoked: the retry is refused, the password is
    // unchanged, the user signs in again (with it) to change it.
    retriedAfterRevocation: { status: 401, code: 'session_revoked' },
  },
  {
    name: 'admin revoke',
    success: 204,
    failure: UNAVAILABLE,
    prepare: freshSession,
    send: (account, bindings) =>
      direct(`/admin/users/${account.id}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${adminToken()}` } }, bindings),
    accept: async () => {},
    statements: [{ sql: /^SELECT 1 AS one FROM users/ }, REVOKE_USER],
    revokesFrom: 1,
    revocation: (account) => ({ refused: [account.token], marked: [], all: true, event: 'admin_revoked', owed: ['revoke_user'] }),
  },
];

// ---------------------------------------------------------------------------------------------

const byName = (name: string) => PATHS.find((path) => path.name === name) as WritePath;

/** Sends the path's request with every D1 statement (Worker and object) going through `faults`. */
function sendThrough(path: WritePath, account: Account, faults: StatementFaults): Promise<Response> {
  return path.send(account, bindingsWith(faultyD1(env.DB, faults.pick)));
}

async function newAccount(): Promise<Account> {
  const email = uniqueEmail('faults');
  const { id } = await register(email);
  return { id, email, password: PASSWORD, token: await login(email) };
}

async function expectAnswer(response: Response, expected: { status: number; code: string }): Promise<void> {
  const text = await response.text();
  expect({ status: response.status, code: (JSON.parse(text) as { code?: string }).code }, text).toEqual(expected);
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  if (expected.status === 503) expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
}

/** The object holds exactly `revocation` on top of `before`, owed to D1, with its retry scheduled. */
async function expectRevocationRecorded(account: Account, before: Rows, after: Rows, revocation: Revocation): Promise<void> {
  const { object } = after;
  expect(object.user?.last_login_at).toBe(before.object.user?.last_login_at);
  if (revocation.all) expect(object.user?.revoked_before).toBeGreaterThan(before.object.user?.revoked_before ?? 0);
  else expect(object.user?.revoked_before).toBe(before.object.user?.revoked_before);
  expect(object.sessions.map((session) => ({ ...session, revoked_at: null, revoked_reason: null }))).toEqual(
    before.object.sessions.map((session) => ({ ...session, revoked_at: null, revoked_reason: null })),
  );
  for (const session of object.sessions) {
    const was = before.object.sessions.find((row) => row.id === session.id);
    if (revocation.marked.includes(session.id)) expect(session.revoked_at, session.id).not.toBeNull();
    else expect(session.revoked_at, session.id).toBe(was?.revoked_at);
  }
  expect(object.events.slice(0, before.object.events.length)).toEqual(before.object.events);
  expect(object.events.slice(before.object.events.length).map((event) => event.type)).toEqual(
    revocation.event === null ? [] : [revocation.event],
  );
  expect(object.outbox.map((row) => (JSON.parse(row.write) as { kind: string }).kind)).toEqual(revocation.owed);
  expect(object.outbox.every((row) => row.attempts >= 1)).toBe(true);
  // The retry is seconds away (backoff from 1 s, at most 5 min), not the daily prune's alarm.
  expect(await scheduledAlarm(account.id)).toBeLessThanOrEqual(now() + 5 * 60_000);

  // The object refuses at once; D1, which the strict check reads, lags behind (and never leads).
  for (const refused of revocation.refused) {
    const renewal = await renew(refused.access_token);
    expect(((await renewal.json()) as { code: string }).code).toBe('session_revoked');
    expect((await call('/api/account', { token: refused.access_token })).status).toBe(200);
  }
  await expectMirrorSafe(account.id);
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
      await expectMirrorInLine(account.id);
    });

    it.each(statementFaultCases(path.statements))('statement $index ($sql) failing $timing: D1 unchanged, the object exactly as said, the retry brings D1 in line', async ({
      timing,
      index,
    }) => {
      await path.prepare(account);
      const before = await rowsOf(account);
      await expectAnswer(await sendThrough(path, account, new StatementFaults(index, timing)), path.failure);
      const after = await rowsOf(account);

      // D1: exactly as before (a batch failing in its middle rolled back whole), but the throttle.
      const { attempts: attemptsBefore, ...d1Before } = before.d1;
      const { attempts: attemptsAfter, ...d1After } = after.d1;
      expect(d1After).toEqual(d1Before);
      const charged = path.chargesBefore !== undefined && index >= path.chargesBefore;
      expect(attemptsAfter).toEqual(charged ? [(attemptsBefore[0] ?? 0) + 1] : attemptsBefore);

      // The object: the revocation it recorded before writing to D1, or nothing at all.
      const revoked = path.revokesFrom !== undefined && index >= path.revokesFrom && path.revocation;
      if (revoked) {
        await expectRevocationRecorded(account, before, after, revoked(account));
      } else {
        expect(withoutClock(after.object)).toEqual(withoutClock(before.object));
        expect(after.object.user?.clock ?? 0).toBeGreaterThanOrEqual(before.object.user?.clock ?? 0);
      }

      // The same request again, D1 working.
      const retried = await path.send(account, env);
      const expected = revoked ? (path.retriedAfterRevocation ?? null) : null;
      if (expected) {
        await expectAnswer(retried, expected);
        // Nothing in this request delivers the owed write: the alarm does.
        expect(await runDurableObjectAlarm(authorityStub(account.id))).toBe(true);
      } else {
        expect(retried.status, await retried.clone().text()).toBe(path.success);
        await path.accept(account, retried);
      }
      await expectMirrorInLine(account.id);
      if (expected?.code === 'session_revoked' && path.name === 'password change') {
        // Refused, not half-done: the password it meant to replace still signs in.
        expect((await login(account.email, account.password)).session_id).toBeTruthy();
      }
    });
  });
});

describe('renewals send D1 nothing', () => {
  const d1Down = () => bindingsWith(faultyD1(env.DB, () => 'before'));

  it('a rotation (rule 5) sends no statement, and renews with D1 down', async () => {
    const { token } = await newAccount();
    const recorder = new StatementFaults(undefined);
    const response = await direct('/auth/renew', { method: 'POST', token: token.access_token }, bindingsWith(faultyD1(env.DB, recorder.pick)));
    expect(response.status).toBe(200);
    expect(recorder.seen).toEqual([]);
    const next = (await response.json()) as TokenBody;
    const again = await direct('/auth/renew', { method: 'POST', token: next.access_token }, d1Down());
    expect(again.status).toBe(200);
    expect(claimsOf(((await again.json()) as TokenBody).access_token).gen).toBe(3);
  });

  it('a grace answer (rule 6) sends no statement, and answers with D1 down', async () => {
    const { token } = await newAccount();
    const first = (await call('/auth/renew', { method: 'POST', token: token.access_token }).then((r) => r.json())) as TokenBody;
    testClock.advance(GRACE_MS - 1);
    const recorder = new StatementFaults(undefined);
    const response = await direct('/auth/renew', { method: 'POST', token: token.access_token }, bindingsWith(faultyD1(env.DB, recorder.pick)));
    expect(((await response.json()) as TokenBody).access_token).toBe(first.access_token);
    expect(recorder.seen).toEqual([]);
    const again = await direct('/auth/renew', { method: 'POST', token: token.access_token }, d1Down());
    expect(((await again.json()) as TokenBody).access_token).toBe(first.access_token);
  });

  it('a refusal (rules 3 and 4) sends no statement', async () => {
    const account = await newAccount();
    expect((await call('/auth/logout', { method: 'POST', token: account.token.access_token })).status).toBe(204);
    const recorder = new StatementFaults(undefined);
    const revoked = await direct('/auth/renew', { method: 'POST', token: account.token.access_token }, bindingsWith(faultyD1(env.DB, recorder.pick)));
    await expectAnswer(revoked, { status: 401, code: 'session_revoked' });
    // Renewed before each idle limit (14 days), until the session is past its absolute one (30).
    let live = (await login(account.email)).access_token;
    for (const days of [13, 13]) {
      testClock.advance(days * 86_400_000);
      live = ((await renew(live).then((r) => r.json())) as TokenBody).access_token;
    }
    testClock.advance(5 * 86_400_000);
    const expired = await direct('/auth/renew', { method: 'POST', token: live }, bindingsWith(faultyD1(env.DB, recorder.pick)));
    await expectAnswer(expired, { status: 401, code: 'session_expired' });
    expect(recorder.seen).toEqual([]);
  });

  it('a reuse is answered 401 token_reused whether D1 takes its delivery or not; with D1 down, the alarm delivers it', async () => {
    const account = await newAccount();
    const path = byName('renew that detects a reuse (every session ends)');
    await path.prepare(account);
    const newest = account.other as TokenBody;
    const answer = await path.send(account, d1Down());
    await expectAnswer(answer, { status: 401, code: 'token_reused' });
    // The documented lag: the strict check still passes on D1's stale mirror, renewal is refused.
    expect((await call('/api/account', { token: newest.access_token })).status).toBe(200);
    await expectAnswer(await renew(newest.access_token), { status: 401, code: 'session_revoked' });
    expect(await divergence(account.id)).toMatchObject({ unsafe: [], owed: 2 });
    expect(await runDurableObjectAlarm(authorityStub(account.id))).toBe(true);
    await expectMirrorInLine(account.id);
    await expectAnswer(await call('/api/account', { token: newest.access_token }), { status: 401, code: 'session_revoked' });
  });
});

describe('the alarm alone brings D1 in line when the request is not retried', () => {
  const revoking = PATHS.filter((path) => path.revokesFrom !== undefined);

  it.each(revoking)('$name', async (path) => {
    const account = await newAccount();
    await path.prepare(account);
    const revocation = path.revocation?.(account) as Revocation;
    // The object's first delivery fails inside its batch.
    await expectAnswer(await sendThrough(path, account, new StatementFaults(path.revokesFrom, 'during')), path.failure);
    expect((await objectRows(account.id)).outbox).toHaveLength(revocation.owed.length);
    expect(await runDurableObjectAlarm(authorityStub(account.id))).toBe(true);
    await expectMirrorInLine(account.id);
    for (const refused of revocation.refused) {
      await expectAnswer(await call('/api/account', { token: refused.access_token }), { status: 401, code: 'session_revoked' });
    }
  });
});

describe('writes owed to D1 travel with the next login', () => {
  it("a login's batch carries them first: it fails with them, and delivers them", async () => {
    const account = await newAccount();
    const owedFor = account.token;
    await expectAnswer(await sendThrough(byName('logout'), account, new StatementFaults(0, 'before')), UNAVAILABLE);
    expect((await objectRows(account.id)).outbox).toHaveLength(1);

    // D1 failing inside the login's batch: neither the owed write nor the login goes in; still owed.
    const failing = new StatementFaults(3, 'during');
    await expectAnswer(await sendThrough(byName('login'), account, failing), UNAVAILABLE);
    expect(failing.seen[2]).toMatch(REVOKE_SESSION.sql);
    expect((await mirrorOf(env.DB, owedFor.session_id))?.revoked_at).toBeNull();
    expect((await objectRows(account.id)).outbox.map((row) => row.attempts)).toEqual([2]);

    const recorder = new StatementFaults(undefined);
    const response = await sendThrough(byName('login'), account, recorder);
    expect(response.status).toBe(200);
    expect(recorder.seen[2]).toMatch(REVOKE_SESSION.sql);
    expect([...recorder.batched]).toEqual([0, 1, 2, 3, 4, 5]);
    await expectMirrorInLine(account.id);
  });
});

describe('D1 committing but the answer being lost (the last statement of each path)', () => {
  /** A request losing D1's answer on its last statement, D1 having committed it. */
  async function loseLastAnswer(name: string) {
    const path = byName(name);
    const account = await newAccount();
    await path.prepare(account);
    const before = await rowsOf(account);
    const lost = await sendThrough(path, account, new StatementFaults(path.statements.length - 1, 'after'));
    await expectAnswer(lost, path.failure);
    await expectMirrorSafe(account.id);
    return { path, account, before };
  }

  it('login: 503 and no session in the object; the mirror row D1 kept is harmless; the retry signs in', async () => {
    const { path, account, before } = await loseLastAnswer('login');
    const after = await rowsOf(account);
    const orphans = after.d1.sessions.filter((row) => !before.d1.sessions.some((was) => was.id === row.id));
    expect(orphans).toHaveLength(1);
    const orphan = orphans[0] as { id: string };
    expect(await storedSession(account.id, orphan.id)).toBeUndefined();
    expect(withoutClock(after.object)).toEqual(withoutClock(before.object));
    // Nobody holds a token naming it (tokens are signed after the object records the session); a
    // token that did would be refused as an unknown session.
    const claims = { ...claimsOf(account.token.access_token), sid: orphan.id } as unknown as AccessTokenClaims;
    expect(await authorityStub(account.id).renew(claims)).toEqual({ ok: false, code: 'session_revoked' });
    const retried = await path.send(account, env);
    expect(retried.status).toBe(200);
    expect((await rowsOf(account)).d1.attempts).toEqual([]);
  });

  it('reuse: the answer is 401 token_reused; the alarm sends the write again, which changes nothing more', async () => {
    const { account } = await loseLastAnswer('renew that detects a reuse (every session ends)');
    const committed = await mirrorOf(env.DB, account.token.session_id);
    expect(committed?.revoked_at).not.toBeNull();
    expect((await objectRows(account.id)).outbox).toHaveLength(2);
    expect(await runDurableObjectAlarm(authorityStub(account.id))).toBe(true);
    expect(await mirrorOf(env.DB, account.token.session_id)).toEqual(committed);
    await expectMirrorInLine(account.id);
  });

  it('logout: the retry is 204 and delivers again, idempotently', async () => {
    const { path, account } = await loseLastAnswer('logout');
    const committed = await mirrorOf(env.DB, account.token.session_id);
    expect(committed?.revoked_at).not.toBeNull();
    expect((await path.send(account, env)).status).toBe(204);
    expect(await mirrorOf(env.DB, account.token.session_id)).toEqual(committed);
    await expectMirrorInLine(account.id);
  });

  it('logout-all: done; the retry is 401 session_revoked (D1 has it), and the alarm clears what is owed', async () => {
    // Accepting a revoked session's token here would let a stolen, already revoked token sign the
    // user out again and again; refusing it is the price of a lost answer.
    const { path, account } = await loseLastAnswer('logout-all');
    await expectAnswer(await path.send(account, env), { status: 401, code: 'session_revoked' });
    expect(await runDurableObjectAlarm(authorityStub(account.id))).toBe(true);
    await expectMirrorInLine(account.id);
  });

  it('DELETE /auth/sessions/:id: the retry is 204 and delivers again, idempotently', async () => {
    const { path, account } = await loseLastAnswer('DELETE /auth/sessions/:id');
    expect((await path.send(account, env)).status).toBe(204);
    await expectMirrorInLine(account.id);
  });

  it('password change: done in D1; the retry is 401, the new password signs in, the old one does not', async () => {
    const { path, account } = await loseLastAnswer('password change');
    await expectAnswer(await path.send(account, env), { status: 401, code: 'session_revoked' });
    expect(await runDurableObjectAlarm(authorityStub(account.id))).toBe(true);
    await expectMirrorInLine(account.id);
    const wrong = await call('/auth/login', { method: 'POST', json: { email: account.email, password: account.password } });
    expect(wrong.status).toBe(401);
    expect((await login(account.email, `${account.password}!`)).session_id).toBeTruthy();
  });

  it('admin revoke: the retry is 204 and revokes again (idempotent for the user)', async () => {
    const { path, account } = await loseLastAnswer('admin revoke');
    expect((await path.send(account, env)).status).toBe(204);
    await expectMirrorInLine(account.id);
  });
});
