/**
 * The benchmark's Worker: the production Worker unchanged (src/index.ts, with its start-up checks
 * and its Durable Object), plus the floors it is measured against and the seeding it needs, under
 * /bench/. Only `npm run bench` builds this file; wrangler.toml's `main` is src/index.ts, so none
 * of these routes exist in a deployment.
 */
import { DurableObject } from 'cloudflare:workers';
import { base64url, type CryptoKey, calculateJwkThumbprint, compactVerify, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Hono } from 'hono';
import schema from '../migrations/0001_directory.sql';
import worker from '../src/index';
import { configFrom } from '../src/config';
import { verifyDpopProof } from '../packages/verify/src/dpop/proof';
import { hashPassword, verifyPassword } from '../src/passwords/hash';
import { generationJti } from '../src/tokens/claims';
import { type Keyring, keyringFor } from '../src/tokens/keys';
import { signAccessToken } from '../src/tokens/sign';
import { VERIFIED_CACHE_CAPACITY, VerifiedTokenCache, verifiedTokens } from '../src/tokens/verified-cache';
import { type VerifyExpectations, verifyAccessToken } from '../packages/verify/src/tokens/verify';

// Everything the production entry exports (its Durable Object, its entrypoint), as it exports it.
export { LatchkeyInternal, UserAuthority } from '../src/index';

type BenchEnv = Env & { BENCH_FLOOR: DurableObjectNamespace<BenchFloor> };

/**
 * The renewal floor's object: one call in, one D1 write by primary key, one answer out. The least
 * any correct renewal can do: a renewal must reach the user's serializing object and must make a
 * generation durable in D1 before answering (PROTOCOL.md, invariant 3).
 */
export class BenchFloor extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    floorInstances++;
    if (!objectEnvsSeen.has(env)) {
      objectEnvsSeen.add(env);
      objectEnvs++;
    }
  }

  /**
   * `write` is the floor. The other shapes split a renewal's storage cost for the report: the
   * object call alone, a read then a write (two D1 round trips), and both in one batch (one trip).
   */
  async touch(key: string, shape: FloorShape = 'write'): Promise<number> {
    const db = this.env.DB;
    const write = db.prepare('UPDATE bench_floor SET n = n + 1 WHERE id = ?1').bind(key);
    const read = db.prepare('SELECT id, n FROM bench_floor WHERE id = ?1').bind(key);
    switch (shape) {
      case 'call':
        return 1;
      case 'write':
        return (await write.run()).meta.changes;
      case 'read-write':
        await read.first();
        return (await write.run()).meta.changes;
      case 'batch':
        return ((await db.batch([read, write]))[1] as D1Result).meta.changes;
      case 'returning':
        return (await db.prepare('UPDATE bench_floor SET n = n + 1 WHERE id = ?1 AND EXISTS (SELECT 1 FROM users WHERE users.id = ?1) RETURNING id, n').bind(key).first()) ? 1 : 0;
    }
  }
}

type FloorShape = 'call' | 'write' | 'read-write' | 'batch' | 'returning';
const FLOOR_SHAPES: readonly FloorShape[] = ['call', 'write', 'read-write', 'batch', 'returning'];

/** How many floor objects were constructed: shows whether objects stay in memory between runs. */
let floorInstances = 0;
/** Distinct `env` objects handed to objects: 1 means every object shares one parsed config. */
const objectEnvsSeen = new WeakSet<object>();
let objectEnvs = 0;

/** One scrypt hash per password per isolate: seeding 1,000 users must not cost 1,000 hashes. */
const hashes = new Map<string, Promise<string>>();
function hashOnce(password: string): Promise<string> {
  let hash = hashes.get(password);
  if (!hash) {
    hash = hashPassword(password);
    hashes.set(password, hash);
  }
  return hash;
}

const LOOP_OPS = [
  'subtle',
  'jose',
  'verify',
  'cached',
  'sign',
  'dpop-proof',
  'app-health',
  'app-health-bearer',
  'app-me',
  'app-me-distinct',
  'app-renew',
  'app-renew-bound',
] as const;
type LoopOp = (typeof LOOP_OPS)[number];

/**
 * A DPoP proof for a renewal with `token` (or, without one, for `url`: a login), made now by a client
 * key of this isolate's, and what it is checked against: everything a bound request checks beyond
 * an unbound one (the key imported from the proof, its signature, every claim, `ath`, the
 * thumbprint), all but the replay store.
 */
let loopProofKey: Promise<{ privateKey: CryptoKey; jwk: Record<string, unknown>; jkt: string }> | undefined;
async function loopProof(token: string | undefined, url = 'http://bench/auth/renew') {
  loopProofKey ??= (async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(publicKey);
    return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
  })();
  const key = await loopProofKey;
  const nowMs = Date.now();
  const ath =
    token === undefined
      ? undefined
      : base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))));
  const proof = await new SignJWT({ jti: crypto.randomUUID(), htm: 'POST', htu: url, ...(ath === undefined ? {} : { ath }) })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk })
    .setIssuedAt(Math.floor(nowMs / 1000))
    .sign(key.privateKey);
  return { proof, expect: { method: 'POST', url, nowMs, accessToken: token, jkt: key.jkt } };
}

/**
 * One user signed in twice through the Worker, once without a proof and once with one of the
 * loops' key, for the `app-renew` loops, which renew the two sessions in turn. Each renewal of
 * either carries a fresh proof signed in the loop; the unbound session's goes as `Bearer`, which
 * ignores it. So signing costs both loops alike, and what the second costs more is what the
 * session's binding costs latchkey: the proof's check and its `jti` recorded in the user's object.
 * Made at the first /bench/loop call (the warm-up's), so no timed loop pays the logins' hashes.
 */
interface LoopSession {
  scheme: 'Bearer' | 'DPoP';
  token: string;
}
let loopRenewalSet: Promise<{ unbound: LoopSession; bound: LoopSession }> | undefined;
function loopRenewals(env: BenchEnv, ctx: Parameters<typeof worker.fetch>[2]) {
  loopRenewalSet ??= (async () => {
    const email = `loop-${crypto.randomUUID()}@bench.test`;
    const password = 'correct horse battery staple';
    const post = (path: string, headers: Record<string, string> = {}) =>
      worker.fetch(
        new Request(`http://bench${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ email, password }),
        }),
        withoutHashBudget(env),
        ctx,
      );
    if (!(await post('/auth/register')).ok) throw new Error('loop renewals: register failed');
    const login = async (headers?: Record<string, string>) =>
      (await (await post('/auth/login', headers)).json()) as { access_token: string; token_type: string };
    const unbound = await login();
    const bound = await login({ dpop: (await loopProof(undefined, 'http://bench/auth/login')).proof });
    if (unbound.token_type !== 'Bearer' || bound.token_type !== 'DPoP') throw new Error('loop renewals: not one of each');
    return { unbound: { scheme: 'Bearer', token: unbound.access_token }, bound: { scheme: 'DPoP', token: bound.access_token } };
  })();
  return loopRenewalSet;
}

/**
 * Tokens for the loops, signed once per isolate: one, and more distinct ones than the
 * verified-token cache holds, so that cycling through them misses every time.
 */
let loopTokenSet: Promise<{ keyring: Keyring; expect: VerifyExpectations; token: string; distinct: string[] }> | undefined;
function loopTokens(env: Env) {
  loopTokenSet ??= (async () => {
    const config = configFrom(env);
    const keyring = await keyringFor(config.signingKeysJson);
    const nowMs = Date.now();
    const iat = Math.floor(nowMs / 1000);
    const sign = (sid: string) =>
      signAccessToken(
        { iss: config.issuer, aud: config.audience, sub: 'bench', sid, gen: 1, iat, exp: iat + 3600, jti: generationJti(sid, 1) },
        keyring,
      );
    const distinct: string[] = [];
    for (let i = 0; i <= VERIFIED_CACHE_CAPACITY; i += 1) distinct.push(await sign(`loop-${i}`));
    return {
      keyring,
      expect: { issuer: config.issuer, audience: config.audience, nowMs, allowExpired: false },
      token: await sign('loop'),
      distinct,
    };
  })();
  return loopTokenSet;
}

/** Distinct `env` objects seen: 1 means configFrom's per-env WeakMap parses the config once. */
const envsSeen = new WeakSet<object>();
let distinctEnvs = 0;
let firstKeyring: Promise<unknown> | undefined;

interface SeedUser {
  email: string;
  sessions: number;
}

const bench = new Hono<{ Bindings: BenchEnv }>()
  .post('/bench/setup', async (c) => {
    const statements = schema
      .replace(/--.*$/gm, '')
      .split(';')
      .map((statement) => statement.trim())
      .filter(Boolean);
    statements.push('CREATE TABLE IF NOT EXISTS bench_floor (id TEXT PRIMARY KEY, n INTEGER NOT NULL)');
    await c.env.DB.batch(statements.map((statement) => c.env.DB.prepare(statement)));
    return c.json({ ok: true });
  })

  // Users with a shared password hash, and sessions as a login leaves them: the session row, the
  // user's last_login_at, and the generation-1 token with the claims the user's object signs. Written
  // straight to D1 in a few batches, because 5,000 logins through the objects would take most of the
  // benchmark's time budget. The objects wake up later, in the warm-up's renewals.
  .post('/bench/seed', async (c) => {
    const { password, users } = await c.req.json<{ password: string; users: SeedUser[] }>();
    const passwordHash = await hashOnce(password);
    const config = configFrom(c.env);
    const keyring = await keyringFor(config.signingKeysJson);
    const db = c.env.DB;
    const userRows: D1PreparedStatement[] = [];
    const sessionRows: D1PreparedStatement[] = [];
    const created = await Promise.all(
      users.map(async ({ email, sessions }) => {
        const id = crypto.randomUUID();
        const loginAt = Date.now();
        const grants: Array<{ sessionId: string; token: string }> = [];
        for (let index = 0; index < sessions; index++) {
          const sessionId = crypto.randomUUID();
          const createdAt = loginAt + index;
          const iat = Math.floor(createdAt / 1000);
          const exp = iat + config.accessTokenTtlSeconds;
          sessionRows.push(
            db
              .prepare(
                `INSERT INTO sessions (id, user_id, client, created_at, gen, gen_minted_at, gen_expires_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?4, ?5)`,
              )
              .bind(sessionId, id, `bench ${index}`, createdAt, exp),
          );
          const claims = { iss: config.issuer, aud: config.audience, sub: id, sid: sessionId, gen: 1, iat, exp };
          grants.push({ sessionId, token: await signAccessToken({ ...claims, jti: generationJti(sessionId, 1) }, keyring) });
        }
        userRows.push(
          db
            .prepare('INSERT INTO users (id, email, password_hash, created_at, last_login_at) VALUES (?1, ?2, ?3, ?4, ?5)')
            .bind(id, email, passwordHash, loginAt, loginAt + Math.max(0, sessions - 1)),
          db.prepare('INSERT INTO bench_floor (id, n) VALUES (?1, 0)').bind(id),
        );
        return { id, email, sessions: grants };
      }),
    );
    await db.batch([...userRows, ...sessionRows]);
    return c.json({ users: created });
  })

  .post('/bench/floor/:key', async (c) => {
    const key = c.req.param('key');
    const shape = (c.req.query('shape') ?? 'write') as FloorShape;
    if (!FLOOR_SHAPES.includes(shape)) return c.json({ error: `shape must be one of ${FLOOR_SHAPES.join(', ')}` }, 400);
    const changes = await c.env.BENCH_FLOOR.get(c.env.BENCH_FLOOR.idFromName(key)).touch(key, shape);
    return c.json({ ok: changes === 1 });
  })

  // The login floor: the password check alone, on the same hash a login checks.
  .post('/bench/hash', async (c) => {
    const { password } = await c.req.json<{ password: string }>();
    const check = await verifyPassword(password, await hashOnce(password));
    return c.json({ ok: check.ok });
  })

  // The crypto floor in place: the presented token's Ed25519 signature checked with
  // crypto.subtle.verify and nothing else (no claims, no header checks, no cache), as a request.
  .get('/bench/signature', async (c) => {
    const token = (c.req.header('authorization') ?? '').slice('Bearer '.length);
    const keyring = await keyringFor(configFrom(c.env).signingKeysJson);
    const dot = token.lastIndexOf('.');
    const signature = Uint8Array.from(atob(token.slice(dot + 1).replace(/-/g, '+').replace(/_/g, '/')), (ch) =>
      ch.charCodeAt(0),
    );
    const ok = await crypto.subtle.verify(
      { name: 'Ed25519' },
      keyring.verifiers.get(keyring.signer.kid)!.key,
      signature,
      new TextEncoder().encode(token.slice(0, dot)),
    );
    return c.json({ ok }, ok ? 200 : 401);
  })

  // Tight loops inside the isolate, timed by the caller (CPU from /proc, wall clock): the crypto
  // floor (`subtle`: the Ed25519 verify alone; `jose`: plus JWS parsing; `verify`: latchkey's full
  // verification; `cached`: a hit in the verified-token cache), and the Worker's own handling of a
  // request without the host around it (`app-*`: its fetch handler called directly).
  .get('/bench/loop', async (c) => {
    const op = c.req.query('op') as LoopOp;
    const n = Number(c.req.query('n'));
    if (!LOOP_OPS.includes(op) || !Number.isSafeInteger(n)) return c.json({ error: `op must be one of ${LOOP_OPS.join(', ')}` }, 400);
    const tokens = await loopTokens(c.env);
    const { keyring, expect, token } = tokens;
    const key = keyring.verifiers.get(keyring.signer.kid)!;
    const dot = token.lastIndexOf('.');
    const signingInput = new TextEncoder().encode(token.slice(0, dot));
    const signature = Uint8Array.from(atob(token.slice(dot + 1).replace(/-/g, '+').replace(/_/g, '/')), (ch) =>
      ch.charCodeAt(0),
    );
    const cache = new VerifiedTokenCache();
    const verified = await cache.verify(token, keyring, expect);
    if (!verified.ok) throw new Error('the loop token does not verify');
    const { claims } = verified;
    const proof = await loopProof(token);
    const renewals = await loopRenewals(c.env, c.executionCtx);
    const request = (path: string, presented: string) =>
      worker.fetch(new Request(`http://bench${path}`, { headers: { authorization: `Bearer ${presented}` } }), c.env, c.executionCtx);
    let ok = 0;
    for (let i = 0; i < n; i++) {
      switch (op) {
        case 'subtle':
          ok += Number(await crypto.subtle.verify({ name: 'Ed25519' }, key.key, signature, signingInput));
          break;
        case 'jose':
          ok += Number((await compactVerify(token, key.key)).payload.length > 0);
          break;
        case 'verify':
          ok += Number((await verifyAccessToken(token, keyring, expect)).ok);
          break;
        case 'cached':
          ok += Number((await cache.verify(token, keyring, expect)).ok);
          break;
        case 'sign':
          ok += Number((await signAccessToken(claims, keyring)).length > 0);
          break;
        case 'dpop-proof':
          ok += Number((await verifyDpopProof(proof.proof, proof.expect)).ok);
          break;
        case 'app-health':
          ok += Number((await worker.fetch(new Request('http://bench/health'), c.env, c.executionCtx)).ok);
          break;
        case 'app-health-bearer':
          ok += Number((await request('/health', token)).ok);
          break;
        case 'app-me':
          ok += Number((await request('/api/me', token)).ok);
          break;
        case 'app-me-distinct':
          ok += Number((await request('/api/me', tokens.distinct[i % tokens.distinct.length]!)).ok);
          break;
        case 'app-renew':
        case 'app-renew-bound': {
          const session = op === 'app-renew' ? renewals.unbound : renewals.bound;
          const headers = { authorization: `${session.scheme} ${session.token}`, dpop: (await loopProof(session.token)).proof };
          const response = await worker.fetch(new Request('http://bench/auth/renew', { method: 'POST', headers }), c.env, c.executionCtx);
          if (response.ok) {
            session.token = ((await response.json()) as { access_token: string }).access_token;
            ok += 1;
          }
          break;
        }
      }
    }
    return c.json({ op, n, ok });
  })

  // Whether the per-isolate caches hit: config (per env object), keyring, verified tokens.
  .get('/bench/isolate', async (c) => {
    const keyring = keyringFor(configFrom(c.env).signingKeysJson);
    return c.json({
      distinctEnvs,
      floorInstances,
      objectEnvs,
      keyringImportedOnce: firstKeyring === keyring,
      verifiedTokens: { hits: verifiedTokens.hits, misses: verifiedTokens.misses, size: verifiedTokens.size },
    });
  });

/**
 * The env with HASH_BUDGET off, one object per env (so its config is parsed once, as the real
 * one is): requests that carry `x-bench-hash-budget: off` run on it, so that one run can measure
 * logins with and without the budget side by side. The budget itself is per isolate either way.
 */
const unbudgeted = new WeakMap<object, BenchEnv>();
function withoutHashBudget(env: BenchEnv): BenchEnv {
  let variant = unbudgeted.get(env);
  if (!variant) {
    variant = { ...env, HASH_BUDGET: 'off' };
    unbudgeted.set(env, variant);
  }
  return variant;
}

export default {
  fetch(request, env, ctx) {
    if (!envsSeen.has(env)) {
      envsSeen.add(env);
      distinctEnvs++;
    }
    firstKeyring ??= keyringFor(configFrom(env).signingKeysJson);
    if (new URL(request.url).pathname.startsWith('/bench/')) return bench.fetch(request, env, ctx);
    if (request.headers.get('x-bench-hash-budget') === 'off') return worker.fetch(request, withoutHashBudget(env), ctx);
    return worker.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<BenchEnv>;
