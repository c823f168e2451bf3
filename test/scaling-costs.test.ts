/**
 * What one login, one renewal and one stateless or strict check cost in D1 and Durable Object
 * traffic, counted on the real code path (docs/SCALING.md quotes these numbers). Every D1 call of
 * the Worker and of the user's object goes through a counting wrapper, and so does every call to
 * the user's object. A change that adds a statement, a round trip or an object call fails here.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { configFrom } from '../src/config';
import { keyringFor } from '../src/tokens/keys';
import { verifiedTokens } from '../src/tokens/verified-cache';
import { interceptD1, runStatement, setAuthorityD1 } from './faults';
import { claimsOf, PASSWORD, register, uniqueEmail } from './helpers';

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

/** The user-object namespace, recording each method called on a stub. */
function countingNamespace(namespace: DurableObjectNamespace, calls: string[]): DurableObjectNamespace {
  return new Proxy(namespace, {
    get(target, property) {
      if (property === 'get') {
        return (id: DurableObjectId) => {
          const stub = target.get(id);
          return new Proxy(stub, {
            get(stubTarget, method) {
              const value = Reflect.get(stubTarget, method, stubTarget);
              if (typeof value !== 'function' || typeof method !== 'string') return value;
              return (...args: unknown[]) => {
                calls.push(method);
                // Reflect.apply: an RPC stub would take `.apply` for a remote method of that name.
                return Reflect.apply(value as (...a: unknown[]) => unknown, stubTarget, args);
              };
            },
          });
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Runs `request` through the Worker's routes with every D1 and object call counted. */
async function counted(userId: string, request: Request): Promise<{ response: Response; tally: Tally }> {
  const tally: Tally = { worker: emptyD1(), authority: emptyD1(), objectCalls: [] };
  await setAuthorityD1(userId, countingD1(env.DB, tally.authority));
  try {
    const countedEnv = {
      ...env,
      DB: countingD1(env.DB, tally.worker),
      USER_AUTHORITY: countingNamespace(env.USER_AUTHORITY as unknown as DurableObjectNamespace, tally.objectCalls),
    };
    const response = await app.fetch(request, countedEnv);
    return { response, tally };
  } finally {
    await setAuthorityD1(userId, undefined);
  }
}

function get(path: string, token: string): Request {
  return new Request(`http://localhost${path}`, { headers: { authorization: `Bearer ${token}` } });
}

function post(path: string, init: { token?: string; json?: unknown }): Request {
  const headers = new Headers({ 'cf-connecting-ip': '203.0.113.9' });
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  if (init.json) headers.set('content-type', 'application/json');
  return new Request(`http://localhost${path}`, {
    method: 'POST',
    headers,
    body: init.json ? JSON.stringify(init.json) : undefined,
  });
}

async function loggedIn(email: string, userId: string) {
  const { response, tally } = await counted(userId, post('/auth/login', { json: { email, password: PASSWORD } }));
  expect(response.status).toBe(200);
  return { token: ((await response.json()) as { access_token: string }).access_token, tally };
}

describe('the cost of one operation', () => {
  it('a login: 1 D1 round trip from the Worker, 1 call to the user object, 2 D1 round trips from it', async () => {
    const email = uniqueEmail('cost');
    const user = await register(email);
    const { tally } = await loggedIn(email, user.id);
    expect(tally.objectCalls).toEqual(['login']);
    // The Worker: charge the attempt and look the email up, in one batch.
    expect(tally.worker).toEqual({ roundTrips: 1, reads: 1, writes: 1, rowsRead: 2, rowsWritten: 1 });
    // The user object: load the user; then, in one batch, insert the session, update the user,
    // insert the event, reset the throttle. Index entries count as rows written.
    expect(tally.authority).toEqual({ roundTrips: 2, reads: 1, writes: 4, rowsRead: 4, rowsWritten: 8 });
  });

  it('a renewal: no D1 in the Worker, 1 call to the user object, 1 D1 round trip from it (1 write)', async () => {
    const email = uniqueEmail('cost');
    const user = await register(email);
    const { token } = await loggedIn(email, user.id);
    const { response, tally } = await counted(user.id, post('/auth/renew', { token }));
    expect(response.status).toBe(200);
    expect(claimsOf(((await response.json()) as { access_token: string }).access_token).gen).toBe(2);
    expect(tally.objectCalls).toEqual(['renew']);
    expect(tally.worker).toEqual(emptyD1());
    // The user object: the generation's compare-and-swap alone, guarded so that it applies exactly
    // when rule 5 does (Store.rotateIfCurrent); it reads and decides only when it does not apply.
    expect(tally.authority).toEqual({ roundTrips: 1, reads: 0, writes: 1, rowsRead: 3, rowsWritten: 1 });
  });

  it('a stateless check (GET /api/me): no D1, no call to the user object; the signature is verified once per token', async () => {
    const email = uniqueEmail('cost');
    const user = await register(email);
    const { token } = await loggedIn(email, user.id);
    const before = { hits: verifiedTokens.hits, misses: verifiedTokens.misses };
    for (let i = 0; i < 3; i++) {
      const { response, tally } = await counted(user.id, get('/api/me', token));
      expect(response.status).toBe(200);
      expect(tally).toEqual({ worker: emptyD1(), authority: emptyD1(), objectCalls: [] });
    }
    expect({ hits: verifiedTokens.hits - before.hits, misses: verifiedTokens.misses - before.misses }).toEqual({
      hits: 2,
      misses: 1,
    });
  });

  it('a strict check (GET /api/account): 1 D1 round trip from the Worker, a read, and no call to the user object', async () => {
    const email = uniqueEmail('cost');
    const user = await register(email);
    const { token } = await loggedIn(email, user.id);
    const { response, tally } = await counted(user.id, get('/api/account', token));
    expect(response.status).toBe(200);
    expect(tally.objectCalls).toEqual([]);
    expect(tally.authority).toEqual(emptyD1());
    expect(tally.worker).toMatchObject({ roundTrips: 1, reads: 1, writes: 0 });
  });

  it('configuration and keys are parsed and imported once per isolate, not per request', async () => {
    expect(configFrom(env)).toBe(configFrom(env));
    const json = configFrom(env).signingKeysJson;
    expect(keyringFor(json)).toBe(keyringFor(json));
    expect(await keyringFor(json)).toBe(await keyringFor(json));
  });
});
