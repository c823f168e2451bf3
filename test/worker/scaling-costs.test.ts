/**
 * What each operation costs in D1 and Durable Object traffic, counted on the real code path
 * (docs/SCALING.md quotes these numbers). Every D1 call of the Worker and of the user's object
 * goes through a counting wrapper, and so does every call to the user's object. A change that adds
 * a statement, a round trip or an object call fails here.
 *
 * A renewal costs D1 nothing: the user's object decides it from its own storage. D1 sees logins,
 * revocations (the mirror the strict check reads) and the strict check's one read.
 */
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { app } from '../../src/app';
import { testClock } from '../../src/clock';
import { configFrom } from '../../src/config';
import { generationJti } from '../../src/sessions/claims';
import type { AccessTokenClaims } from '../../src/tokens/claims';
import { keyringFor } from '../../src/tokens/keys';
import { signAccessToken } from '../../src/tokens/sign';
import { verifiedTokens } from '../../src/tokens/verified-cache';
import { authorityNamespace, interceptD1, runStatement } from '../support/faults';
import { adminToken, claimsOf, login, PASSWORD, register, renew, uniqueEmail } from '../support/helpers';

interface D1Tally {
  /** Calls that go to D1: one per run/first/all/raw, one per batch. */
  roundTrips: number;
  /** SQL statements, a batch counting each of its statements. */
  reads: number;
  writes: number;
  /** What D1 reports in `meta` and bills by. */
  rowsRead: number;
  rowsWritten: number;
}

interface Tally {
  worker: D1Tally;
  authority: D1Tally;
  /** Calls from the Worker to a user's Durable Object. */
  objectCalls: string[];
}

function emptyD1(): D1Tally {
  return { roundTrips: 0, reads: 0, writes: 0, rowsRead: 0, rowsWritten: 0 };
}

function countStatement(tally: D1Tally, sql: string, meta: { rows_read?: number; rows_written?: number } | undefined) {
  if (/^\s*SELECT\b/i.test(sql)) tally.reads += 1;
  else tally.writes += 1;
  tally.rowsRead += meta?.rows_read ?? 0;
  tally.rowsWritten += meta?.rows_written ?? 0;
}

/** A D1Database that tallies what goes through it. `first()` is answered from `all()` to see its meta. */
function countingD1(db: D1Database, tally: D1Tally): D1Database {
  return interceptD1(db, {
    async statement(sql, method, real, args) {
      tally.roundTrips += 1;
      if (method === 'raw') throw new Error('raw() is not used by latchkey; count it before using it');
      if (method !== 'first') {
        const result = (await runStatement(real, method, args)) as D1Result;
        countStatement(tally, sql, result.meta);
        return result;
      }
      const result = await real.all<Record<string, unknown>>();
      countStatement(tally, sql, result.meta);
      const row = result.results[0] ?? null;
      const column = args[0] as string | undefined;
      return column === undefined ? row : (row?.[column] ?? null);
    },
    async batch(sqls, execute) {
      tally.roundTrips += 1;
      const results = await execute();
      for (const [index, result] of results.entries()) countStatement(tally, sqls[index] ?? '', result.meta);
      return results;
    },
  });
}

/**
 * Runs `request` through the Worker's routes with every D1 and object call counted: the Worker's
 * D1 and the user object's D1 each through its own counting wrapper (the object gets its D1
 * through its constructor, see `authorityNamespace`), and each call to the object by method name.
 */
async function counted(request: Request): Promise<{ response: Response; tally: Tally }> {
  const tally: Tally = { worker: emptyD1(), authority: emptyD1(), objectCalls: [] };
  const countedEnv = {
    ...env,
    DB: countingD1(env.DB, tally.worker),
    USER_AUTHORITY: authorityNamespace(countingD1(env.DB, tally.authority), tally.objectCalls),
  };
  const ctx = createExecutionContext();
  const response = await app.fetch(request, countedEnv, ctx);
  await waitOnExecutionContext(ctx);
  return { response, tally };
}

function get(path: string, token: string): Request {
  return new Request(`http://localhost${path}`, { headers: { authorization: `Bearer ${token}` } });
}

function post(path: string, init: { token?: string; json?: unknown; method?: string; headers?: Record<string, string> }): Request {
  const headers = new Headers({ 'cf-connecting-ip': '203.0.113.9', ...init.headers });
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  if (init.json) headers.set('content-type', 'application/json');
  return new Request(`http://localhost${path}`, {
    method: init.method ?? 'POST',
    headers,
    body: init.json ? JSON.stringify(init.json) : undefined,
  });
}

async function loggedIn(email: string) {
  const { response, tally } = await counted(post('/auth/login', { json: { email, password: PASSWORD } }));
  expect(response.status).toBe(200);
  return { token: ((await response.json()) as { access_token: string; session_id: string }).access_token, tally };
}

async function newUser() {
  const email = uniqueEmail('cost');
  const user = await register(email);
  return { ...user, email };
}

const GRACE_MS = 10_000;

describe('the cost of one operation', () => {
  it('a login: 1 D1 round trip from the Worker, 1 call to the user object, 1 D1 round trip from it', async () => {
    const { email } = await newUser();
    const { tally } = await loggedIn(email);
    expect(tally.objectCalls).toEqual(['login']);
    // The Worker: charge the attempt and look the email up, in one batch.
    expect(tally.worker).toEqual({ roundTrips: 1, reads: 1, writes: 1, rowsRead: 2, rowsWritten: 2 });
    // The user object, in one batch: the session's mirror row (if the hash checked is still the
    // user's), the hash upgrade (none here) and the throttle reset. Index entries count as rows.
    expect(tally.authority).toEqual({ roundTrips: 1, reads: 0, writes: 3, rowsRead: 3, rowsWritten: 5 });
  });

  it('a renewal (rule 5): no D1 at all, 1 call to the user object', async () => {
    const { email } = await newUser();
    const { token } = await loggedIn(email);
    const { response, tally } = await counted(post('/auth/renew', { token }));
    expect(response.status).toBe(200);
    expect(claimsOf(((await response.json()) as { access_token: string }).access_token).gen).toBe(2);
    expect(tally).toEqual({ worker: emptyD1(), authority: emptyD1(), objectCalls: ['renew'] });
  });

  it('a grace answer (rule 6): no D1 at all, 1 call to the user object', async () => {
    testClock.set(Date.now());
    const { email } = await newUser();
    const { token } = await loggedIn(email);
    expect((await renew(token)).status).toBe(200);
    testClock.advance(GRACE_MS - 1000);
    const { response, tally } = await counted(post('/auth/renew', { token }));
    expect(response.status).toBe(200);
    expect(tally).toEqual({ worker: emptyD1(), authority: emptyD1(), objectCalls: ['renew'] });
  });

  it("a reuse (rule 7): 1 call to the user object, whose only D1 traffic is the delivery of the revocation's mirror", async () => {
    testClock.set(Date.now());
    const { email } = await newUser();
    const { token } = await loggedIn(email);
    expect((await renew(token)).status).toBe(200);
    testClock.advance(GRACE_MS + 1000);
    const { response, tally } = await counted(post('/auth/renew', { token }));
    expect(response.status).toBe(401);
    expect(tally.objectCalls).toEqual(['renew']);
    expect(tally.worker).toEqual(emptyD1());
    // One batch: the session's revocation mark and, the token being newer than the last login,
    // the user's revoked_before.
    expect(tally.authority).toEqual({ roundTrips: 1, reads: 0, writes: 2, rowsRead: 2, rowsWritten: 2 });
  });

  it('refusals: no D1 at all; rule 2 (idle) without even a call to the user object', async () => {
    testClock.set(Date.now());
    const { email } = await newUser();
    const first = await login(email);
    const second = await login(email);
    const refusals: Array<[string, string, string[]]> = [];

    expect((await counted(post('/auth/logout', { token: first.access_token }))).response.status).toBe(204);
    const revoked = await counted(post('/auth/renew', { token: first.access_token }));
    refusals.push(['session_revoked', ((await revoked.response.json()) as { code: string }).code, revoked.tally.objectCalls]);
    expect(revoked.tally.worker).toEqual(emptyD1());
    expect(revoked.tally.authority).toEqual(emptyD1());

    // A generation the records never reached (rule 8), signed with the service's own key.
    const claims = claimsOf(second.access_token) as unknown as AccessTokenClaims;
    const keyring = await keyringFor(configFrom(env).signingKeysJson);
    const ahead = await signAccessToken({ ...claims, gen: 5, jti: generationJti(claims.sid, 5) }, keyring);
    const mismatch = await counted(post('/auth/renew', { token: ahead }));
    refusals.push(['invalid_token', ((await mismatch.response.json()) as { code: string }).code, mismatch.tally.objectCalls]);
    expect(mismatch.tally.worker).toEqual(emptyD1());
    expect(mismatch.tally.authority).toEqual(emptyD1());

    testClock.advance(15 * 86_400_000);
    const idle = await counted(post('/auth/renew', { token: second.access_token }));
    refusals.push(['session_inactive', ((await idle.response.json()) as { code: string }).code, idle.tally.objectCalls]);
    expect(idle.tally.worker).toEqual(emptyD1());
    expect(idle.tally.authority).toEqual(emptyD1());

    expect(refusals).toEqual([
      ['session_revoked', 'session_revoked', ['renew']],
      ['invalid_token', 'invalid_token', ['renew']],
      ['session_inactive', 'session_inactive', []],
    ]);
  });

  it('a stateless check (GET /api/me): no D1, no call to the user object; the signature is verified once per token', async () => {
    const { email } = await newUser();
    const { token } = await loggedIn(email);
    const before = { hits: verifiedTokens.hits, misses: verifiedTokens.misses };
    for (let i = 0; i < 3; i++) {
      const { response, tally } = await counted(get('/api/me', token));
      expect(response.status).toBe(200);
      expect(tally).toEqual({ worker: emptyD1(), authority: emptyD1(), objectCalls: [] });
    }
    expect({ hits: verifiedTokens.hits - before.hits, misses: verifiedTokens.misses - before.misses }).toEqual({
      hits: 2,
      misses: 1,
    });
  });

  it('a strict check (GET /api/account): 1 D1 round trip from the Worker, a read, and no call to the user object', async () => {
    const { email } = await newUser();
    const { token } = await loggedIn(email);
    const { response, tally } = await counted(get('/api/account', token));
    expect(response.status).toBe(200);
    expect(tally.objectCalls).toEqual([]);
    expect(tally.authority).toEqual(emptyD1());
    expect(tally.worker).toEqual({ roundTrips: 1, reads: 1, writes: 0, rowsRead: 2, rowsWritten: 0 });
  });

  it('a logout: no D1 from the Worker, 1 call to the user object, 1 D1 write from it', async () => {
    const { email } = await newUser();
    const { token } = await loggedIn(email);
    const { response, tally } = await counted(post('/auth/logout', { token }));
    expect(response.status).toBe(204);
    expect(tally.objectCalls).toEqual(['endSession']);
    expect(tally.worker).toEqual(emptyD1());
    expect(tally.authority).toEqual({ roundTrips: 1, reads: 0, writes: 1, rowsRead: 1, rowsWritten: 1 });
  });

  it('a logout-all: the strict read from the Worker, 1 call to the user object, 1 D1 write from it', async () => {
    const { email } = await newUser();
    const { token } = await loggedIn(email);
    const { response, tally } = await counted(post('/auth/logout-all', { token }));
    expect(response.status).toBe(204);
    expect(tally.objectCalls).toEqual(['logoutAll']);
    // The Worker: the strict check. The object: the mirror of revoked_before, once D1 has it answered.
    expect(tally.worker).toEqual({ roundTrips: 1, reads: 1, writes: 0, rowsRead: 2, rowsWritten: 0 });
    expect(tally.authority).toEqual({ roundTrips: 1, reads: 0, writes: 1, rowsRead: 1, rowsWritten: 1 });
  });

  it('ending one session (DELETE /auth/sessions/:id): the strict read, 1 call to the user object, 1 D1 write from it', async () => {
    const { email } = await newUser();
    const { token } = await loggedIn(email);
    const other = await login(email);
    const { response, tally } = await counted(post(`/auth/sessions/${other.session_id}`, { token, method: 'DELETE' }));
    expect(response.status).toBe(204);
    expect(tally.objectCalls).toEqual(['endSession']);
    expect(tally.worker).toEqual({ roundTrips: 1, reads: 1, writes: 0, rowsRead: 2, rowsWritten: 0 });
    expect(tally.authority).toEqual({ roundTrips: 1, reads: 0, writes: 1, rowsRead: 1, rowsWritten: 1 });
  });

  it('a password change: the strict read and the throttle batch from the Worker, 1 call to the user object, a read and a batch from it', async () => {
    const { email } = await newUser();
    const { token } = await loggedIn(email);
    const { response, tally } = await counted(
      post('/auth/password', { token, json: { current_password: PASSWORD, new_password: `${PASSWORD}!` } }),
    );
    expect(response.status).toBe(200);
    expect(tally.objectCalls).toEqual(['changePassword']);
    // The Worker: the strict check; the throttle charge with the email's lookup, in one batch.
    expect(tally.worker).toEqual({ roundTrips: 2, reads: 2, writes: 1, rowsRead: 4, rowsWritten: 2 });
    // The object: the hash read (is it still the one checked?); then one batch: the mirror of
    // revoked_before, the new hash, the new session's mirror row, the throttle reset.
    expect(tally.authority).toEqual({ roundTrips: 2, reads: 1, writes: 4, rowsRead: 6, rowsWritten: 7 });
  });

  it("an operator's revocation: the existence read from the Worker, 1 call to the user object, 1 D1 write from it", async () => {
    const { id, email } = await newUser();
    await loggedIn(email);
    const { response, tally } = await counted(
      post(`/admin/users/${id}/revoke`, { headers: { authorization: `Bearer ${adminToken()}` } }),
    );
    expect(response.status).toBe(204);
    expect(tally.objectCalls).toEqual(['adminRevoke']);
    // The Worker: does the user exist (a guessed id creates no object)?
    expect(tally.worker).toEqual({ roundTrips: 1, reads: 1, writes: 0, rowsRead: 1, rowsWritten: 0 });
    expect(tally.authority).toEqual({ roundTrips: 1, reads: 0, writes: 1, rowsRead: 1, rowsWritten: 1 });
  });

  it('configuration and keys are parsed and imported once per isolate, not per request', async () => {
    expect(configFrom(env)).toBe(configFrom(env));
    const json = configFrom(env).signingKeysJson;
    expect(keyringFor(json)).toBe(keyringFor(json));
    expect(await keyringFor(json)).toBe(await keyringFor(json));
  });
});
