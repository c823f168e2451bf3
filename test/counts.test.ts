/**
 * Counts, not times: the D1 statements, D1 round trips and Durable Object calls that each
 * operation makes. These are what an auth layer costs on every request in production (a D1 round
 * trip is a network hop to the database's primary), so a change that adds one fails here.
 *
 * The Worker's side runs through the real app with an env whose DB and USER_AUTHORITY record what
 * passes through them; the user's object writes through a recording D1 swapped into its store.
 */
import { env } from 'cloudflare:workers';
import { afterEach, describe, expect, it } from 'vitest';
import { app } from '../src/app';
import { configFrom } from '../src/config';
import { keyringFor } from '../src/tokens/keys';
import { verifiedTokens } from '../src/tokens/verified-cache';
import { countingD1, countingNamespace, type D1Trips } from './counting';
import { setAuthorityD1 } from './faults';
import { PASSWORD, signedInUser, type TokenBody } from './helpers';

/** An env that records the Worker's D1 trips and Durable Object calls. */
function recordingEnv() {
  const worker = countingD1(env.DB);
  const authority = countingNamespace(env.USER_AUTHORITY as unknown as DurableObjectNamespace);
  const recorded = { ...env, DB: worker.db, USER_AUTHORITY: authority.namespace } as Env;
  return { env: recorded, workerTrips: worker.trips, objectCalls: authority.calls };
}

/** Records the D1 trips the user's object makes until `afterEach` puts its real D1 back. */
const swapped: string[] = [];
async function recordObjectD1(userId: string): Promise<D1Trips> {
  const object = countingD1(env.DB);
  await setAuthorityD1(userId, object.db);
  swapped.push(userId);
  return object.trips;
}

afterEach(async () => {
  for (const userId of swapped.splice(0)) await setAuthorityD1(userId, undefined);
});

function request(recorded: Env, path: string, init: RequestInit & { token?: string; json?: unknown } = {}) {
  const headers = new Headers(init.headers);
  if (init.token !== undefined) headers.set('authorization', `Bearer ${init.token}`);
  if (init.json !== undefined) headers.set('content-type', 'application/json');
  const body = init.json !== undefined ? JSON.stringify(init.json) : init.body;
  return app.request(`http://localhost${path}`, { ...init, headers, body }, recorded);
}

const statementsOf = (trips: D1Trips) => trips.flat();
const verbOf = (sql: string) => sql.trim().split(/\s+/)[0]?.toUpperCase();

describe('counts per operation', () => {
  it('stateless verify (GET /api/me): no D1, no Durable Object; the signature is checked once per token', async () => {
    const { token } = await signedInUser();
    const { env: recorded, workerTrips, objectCalls } = recordingEnv();
    const before = { hits: verifiedTokens.hits, misses: verifiedTokens.misses };
    for (let i = 0; i < 3; i++) expect((await request(recorded, '/api/me', { token: token.access_token })).status).toBe(200);
    expect({ trips: workerTrips, calls: objectCalls }).toEqual({ trips: [], calls: [] });
    expect({ hits: verifiedTokens.hits - before.hits, misses: verifiedTokens.misses - before.misses }).toEqual({
      hits: 2,
      misses: 1,
    });
  });

  it('strict verify (GET /api/account): one D1 statement, a read, and no Durable Object', async () => {
    const { token } = await signedInUser();
    const { env: recorded, workerTrips, objectCalls } = recordingEnv();
    expect((await request(recorded, '/api/account', { token: token.access_token })).status).toBe(200);
    expect(workerTrips).toHaveLength(1);
    expect(statementsOf(workerTrips).map(verbOf)).toEqual(['SELECT']);
    expect(objectCalls).toEqual([]);
  });

  it('renewal (POST /auth/renew): one Durable Object call, and in it one D1 round trip: the read and the compare-and-swap in one batch', async () => {
    const user = await signedInUser();
    const objectTrips = await recordObjectD1(user.id);
    const { env: recorded, workerTrips, objectCalls } = recordingEnv();
    const response = await request(recorded, '/auth/renew', { method: 'POST', token: user.token.access_token });
    expect(response.status).toBe(200);
    expect(((await response.json()) as TokenBody).session_id).toBe(user.token.session_id);
    expect(workerTrips).toEqual([]);
    expect(objectCalls).toEqual(['renew']);
    const statements = statementsOf(objectTrips);
    expect(objectTrips).toHaveLength(1);
    expect(statements.map(verbOf)).toEqual(['SELECT', 'UPDATE']);
    expect(statements[1]).toMatch(/WHERE id = \?1 AND user_id = \?2 AND gen = \?3/);
  });

  it('login (POST /auth/login): one D1 round trip before the hash, one Durable Object call', async () => {
    const user = await signedInUser();
    const objectTrips = await recordObjectD1(user.id);
    const { env: recorded, workerTrips, objectCalls } = recordingEnv();
    const response = await request(recorded, '/auth/login', { method: 'POST', json: { email: user.email, password: PASSWORD } });
    expect(response.status).toBe(200);
    expect(workerTrips).toHaveLength(1);
    expect(objectCalls).toEqual(['login']);
    expect(objectTrips.length).toBeLessThanOrEqual(2);
  });

  it('configuration and keys are parsed and imported once per isolate, not per request', async () => {
    expect(configFrom(env)).toBe(configFrom(env));
    const json = configFrom(env).signingKeysJson;
    expect(keyringFor(json)).toBe(keyringFor(json));
    expect(await keyringFor(json)).toBe(await keyringFor(json));
  });
});
