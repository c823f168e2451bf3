/**
 * PROTOCOL.md's invariants, each by name, on the storage as it is: each user's sessions,
 * generations, instants and events in the user's Durable Object's SQLite; D1 holding the directory,
 * the login throttle and the mirror of revocations that strict checks read.
 *
 * Tests that leave a write owed to D1 set the clock an hour ahead first: the object schedules its
 * retry relative to `now()`, so the platform's alarm stays an hour away and only
 * `runDurableObjectAlarm` runs it, when the test says so.
 */
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { now, testClock } from '../../src/clock';
import { UserRecords } from '../../src/storage/user-records';
import type { AccessTokenClaims } from '../../src/tokens/claims';
import { UserAuthority } from '../../src/user-authority/object';
import { direct } from '../support/direct';
import { authorityStub, bindingsWith, evictUserObjects, faultyD1, heldD1, runAlarmWith } from '../support/faults';
import { call, claimsOf, expectProblem, login, PASSWORD, renew, renewOk, signedInUser, type TokenBody } from '../support/helpers';
import {
  clearAlarm,
  divergence,
  execInObject,
  expectMirrorInLine,
  expectMirrorSafe,
  mirrorOf,
  objectRows,
  scheduledAlarm,
  storedSession,
} from '../support/user-object';

const GRACE_MS = 10_000;
const HOUR_MS = 3_600_000;

/** A D1 that refuses every statement: D1 down. */
const d1Down = () => faultyD1(env.DB, () => 'before');
/** D1 down for the user's object only: the Worker's reads (strict check, throttle) go through. */
const objectD1Down = () => faultyD1(env.DB, (sql) => (/^\s*(UPDATE|INSERT|DELETE)/.test(sql) ? 'before' : undefined));

async function storedGen(userId: string, sessionId: string): Promise<number | undefined> {
  return (await storedSession(userId, sessionId))?.gen;
}

async function tableCounts(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of ['users', 'sessions', 'login_attempts']) {
    counts[table] = (await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${table}`).first<{ n: number }>())?.n ?? -1;
  }
  const revocations = await env.DB.prepare(
    'SELECT (SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL) + (SELECT COUNT(*) FROM users WHERE revoked_before > 0) AS n',
  ).first<{ n: number }>();
  counts.revocations = revocations?.n ?? -1;
  return counts;
}

/** Whether `promise` has settled by the time D1 and the object have had a few turns to answer. */
async function settledSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
  return settled;
}

/** A session renewed once: its superseded token (gen 1) and its newest (gen 2), grace over. */
async function sessionWithSupersededToken(email: string): Promise<{ superseded: TokenBody; newest: TokenBody }> {
  const superseded = await login(email);
  const newest = await renewOk(superseded.access_token);
  testClock.advance(GRACE_MS + 50_000);
  return { superseded, newest };
}

describe('PROTOCOL.md invariants', () => {
  it('1. one generation is minted at most once per session: no two different successors of one token', async () => {
    testClock.set(Date.now());
    const { id, token } = await signedInUser();
    const successors = new Set<string>();
    // Concurrent first renewals, then retries inside the grace window, then a late retry of the same step.
    for (const response of await Promise.all(Array.from({ length: 10 }, () => renew(token.access_token)))) {
      successors.add(((await response.json()) as { access_token: string }).access_token);
    }
    testClock.advance(GRACE_MS - 1);
    successors.add((await renewOk(token.access_token)).access_token);
    expect(successors.size).toBe(1);
    const [second] = [...successors] as [string];
    const third = await renewOk(second);
    testClock.advance(1000);
    expect((await renewOk(second)).access_token).toBe(third.access_token);
    expect(await storedGen(id, token.session_id)).toBe(3);
  });

  it('2. concurrent renewals by one client never revoke anything', async () => {
    const { id, token } = await signedInUser();
    let current = token.access_token;
    for (let round = 0; round < 5; round++) {
      testClock.advance(300_000);
      const answers = await Promise.all(Array.from({ length: 6 }, () => renew(current)));
      expect(answers.map((answer) => answer.status)).toEqual(Array(6).fill(200));
      current = ((await (answers[0] as Response).json()) as { access_token: string }).access_token;
    }
    expect(claimsOf(current).gen).toBe(6);
    const rows = await objectRows(id);
    expect(rows.sessions.map((session) => session.revoked_at)).toEqual([null]);
    expect(rows.user?.revoked_before).toBe(0);
    expect(rows.events.map((event) => event.type)).toEqual(['login']);
    expect(rows.outbox).toEqual([]);
    expect((await mirrorOf(env.DB, token.session_id))?.revoked_at).toBeNull();
  });

  describe('3. no token is returned to a client before the state that makes it valid is durable in the object', () => {
    it("each renewal's generation is in the object's storage when the answer arrives, and survives the instance", async () => {
      const { id, token } = await signedInUser();
      let current = token.access_token;
      for (let step = 0; step < 3; step++) {
        current = (await renewOk(current)).access_token;
        expect(await storedGen(id, token.session_id)).toBe(claimsOf(current).gen);
        await evictUserObjects();
        expect(await storedGen(id, token.session_id)).toBe(claimsOf(current).gen);
      }
    });

    it.each([
      ["the generation's write", 'BEFORE UPDATE OF gen ON sessions'],
      ["the user's clock, written after the generation", 'BEFORE UPDATE ON user_state'],
    ])('storage refusing %s: no token, nothing of the renewal kept, the same token renews after', async (_what, when) => {
      const { id, token } = await signedInUser();
      await execInObject(id, `CREATE TRIGGER refuse_rotation ${when} BEGIN SELECT RAISE(ABORT, 'injected storage failure'); END`);
      const before = await objectRows(id);
      const failed = await renew(token.access_token);
      const text = await failed.text();
      expect(failed.status, text).toBeGreaterThanOrEqual(500);
      expect(text).not.toContain('eyJ');
      // The transaction rolled back whole: not even the user's clock moved.
      expect(await objectRows(id)).toEqual(before);
      await execInObject(id, 'DROP TRIGGER refuse_rotation');
      const renewed = await renewOk(token.access_token);
      expect(claimsOf(renewed.access_token).gen).toBe(2);
      expect(await storedGen(id, token.session_id)).toBe(2);
    });

    it("storage refusing a login's session: no token, no session in the object (D1's mirror row alone names no token)", async () => {
      const { id, email } = await signedInUser();
      const before = await objectRows(id);
      await execInObject(id, `CREATE TRIGGER refuse_login BEFORE INSERT ON sessions BEGIN SELECT RAISE(ABORT, 'injected storage failure'); END`);
      const failed = await call('/auth/login', { method: 'POST', json: { email, password: PASSWORD } });
      const text = await failed.text();
      expect(failed.status, text).toBeGreaterThanOrEqual(500);
      expect(text).not.toContain('eyJ');
      const after = await objectRows(id);
      expect(after.sessions).toEqual(before.sessions);
      expect(after.events).toEqual(before.events);
      await execInObject(id, 'DROP TRIGGER refuse_login');
      expect((await login(email)).session_id).toBeTruthy();
    });
  });

  it('4. a revoked session never renews again, whatever is replayed, in whatever order', async () => {
    const { token } = await signedInUser();
    const tokens = [token.access_token];
    for (let step = 0; step < 3; step++) tokens.push((await renewOk(tokens.at(-1) as string)).access_token);
    expect((await call('/auth/logout', { method: 'POST', token: tokens[3] })).status).toBe(204);
    const orders = [tokens, [...tokens].reverse(), [tokens[2], tokens[0], tokens[3], tokens[1]]];
    for (const order of orders) {
      for (const replayed of order) await expectProblem(await renew(replayed as string), 401, 'session_revoked');
      testClock.advance(GRACE_MS);
    }
    await evictUserObjects();
    const concurrent = await Promise.all(tokens.map((t) => renew(t)));
    expect(concurrent.map((response) => response.status)).toEqual([401, 401, 401, 401]);
  });

  describe('5. correctness does not rest on scheduling', () => {
    it('two live instances of the object over the same storage, racing one token, mint one generation', async () => {
      const { id, token } = await signedInUser();
      const claims = claimsOf(token.access_token) as unknown as AccessTokenClaims;
      const stub = authorityStub(id);
      const [viaStub, viaSecond] = await Promise.all([
        Promise.all(Array.from({ length: 4 }, () => stub.renew(claims))),
        // A second instance of the class, constructed over the very same storage, next to the live one.
        runInDurableObject(stub, (_instance, state) => {
          const second = new UserAuthority(state, env);
          return Promise.all(Array.from({ length: 4 }, () => second.renew(claims)));
        }),
      ]);
      const results = [...viaStub, ...viaSecond];
      expect(results.every((result) => result.ok)).toBe(true);
      const minted = new Set(results.map((result) => (result.ok ? result.value.accessToken : result.code)));
      expect(minted.size).toBe(1);
      expect(claimsOf([...minted][0] as string).gen).toBe(2);
      expect(await storedGen(id, token.session_id)).toBe(2);
    });

    it('a generation advances only as a compare-and-swap: the same step twice throws and the transaction rolls back', async () => {
      const { id, token } = await signedInUser();
      const outcome = await runInDurableObject(authorityStub(id), (_instance, state) => {
        const records = new UserRecords(state.storage.sql);
        const session = records.sessions.load(id, token.session_id);
        if (!session) return 'no session';
        const next = { ...session, gen: session.gen + 1, genMintedAt: session.genMintedAt + 1 };
        try {
          state.storage.transactionSync(() => {
            records.sessions.advanceGeneration(next, session.gen);
            records.sessions.advanceGeneration({ ...next, gen: session.gen + 2 }, session.gen);
          });
          return 'committed';
        } catch (error) {
          return String(error);
        }
      });
      expect(outcome).toMatch(/generation 1 of the session is no longer current/);
      expect(await storedSession(id, token.session_id)).toMatchObject({ gen: 1, revoked_at: null });
    });

    it("a login does not write back the user's state it read before awaiting D1 (a reuse detected meanwhile stands)", async () => {
      testClock.set(Date.now() + HOUR_MS);
      const { id, email } = await signedInUser();
      const other = await login(email);
      const { superseded } = await sessionWithSupersededToken(email);
      // The login waits on D1; meanwhile a replayed superseded token revokes every session.
      const held = heldD1(env.DB, (sql) => sql.includes('INSERT INTO sessions'));
      const pending = direct('/auth/login', { method: 'POST', json: { email, password: PASSWORD } }, bindingsWith(held.db));
      await held.reached();
      await expectProblem(await renew(superseded.access_token), 401, 'token_reused');
      const revokedBefore = (await objectRows(id)).user?.revoked_before as number;
      const clock = (await objectRows(id)).user?.clock as number;
      held.release();
      expect((await pending).status).toBe(200);
      const user = (await objectRows(id)).user;
      expect(user?.revoked_before).toBe(revokedBefore);
      expect(user?.clock).toBeGreaterThanOrEqual(clock);
      // The session logged in before the detection stays revoked in the object, as D1 says.
      await expectProblem(await renew(other.access_token), 401, 'session_revoked');
      await expectMirrorSafe(id);
    });

    it("a password change re-checks the caller's session after awaiting D1 (its reuse detected meanwhile refuses it)", async () => {
      testClock.set(Date.now() + HOUR_MS);
      const { id, email } = await signedInUser();
      const { superseded, newest } = await sessionWithSupersededToken(email);
      const passwordBefore = await env.DB.prepare('SELECT password_hash FROM users WHERE id = ?1').bind(id).first();
      const held = heldD1(env.DB, (sql) => sql.startsWith('SELECT password_hash FROM users'));
      const pending = direct(
        '/auth/password',
        { method: 'POST', token: newest.access_token, json: { current_password: PASSWORD, new_password: `${PASSWORD}!` } },
        bindingsWith(held.db),
      );
      await held.reached();
      // Two parties hold the caller's session: it ends, and the change made from it must not go through.
      await expectProblem(await renew(superseded.access_token), 401, 'token_reused');
      held.release();
      await expectProblem(await pending, 401, 'session_revoked');
      expect(await env.DB.prepare('SELECT password_hash FROM users WHERE id = ?1').bind(id).first()).toEqual(passwordBefore);
      const rows = await objectRows(id);
      const revokedBefore = rows.user?.revoked_before ?? 0;
      expect(rows.sessions.filter((session) => session.revoked_at === null && session.created_at > revokedBefore)).toEqual([]);
      await expectMirrorSafe(id);
    });

    it("the user's clock never runs backwards, whatever happens while an operation awaits D1", async () => {
      testClock.set(Date.now() + HOUR_MS);
      const { id, email, token } = await signedInUser();
      const held = heldD1(env.DB, (sql) => sql.includes('UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2'));
      const pending = direct(
        '/auth/password',
        { method: 'POST', token: token.access_token, json: { current_password: PASSWORD, new_password: `${PASSWORD}!` } },
        bindingsWith(held.db),
      );
      await held.reached();
      // A failed login is recorded in the object (an event, a tick of the clock) while the change waits.
      expect((await direct('/auth/login', { method: 'POST', json: { email, password: 'wrong password, long enough' } })).status).toBe(401);
      const during = (await objectRows(id)).user?.clock as number;
      held.release();
      expect((await pending).status).toBe(200);
      expect((await objectRows(id)).user?.clock).toBeGreaterThanOrEqual(during);
    });
  });

  it('6. bad input of any kind gets a clear 4xx problem, never a 500, and changes nothing', async () => {
    const { id, token } = await signedInUser();
    const before = { d1: await tableCounts(), object: await objectRows(id) };
    const badRequests: Array<[string, RequestInit]> = [
      ['/auth/register', { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } }],
      ['/auth/login', { method: 'POST', body: '{"email": 1, "password": 2}', headers: { 'content-type': 'application/json' } }],
      ['/auth/renew', { method: 'POST', headers: { authorization: 'Bearer x.y.z' } }],
      ['/auth/renew', { method: 'POST', headers: { authorization: `Bearer ${token.access_token}x` } }],
      ['/auth/logout', { method: 'POST', headers: { authorization: 'Bearer ....' } }],
      ['/auth/password', { method: 'POST', headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json' }, body: '[]' }],
      ['/auth/password', { method: 'POST', headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json' }, body: '{"current_password": null, "new_password": 5}' }],
      [`/auth/sessions/${'x'.repeat(500)}`, { method: 'DELETE', headers: { authorization: `Bearer ${token.access_token}` } }],
      ['/auth/events?cursor=-1', { headers: { authorization: `Bearer ${token.access_token}` } }],
      ['/admin/users/x/revoke', { method: 'POST', headers: { authorization: 'Bearer wrong' } }],
      ['/api/account', { headers: { authorization: `Bearer ${'a'.repeat(20_000)}` } }],
    ];
    for (const [path, init] of badRequests) {
      const response = await call(path, init);
      expect(response.status, path).toBeGreaterThanOrEqual(400);
      expect(response.status, path).toBeLessThan(500);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
    }
    expect({ d1: await tableCounts(), object: await objectRows(id) }).toEqual(before);
  });

  describe('7. the object and D1 never disagree in the unsafe direction', () => {
    it('a revocation is answered only once D1 holds it', async () => {
      const { id, token } = await signedInUser();
      const held = heldD1(env.DB, (sql) => sql.startsWith('UPDATE sessions SET revoked_at'));
      const pending = direct('/auth/logout', { method: 'POST', token: token.access_token }, bindingsWith(held.db));
      await held.reached();
      // Recorded in the object, owed to D1, not answered.
      expect((await storedSession(id, token.session_id))?.revoked_at).not.toBeNull();
      expect((await objectRows(id)).outbox).toHaveLength(1);
      expect((await mirrorOf(env.DB, token.session_id))?.revoked_at).toBeNull();
      expect(await settledSoon(pending)).toBe(false);
      held.release();
      expect((await pending).status).toBe(204);
      await expectMirrorInLine(id);
    });

    it.each(['/auth/logout', '/auth/logout-all'])(
      'a revocation and the D1 write it owes are one transaction: storage refusing the write keeps the revocation out too (%s)',
      async (path) => {
        const { id, token } = await signedInUser();
        await execInObject(id, `CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'injected storage failure'); END`);
        const before = await objectRows(id);
        const failed = await call(path, { method: 'POST', token: token.access_token });
        expect(failed.status).toBeGreaterThanOrEqual(500);
        expect(await objectRows(id)).toEqual(before);
        await execInObject(id, 'DROP TRIGGER refuse_outbox');
        expect((await call(path, { method: 'POST', token: token.access_token })).status).toBe(204);
        await expectMirrorInLine(id);
      },
    );

    it('D1 down: 503; D1 lags (its strict check passes) while the object already refuses; the alarm retries until D1 has it', async () => {
      testClock.set(Date.now() + HOUR_MS);
      const { id, email, token } = await signedInUser();
      const other = await login(email);
      await expectProblem(
        await direct('/auth/logout-all', { method: 'POST', token: token.access_token }, bindingsWith(objectD1Down())),
        503,
        'temporarily_unavailable',
      );
      // The safe direction only: the object refuses, D1 still says live.
      await expectProblem(await renew(other.access_token), 401, 'session_revoked');
      expect((await call('/api/account', { token: other.access_token })).status).toBe(200);
      expect(await divergence(id)).toMatchObject({ unsafe: [], lagging: [token.session_id, other.session_id], owed: 1 });
      await expectMirrorSafe(id);

      // The alarm while D1 is still down: the write stays owed, the attempt counts, the alarm comes back later.
      const firstRetry = (await scheduledAlarm(id)) as number;
      expect(firstRetry).toBeLessThanOrEqual(now() + 5 * 60_000);
      await clearAlarm(id);
      await runAlarmWith(id, d1Down());
      expect((await objectRows(id)).outbox.map((row) => row.attempts)).toEqual([2]);
      expect((await scheduledAlarm(id)) as number).toBeGreaterThan(firstRetry);
      await expectMirrorSafe(id);

      // D1 back: the alarm delivers, and the strict check refuses too.
      expect(await runDurableObjectAlarm(authorityStub(id))).toBe(true);
      await expectMirrorInLine(id);
      await expectProblem(await call('/api/account', { token: other.access_token }), 401, 'session_revoked');
    });

    it('a reuse detected while D1 is down (nobody waiting on it) is delivered by the alarm, also after the object was evicted', async () => {
      testClock.set(Date.now() + HOUR_MS);
      const { id, email } = await signedInUser();
      const { superseded, newest } = await sessionWithSupersededToken(email);
      const answer = await direct('/auth/renew', { method: 'POST', token: superseded.access_token }, bindingsWith(d1Down()));
      await expectProblem(answer, 401, 'token_reused');
      await expectProblem(await renew(newest.access_token), 401, 'session_revoked');
      expect((await call('/api/account', { token: newest.access_token })).status).toBe(200);
      await expectMirrorSafe(id);

      await evictUserObjects();
      const owed = (await objectRows(id)).outbox;
      expect(owed.map((row) => JSON.parse(row.write).kind)).toEqual(['revoke_session', 'revoke_user']);
      expect(await scheduledAlarm(id)).not.toBeNull();
      expect(await runDurableObjectAlarm(authorityStub(id))).toBe(true);
      await expectMirrorInLine(id);
      await expectProblem(await call('/api/account', { token: newest.access_token }), 401, 'session_revoked');
    });
  });
});
