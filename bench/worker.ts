/**
 * The benchmark's Worker: the production Worker (src/index.ts, with its start-up checks) and its
 * Durable Object's code, plus the floors it is measured against and the seeding it needs, under
 * /bench/. Only `npm run bench` builds this file; wrangler.toml's `main` is src/index.ts, so none
 * of it exists in a deployment.
 *
 * Every D1 call, of the Worker and of every object, goes through bench/counted-d1.ts: counted,
 * and held back by a delay when a run asks for one. The Worker is handed that D1 in its `env`; an
 * object gets its `env` from the runtime, so the user's object is bound to subclasses of
 * UserAuthority whose constructors hand the same wrapped `env` to UserAuthority's. They add no
 * method and override none: the object's RPC surface is UserAuthority's public API, and the code
 * measured is UserAuthority's.
 */
import { DurableObject } from 'cloudflare:workers';
import { Hono } from 'hono';
import { type CryptoKey, calculateJwkThumbprint, compactVerify, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { now } from '../src/clock';
import { configFrom } from '../src/config';
import { verifyDpopProof } from '../packages/verify/src/dpop/proof';
import worker from '../src/index';
import { hashPassword, verifyPassword } from '../src/passwords/hash';
import type { SessionRecord } from '../src/sessions/decide';
import { UserRecords } from '../src/storage/user-records';
import { accessTokenClaims, generationJti } from '../src/sessions/claims';
import type { AccessTokenClaims } from '../src/tokens/claims';
import { type Keyring, keyringFor } from '../src/tokens/keys';
import { signAccessToken } from '../src/tokens/sign';
import { VERIFIED_CACHE_CAPACITY, VerifiedTokenCache, verifiedTokens } from '../src/tokens/verified-cache';
import { type VerifyExpectations, verifyAccessToken } from '../packages/verify/src/tokens/verify';
import { UserAuthority } from '../src/user-authority/object';
import { countedD1, d1Traffic } from './counted-d1';

export { LatchkeyInternal } from '../src/index';

type BenchEnv = Env & {
  BENCH_FLOOR: DurableObjectNamespace<BenchFloor>;
  /** The same class as USER_AUTHORITY, in a namespace whose objects the runtime may evict. */
  USER_AUTHORITY_EVICTABLE: DurableObjectNamespace<EvictableUserAuthority>;
  /** migrations/*.sql in order, as a JSON array of their texts (bench/run.mjs reads them). */
  BENCH_MIGRATIONS: string;
};

/** Objects constructed, by class: an object constructed again after its first time woke up from eviction. */
const constructed = { users: 0, evictableUsers: 0, floors: 0 };

const countedEnvs = new WeakMap<object, BenchEnv>();
const wrappedEnvs = new WeakSet<object>();

/**
 * `env` with its D1 counted (and delayed when asked). One per `env` object, so that configFrom,
 * which caches per `env` object, still parses the configuration once.
 */
function counted(env: BenchEnv): BenchEnv {
  if (wrappedEnvs.has(env)) return env;
  let wrapped = countedEnvs.get(env);
  if (!wrapped) {
    wrapped = { ...env, DB: countedD1(env.DB) };
    countedEnvs.set(env, wrapped);
    wrappedEnvs.add(wrapped);
  }
  return wrapped;
}

const evictableEnvs = new WeakMap<object, BenchEnv>();

/** The counted `env` with USER_AUTHORITY pointing at the evictable namespace. */
function evictable(env: BenchEnv): BenchEnv {
  let wrapped = evictableEnvs.get(env);
  if (!wrapped) {
    const base = counted(env);
    wrapped = { ...base, USER_AUTHORITY: env.USER_AUTHORITY_EVICTABLE as unknown as Env['USER_AUTHORITY'] };
    evictableEnvs.set(env, wrapped);
    wrappedEnvs.add(wrapped);
  }
  return wrapped;
}

/** A login's first token and what D1's mirror row needs of it. */
interface SeededSession {
  sessionId: string;
  createdAt: number;
  token: string;
}

/** How soon the object's alarm comes back to prune, as a login leaves it (object.ts, PRUNE_INTERVAL_MS). */
const PRUNE_INTERVAL_MS = 24 * 60 * 60 * 1000;

/**
 * The user's object as the benchmark binds it: UserAuthority, its D1 counted (and delayed when
 * asked), plus one method for seeding. Renewals, logins and everything measured run
 * UserAuthority's own code; nothing is overridden.
 */
class SeedableUserAuthority extends UserAuthority {
  constructor(ctx: DurableObjectState, env: BenchEnv) {
    super(ctx, counted(env));
  }

  /**
   * What one login per entry of `clients` leaves in the user's object, written with UserRecords'
   * own statements in one transaction: a session at generation 1 each, a login event each, the
   * user's instants, and the alarm; and each session's first token, signed from the claims the
   * object signs. A login through the object costs a D1 transaction each, and 10,000 of them took
   * minutes here; this takes one transaction per user. A session in any other shape than a
   * login's would make the renewals that follow fail, and every failure counts as an error.
   */
  async seedLogins(input: { userId: string; clients: string[] }): Promise<SeededSession[]> {
    const config = configFrom(this.env);
    const records = new UserRecords(this.ctx.storage.sql);
    const sessions = this.ctx.storage.transactionSync(() => {
      const user = records.loadUser() ?? { userId: input.userId, revokedBefore: 0, lastLoginAt: 0, clock: 0, emailVerifiedAt: null };
      const created = input.clients.map((client) => {
        const at = Math.max(now(), user.clock + 1);
        user.clock = at;
        user.lastLoginAt = at;
        const session: SessionRecord = {
          id: crypto.randomUUID(),
          userId: input.userId,
          client,
          createdAt: at,
          gen: 1,
          genMintedAt: at,
          genExpiresAt: Math.floor(at / 1000) + config.accessTokenTtlSeconds,
          revokedAt: null,
          dpopJkt: null,
          dbscJkt: null,
        };
        records.sessions.insert(session);
        records.events.append({ type: 'login', at, sessionId: session.id, detail: { client } }, 0);
        return session;
      });
      records.saveUser(user);
      return created;
    });
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now() + PRUNE_INTERVAL_MS);
    const keyring = await keyringFor(config.signingKeysJson);
    return Promise.all(
      sessions.map(async (session) => ({
        sessionId: session.id,
        createdAt: session.createdAt,
        token: await signAccessToken(accessTokenClaims({ config, session, jkt: null, emailVerified: false }), keyring),
      })),
    );
  }
}

/** USER_AUTHORITY in the benchmark. */
export class BenchUserAuthority extends SeedableUserAuthority {
  constructor(ctx: DurableObjectState, env: BenchEnv) {
    super(ctx, env);
    constructed.users++;
  }
}

/** The same, in the namespace whose objects the runtime evicts when idle (USER_AUTHORITY_EVICTABLE). */
export class EvictableUserAuthority extends SeedableUserAuthority {
  constructor(ctx: DurableObjectState, env: BenchEnv) {
    super(ctx, env);
    constructed.evictableUsers++;
  }
}

/**
 * `floor` is the renewal floor: the Worker checks the presented token's Ed25519 signature and
 * nothing else, calls the key's object, which writes one row of its own SQLite by primary key and
 * signs a token with one Ed25519 signature. The least a correct renewal can do: verify the token,
 * reach the user's serializing object, make the new generation durable there, sign.
 * The other shapes split a renewal's cost for the report: the object call alone, the call and
 * the write (no crypto), a renewal's storage transaction instead of one write (signed as the floor
 * signs, or over access-token claims as a renewal signs), and one D1 write instead of the object's
 * own storage (what a renewal did when its state was in D1).
 */
const FLOOR_SHAPES = ['call', 'write', 'floor', 'transaction', 'transaction-claims', 'd1'] as const;
type FloorShape = (typeof FLOOR_SHAPES)[number];

const encoder = new TextEncoder();

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const FLOOR_HEADER = base64url(encoder.encode(JSON.stringify({ alg: 'EdDSA', typ: 'bench' })));

export class BenchFloor extends DurableObject<BenchEnv> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: BenchEnv) {
    super(ctx, counted(env));
    constructed.floors++;
    this.#sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.#sql.exec(
        `CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS floor_state (id INTEGER PRIMARY KEY CHECK (id = 1), clock INTEGER NOT NULL);
         INSERT OR IGNORE INTO floor (id, n) VALUES (1, 0);
         INSERT OR IGNORE INTO floor_state (id, clock) VALUES (1, 0);`,
      );
    });
  }

  async touch(key: string, shape: FloorShape): Promise<string> {
    switch (shape) {
      case 'call':
        return '';
      case 'write':
        this.#write();
        return '';
      case 'floor':
        return this.#sign(key, this.#write());
      case 'transaction':
        return this.#sign(key, this.ctx.storage.transactionSync(() => this.#renewalShapedWrite()));
      case 'transaction-claims': {
        // The same, signed as a renewal signs: signAccessToken over access-token claims.
        const n = this.ctx.storage.transactionSync(() => this.#renewalShapedWrite());
        const config = configFrom(this.env);
        const iat = Math.floor(Date.now() / 1000);
        const claims = { iss: config.issuer, aud: config.audience, sub: key, sid: key, gen: n, iat, exp: iat + 300 };
        return signAccessToken({ ...claims, jti: generationJti(key, n) }, await keyringFor(config.signingKeysJson));
      }
      case 'd1': {
        const row = await this.env.DB.prepare('UPDATE bench_floor SET n = n + 1 WHERE id = ?1 RETURNING n')
          .bind(key)
          .first<{ n: number }>();
        return this.#sign(key, row?.n ?? 0);
      }
    }
  }

  /** One write by primary key. */
  #write(): number {
    return this.#sql.exec<{ n: number }>('UPDATE floor SET n = n + 1 WHERE id = 1 RETURNING n').one().n;
  }

  /**
   * What a renewal's transaction does: read the user's row joined with the session's, compare-and-swap
   * the session, move the user's clock.
   */
  #renewalShapedWrite(): number {
    const { n, clock } = this.#sql
      .exec<{ n: number; clock: number }>('SELECT n, clock FROM floor LEFT JOIN floor_state ON floor_state.id = floor.id WHERE floor.id = 1')
      .one();
    const next = this.#sql.exec<{ n: number }>('UPDATE floor SET n = ? WHERE id = 1 AND n = ? RETURNING n', n + 1, n).one().n;
    this.#sql.exec('UPDATE floor_state SET clock = ? WHERE id = 1', Math.max(Date.now(), clock + 1));
    return next;
  }

  /** One Ed25519 signature over a token-shaped input, with the key renewals sign with. */
  async #sign(key: string, n: number): Promise<string> {
    const keyring = await keyringFor(configFrom(this.env).signingKeysJson);
    const input = `${FLOOR_HEADER}.${base64url(encoder.encode(JSON.stringify({ sub: key, n })))}`;
    const signature = await crypto.subtle.sign({ name: 'Ed25519' }, keyring.signer.key, encoder.encode(input));
    return `${input}.${base64url(new Uint8Array(signature))}`;
  }
}

/** The public half of the keyring's signer: SIGNING_KEYS always lists the signer among its verifiers. */
function signerPublicKey(keyring: Keyring): CryptoKey {
  const verifier = keyring.verifiers.get(keyring.signer.kid);
  if (verifier === undefined) throw new Error(`the keyring has no verifier for its signer ${keyring.signer.kid}`);
  return verifier.key;
}

/** The presented token's Ed25519 signature checked with crypto.subtle.verify, and nothing else. */
async function signatureChecks(env: Env, authorization: string | undefined): Promise<boolean> {
  const token = (authorization ?? '').slice('Bearer '.length);
  const keyring = await keyringFor(configFrom(env).signingKeysJson);
  const dot = token.lastIndexOf('.');
  const signature = Uint8Array.from(atob(token.slice(dot + 1).replace(/-/g, '+').replace(/_/g, '/')), (ch) =>
    ch.charCodeAt(0),
  );
  return crypto.subtle.verify(
    { name: 'Ed25519' },
    signerPublicKey(keyring),
    signature,
    encoder.encode(token.slice(0, dot)),
  );
}

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
  'object-call',
  'object-floor',
  'object-transaction',
  'object-transaction-claims',
  'object-renew',
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
      : base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(token))));
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

/** Requests the Worker served, except the benchmark's own bookkeeping (/bench/isolate, /bench/d1). */
let requests = 0;

/** The claims of one of our own tokens, read without verifying it (the loops verify elsewhere). */
function claimsOf(token: string): AccessTokenClaims {
  const [, encoded] = token.split('.');
  if (encoded === undefined) throw new Error('not a JWS: no payload');
  const payload = encoded.replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(atob(payload)) as AccessTokenClaims;
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
  // D1 as `wrangler d1 migrations apply` leaves it, plus the table of the floor's D1 shape.
  .post('/bench/setup', async (c) => {
    const migrations = JSON.parse(c.env.BENCH_MIGRATIONS) as string[];
    const statements = migrations.flatMap((sql) =>
      sql
        .replace(/--.*$/gm, '')
        .split(';')
        .map((statement) => statement.trim())
        .filter(Boolean),
    );
    statements.push('CREATE TABLE bench_floor (id TEXT PRIMARY KEY, n INTEGER NOT NULL)');
    await c.env.DB.batch(statements.map((statement) => c.env.DB.prepare(statement)));
    return c.json({ ok: true, statements: statements.length });
  })

  // Users and their sessions as registration and logins leave them: each user's object records
  // its logins (SeedableUserAuthority.seedLogins), and D1 gets the users (one shared password hash:
  // 1,000 scrypt hashes would take minutes) and each session's mirror row, in one batch.
  .post('/bench/seed', async (c) => {
    const { password, users, evictable: inEvictable } = await c.req.json<{
      password: string;
      users: SeedUser[];
      evictable?: boolean;
    }>();
    const passwordHash = await hashOnce(password);
    const namespace = (inEvictable ? c.env.USER_AUTHORITY_EVICTABLE : c.env.USER_AUTHORITY) as unknown as DurableObjectNamespace<SeedableUserAuthority>;
    const created = await Promise.all(
      users.map(async ({ email, sessions }) => {
        const id = crypto.randomUUID();
        const createdAt = now();
        const clients = Array.from({ length: sessions }, (_, index) => `bench ${index}`);
        const seeded = await namespace.get(namespace.idFromName(id)).seedLogins({ userId: id, clients });
        return { id, email, createdAt, sessions: seeded };
      }),
    );
    const db = c.env.DB;
    await db.batch(
      created.flatMap((user) => [
        db
          .prepare('INSERT INTO users (id, email, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)')
          .bind(user.id, user.email, passwordHash, user.createdAt),
        db.prepare('INSERT INTO bench_floor (id, n) VALUES (?1, 0)').bind(user.id),
        ...user.sessions.map((session) =>
          db.prepare('INSERT INTO sessions (id, user_id, created_at) VALUES (?1, ?2, ?3)').bind(session.sessionId, user.id, session.createdAt),
        ),
      ]),
    );
    return c.json({
      users: created.map((user) => ({
        id: user.id,
        email: user.email,
        sessions: user.sessions.map(({ sessionId, token }) => ({ sessionId, token })),
      })),
    });
  })

  .post('/bench/floor/:key', async (c) => {
    const key = c.req.param('key');
    const shape = (c.req.query('shape') ?? 'floor') as FloorShape;
    if (!FLOOR_SHAPES.includes(shape)) return c.json({ error: `shape must be one of ${FLOOR_SHAPES.join(', ')}` }, 400);
    const floor = c.env.BENCH_FLOOR.get(c.env.BENCH_FLOOR.idFromName(key));
    if (shape === 'call' || shape === 'write') return c.json({ ok: (await floor.touch(key, shape)) === '' });
    if (!(await signatureChecks(c.env, c.req.header('authorization')))) return c.json({ error: 'bad signature' }, 401);
    c.header('cache-control', 'no-store');
    return c.json({ access_token: await floor.touch(key, shape) });
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
    const ok = await signatureChecks(c.env, c.req.header('authorization'));
    return c.json({ ok }, ok ? 200 : 401);
  })

  // The delay in front of every D1 call, for the runs that follow.
  .post('/bench/d1', async (c) => {
    const { delayMs } = await c.req.json<{ delayMs: number }>();
    if (!Number.isFinite(delayMs) || delayMs < 0) return c.json({ error: 'delayMs must be a number ≥ 0' }, 400);
    d1Traffic.delayMs = delayMs;
    return c.json(d1Traffic);
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
    const publicKey = signerPublicKey(keyring);
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
    // The object side alone, called over RPC as the Worker calls it: an empty call, the floor's
    // write and sign, the same with a renewal's transaction (signed as the floor signs, then as a
    // renewal signs), and UserAuthority.renew on one user's session, presenting each time the
    // claims of the token the call before returned (what the Worker would have verified).
    const floor = c.env.BENCH_FLOOR.get(c.env.BENCH_FLOOR.idFromName('loop'));
    const users = c.env.USER_AUTHORITY as unknown as DurableObjectNamespace<SeedableUserAuthority>;
    let renewing: { stub: DurableObjectStub<SeedableUserAuthority>; claims: AccessTokenClaims } | undefined;
    if (op === 'object-renew') {
      const userId = `loop-${crypto.randomUUID()}`;
      const stub = users.get(users.idFromName(userId));
      const [session] = await stub.seedLogins({ userId, clients: ['loop'] });
      if (session === undefined) throw new Error('seedLogins opened no session');
      renewing = { stub, claims: claimsOf(session.token) };
    }
    let ok = 0;
    for (let i = 0; i < n; i++) {
      switch (op) {
        case 'object-call':
          ok += Number((await floor.touch('loop', 'call')) === '');
          break;
        case 'object-floor':
          ok += Number((await floor.touch('loop', 'floor')).length > 0);
          break;
        case 'object-transaction':
          ok += Number((await floor.touch('loop', 'transaction')).length > 0);
          break;
        case 'object-transaction-claims':
          ok += Number((await floor.touch('loop', 'transaction-claims')).length > 0);
          break;
        case 'object-renew': {
          if (renewing === undefined) throw new Error('object-renew without a seeded session');
          const result = await renewing.stub.renew(renewing.claims);
          if (!result.ok) throw new Error(`loop renewal: ${result.code}`);
          renewing.claims = claimsOf(result.value.accessToken);
          ok += 1;
          break;
        }
        case 'subtle':
          ok += Number(await crypto.subtle.verify({ name: 'Ed25519' }, publicKey, signature, signingInput));
          break;
        case 'jose':
          ok += Number((await compactVerify(token, publicKey)).payload.length > 0);
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
        case 'app-me-distinct': {
          const distinct = tokens.distinct[i % tokens.distinct.length];
          if (distinct === undefined) throw new Error('the loop holds no distinct tokens');
          ok += Number((await request('/api/me', distinct)).ok);
          break;
        }
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

  // What the isolate counted: caches (config per env object, keyring, verified tokens), D1 calls,
  // objects constructed. bench/run.mjs reads it around every timed run.
  .get('/bench/isolate', async (c) => {
    const keyring = keyringFor(configFrom(c.env).signingKeysJson);
    return c.json({
      requests,
      distinctEnvs,
      keyringImportedOnce: firstKeyring === keyring,
      constructed,
      d1: d1Traffic,
      verifiedTokens: {
        hits: verifiedTokens.hits,
        misses: verifiedTokens.misses,
        size: verifiedTokens.size,
        capacity: VERIFIED_CACHE_CAPACITY,
      },
    });
  });

/** Requests under this prefix are the Worker's own routes, served with the evictable user objects. */
const EVICTABLE_PREFIX = '/bench/evictable';

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
    const { pathname } = new URL(request.url);
    if (pathname !== '/bench/isolate' && pathname !== '/bench/d1') requests++;
    if (pathname.startsWith(`${EVICTABLE_PREFIX}/`)) {
      const url = new URL(request.url);
      url.pathname = pathname.slice(EVICTABLE_PREFIX.length);
      return worker.fetch(new Request(url, request), evictable(env), ctx);
    }
    if (pathname.startsWith('/bench/')) return bench.fetch(request, counted(env), ctx);
    if (request.headers.get('x-bench-hash-budget') === 'off') return worker.fetch(request, withoutHashBudget(counted(env)), ctx);
    return worker.fetch(request, counted(env), ctx);
  },
} satisfies ExportedHandler<BenchEnv>;
