/**
 * Security: the attack corpus. The cases are data (tokens.json, requests.json in this folder);
 * this file only materializes them and presents each one to every route that reads a token or a
 * body, asserting the answer the case names and that nothing changed.
 *
 * A token case is either a literal Authorization header, or a recipe: a header and a payload
 * (the genuine token's, changed, or written out as text or bytes), a signing instruction, and an
 * optional transform of the finished token. Recipes need a real signature now and then (the
 * service's own key signing a flawed token, so that the flaw is the only thing wrong with it),
 * which is why they are materialized here rather than stored as fixed strings.
 */
import { env } from 'cloudflare:workers';
import { base64url, type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { API_CODES } from '../support/contract';
import { direct as call } from '../support/direct';
import { claimsOf, eventsOf, login, PASSWORD, register, renew, signedInUser, type TokenBody } from '../support/helpers';
// Read as text and parsed here: a bundler's JSON import turns the file into an object literal, in
// which a "__proto__" key sets the prototype instead of staying a key, and the cases need it as a key.
import requestsText from './requests.json?raw';
import tokensText from './tokens.json?raw';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Expectation = { status: number; code?: string };

/** Bytes written in a case: templated text, or hex for what text cannot hold. */
type ByteSpec = { text: string } | { hex: string } | { parts: Array<string | { hex: string }> };
type PartSpec = ByteSpec | { merge: Record<string, Json> } | { json: Json } | { genuineToken: true };

interface TokenCase {
  name: string;
  why?: string;
  /** A literal Authorization header value (templated); null sends none. */
  authorization?: string | null;
  /** A literal bearer token (templated), optionally repeated. */
  raw?: string;
  repeat?: number;
  header?: PartSpec;
  payload?: PartSpec;
  sign?: string | { hex: string };
  transform?: string;
  expect?: Expectation;
  expectByRoute?: Record<string, Expectation>;
  /** The answer when the token comes as the cookie, where it differs from the header's. */
  cookieExpect?: Expectation;
}

interface RequestCase {
  name: string;
  why?: string;
  routes: string[];
  contentType?: string | null;
  /** Extra request headers (Origin, for cookie mode). */
  headers?: Record<string, string>;
  body: ByteSpec | { json: Json } | { repeat: { prefix?: string; text: string; times: number; suffix?: string } } | { stream: { chunk: string; count: number } };
  expect?: Expectation;
  expectByRoute?: Record<string, Expectation>;
}

const tokenCorpus = JSON.parse(tokensText) as { cases: TokenCase[] };
const requestCorpus = JSON.parse(requestsText) as { fixture: { email: string }; cases: RequestCase[] };
const tokenCases = tokenCorpus.cases;
const requestCases = requestCorpus.cases;
const utf8 = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// The fixture

interface Fixture {
  user: { id: string; email: string; token: TokenBody };
  victim: { id: string; token: TokenBody };
  genuine: string;
  parts: [string, string, string];
  header: Record<string, Json>;
  claims: Record<string, Json>;
  kid: string;
  otherKid: string;
  realKey: CryptoKey;
  publicX: Uint8Array;
  publicXText: string;
  jwksText: string;
  attacker: { ed25519: CryptoKey; p256: CryptoKey; rsa: CryptoKey; jwk: JWK };
  /** A unique word per run, so cases that register accounts do not collide with earlier runs. */
  run: string;
  /** The account the request cases sign in to, and the token the password route uses. */
  requester: { id: string; email: string; token: TokenBody; password: string };
}

let fx: Fixture;

async function setUp(): Promise<Fixture> {
  const run = crypto.randomUUID().slice(0, 8);
  const user = await signedInUser('attack-corpus');
  const victim = await signedInUser('attack-corpus-victim');
  const { keys } = JSON.parse(env.SIGNING_KEYS) as { keys: Array<JWK & { kid: string; x: string }> };
  const [k0, k1] = keys as [JWK & { kid: string; x: string }, JWK & { kid: string; x: string }];
  const ed = await generateKeyPair('EdDSA', { extractable: true });
  const p256 = await generateKeyPair('ES256');
  const rsa = await generateKeyPair('RS256');
  const parts = user.token.access_token.split('.') as [string, string, string];
  const decode = (segment: string) => JSON.parse(new TextDecoder().decode(base64url.decode(segment)));
  const requesterEmail = fill(requestCorpus.fixture.email, run);
  const requester = await register(requesterEmail);
  return {
    user: { id: user.id, email: user.email, token: user.token },
    victim: { id: victim.id, token: victim.token },
    genuine: user.token.access_token,
    parts,
    header: decode(parts[0]),
    claims: decode(parts[1]),
    kid: k0.kid,
    otherKid: k1.kid,
    realKey: (await importJWK(k0, 'EdDSA')) as CryptoKey,
    publicX: base64url.decode(k0.x),
    publicXText: k0.x,
    jwksText: await (await call('/.well-known/jwks.json')).text(),
    attacker: { ed25519: ed.privateKey, p256: p256.privateKey, rsa: rsa.privateKey, jwk: await exportJWK(ed.publicKey) },
    run,
    requester: { ...requester, token: await login(requesterEmail), password: PASSWORD },
  };
}

/** `{{name}}` placeholders in case text. */
function fill(text: string, run = fx.run): string {
  const values: Record<string, () => string> = {
    run: () => run,
    genuine: () => fx.genuine,
    h: () => fx.parts[0],
    p: () => fx.parts[1],
    s: () => fx.parts[2],
    kid: () => fx.kid,
    otherKid: () => fx.otherKid,
    sub: () => fx.user.id,
    sid: () => fx.user.token.session_id,
    iat: () => String(fx.claims.iat),
    exp: () => String(fx.claims.exp),
    victimSub: () => fx.victim.id,
    victimSid: () => fx.victim.token.session_id,
    email: () => fx.requester.email,
    password: () => fx.requester.password,
  };
  return text.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (!value) throw new Error(`corpus: unknown placeholder {{${name}}}`);
    return value();
  });
}

function hexBytes(hex: string): Uint8Array {
  const clean = hex.replace(/\s+/g, '');
  return Uint8Array.from(clean.match(/../g) ?? [], (pair) => Number.parseInt(pair, 16));
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((size, chunk) => size + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function bytesOf(spec: ByteSpec): Uint8Array {
  if ('text' in spec) return utf8.encode(fill(spec.text));
  if ('hex' in spec) return hexBytes(spec.hex);
  return concat(spec.parts.map((part) => (typeof part === 'string' ? utf8.encode(fill(part)) : hexBytes(part.hex))));
}

/** Values in `merge` and `json` may be computed: `{"$now": s}`, `{"$repeat": [t, n]}`, `{"$nest": n}`, `{"$claimPlus": [c, n]}`. */
function computed(value: Json): Json {
  if (typeof value === 'string') return fill(value);
  if (Array.isArray(value)) return value.map(computed);
  if (value === null || typeof value !== 'object') return value;
  if ('$now' in value) return Math.floor(Date.now() / 1000) + (value.$now as number);
  if ('$repeat' in value) {
    const [text, times] = value.$repeat as [string, number];
    return text.repeat(times);
  }
  if ('$nest' in value) {
    let nested: Json = [];
    for (let depth = 1; depth < (value.$nest as number); depth++) nested = [nested];
    return nested;
  }
  if ('$claimPlus' in value) {
    const [claim, delta] = value.$claimPlus as [string, number];
    return (fx.claims[claim] as number) + delta;
  }
  // JSON.parse makes "__proto__" an own property; keep it one here too.
  const out: Record<string, Json> = {};
  for (const [key, inner] of Object.entries(value)) Object.defineProperty(out, key, { value: computed(inner), enumerable: true, writable: true, configurable: true });
  return out;
}

function merged(base: Record<string, Json>, changes: Record<string, Json>): Record<string, Json> {
  const out = { ...base };
  for (const [name, change] of Object.entries(changes)) {
    if (change === null) delete out[name];
    else Object.defineProperty(out, name, { value: computed(change), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function partBytes(spec: PartSpec | undefined, base: Record<string, Json>): Uint8Array {
  if (spec === undefined) return utf8.encode(JSON.stringify(base));
  if ('merge' in spec) return utf8.encode(JSON.stringify(merged(base, spec.merge)));
  if ('json' in spec) return utf8.encode(JSON.stringify(computed(spec.json)));
  if ('genuineToken' in spec) return utf8.encode(fx.genuine);
  return bytesOf(spec);
}

async function webCryptoSign(key: CryptoKey, input: Uint8Array): Promise<Uint8Array> {
  const name = key.algorithm.name;
  const algorithm = name === 'ECDSA' ? { name, hash: 'SHA-256' } : { name };
  return new Uint8Array(await crypto.subtle.sign(algorithm, key, input));
}

async function hmac(secret: Uint8Array, alg: unknown, input: Uint8Array): Promise<Uint8Array> {
  const hash = alg === 'HS384' ? 'SHA-384' : alg === 'HS512' ? 'SHA-512' : 'SHA-256';
  const key = await crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', key, input));
}

async function signature(sign: TokenCase['sign'], headerBytes: Uint8Array, input: Uint8Array): Promise<string> {
  if (sign === undefined) throw new Error('corpus: a recipe needs "sign"');
  if (typeof sign !== 'string') return base64url.encode(hexBytes(sign.hex));
  let alg: unknown;
  try {
    alg = (JSON.parse(new TextDecoder().decode(headerBytes)) as { alg?: unknown }).alg;
  } catch {
    alg = undefined;
  }
  const signers: Record<string, () => Promise<Uint8Array> | Uint8Array> = {
    'real-key': () => webCryptoSign(fx.realKey, input),
    'attacker-ed25519': () => webCryptoSign(fx.attacker.ed25519, input),
    'attacker-p256': () => webCryptoSign(fx.attacker.p256, input),
    'attacker-rsa': () => webCryptoSign(fx.attacker.rsa, input),
    none: () => new Uint8Array(0),
    'zero-ecdsa': () => new Uint8Array(64),
    'hmac-with-public-x': () => hmac(fx.publicX, alg, input),
    'hmac-with-public-x-text': () => hmac(utf8.encode(fx.publicXText), alg, input),
    'hmac-with-jwks': () => hmac(utf8.encode(fx.jwksText), alg, input),
  };
  if (sign === 'genuine-signature') return fx.parts[2];
  const signer = signers[sign];
  if (!signer) throw new Error(`corpus: unknown signing instruction ${sign}`);
  return base64url.encode(await signer());
}

function toStandardBase64(segment: string): string {
  const standard = segment.replace(/-/g, '+').replace(/_/g, '/');
  return standard + '='.repeat((4 - (standard.length % 4)) % 4);
}

const TRANSFORMS: Record<string, (token: string) => string> = {
  'flip-signature-bit': (token) => {
    const [h, p, s] = token.split('.') as [string, string, string];
    const bytes = base64url.decode(s);
    bytes[10] = (bytes[10] as number) ^ 0x01;
    return `${h}.${p}.${base64url.encode(bytes)}`;
  },
  'truncate-signature': (token) => {
    const [h, p, s] = token.split('.') as [string, string, string];
    return `${h}.${p}.${base64url.encode(base64url.decode(s).slice(0, 32))}`;
  },
  'extend-signature': (token) => {
    const [h, p, s] = token.split('.') as [string, string, string];
    return `${h}.${p}.${base64url.encode(concat([base64url.decode(s), new Uint8Array([0])]))}`;
  },
  'noncanonical-signature': (token) => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    return `${token.slice(0, -1)}${alphabet[alphabet.indexOf(token.slice(-1)) | 1]}`;
  },
  'standard-base64': (token) => token.split('.').map(toStandardBase64).join('.'),
  'drop-signature-segment': (token) => token.split('.').slice(0, 2).join('.'),
  'append-genuine-signature': (token) => `${token}${fx.parts[2]}`,
  'swap-signature-with-victim': (token) => `${token.split('.').slice(0, 2).join('.')}.${fx.victim.token.access_token.split('.')[2]}`,
};

/** The Authorization header a token case sends; null for none. */
async function authorizationOf(testCase: TokenCase): Promise<string | null> {
  if (testCase.authorization !== undefined) return testCase.authorization === null ? null : fill(testCase.authorization);
  let token: string;
  if (testCase.raw !== undefined) {
    token = fill(testCase.raw).repeat(testCase.repeat ?? 1);
  } else {
    const headerBytes = partBytes(testCase.header, fx.header);
    const payloadBytes = partBytes(testCase.payload, fx.claims);
    const input = `${base64url.encode(headerBytes)}.${base64url.encode(payloadBytes)}`;
    token = `${input}.${await signature(testCase.sign, headerBytes, utf8.encode(input))}`;
  }
  if (testCase.transform !== undefined) {
    const transform = TRANSFORMS[testCase.transform];
    if (!transform) throw new Error(`corpus: unknown transform ${testCase.transform}`);
    token = transform(token);
  }
  return `Bearer ${token}`;
}

// ---------------------------------------------------------------------------------------------
// Routes and answers

interface Route {
  name: string;
  send: (headers: Record<string, string>) => Promise<Response>;
}

const TOKEN_ROUTES: Route[] = [
  { name: 'GET /api/me', send: (headers) => call('/api/me', { headers }) },
  { name: 'GET /api/account', send: (headers) => call('/api/account', { headers }) },
  { name: 'POST /auth/renew', send: (headers) => call('/auth/renew', { method: 'POST', headers }) },
  { name: 'POST /auth/logout', send: (headers) => call('/auth/logout', { method: 'POST', headers }) },
  { name: 'POST /auth/logout-all', send: (headers) => call('/auth/logout-all', { method: 'POST', headers }) },
  {
    name: 'POST /auth/password',
    send: (headers) =>
      call('/auth/password', {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ current_password: 'not the password at all', new_password: 'an entirely new passphrase' }),
      }),
  },
  { name: 'GET /auth/sessions', send: (headers) => call('/auth/sessions', { headers }) },
  { name: 'DELETE /auth/sessions/:id', send: (headers) => call(`/auth/sessions/${fx.user.token.session_id}`, { method: 'DELETE', headers }) },
  { name: 'GET /auth/events', send: (headers) => call('/auth/events', { headers }) },
  { name: 'POST /auth/email/resend', send: (headers) => call('/auth/email/resend', { method: 'POST', headers }) },
  { name: 'GET /auth/passkeys', send: (headers) => call('/auth/passkeys', { headers }) },
  {
    name: 'POST /auth/passkeys/register/options',
    send: (headers) => call('/auth/passkeys/register/options', { method: 'POST', headers }),
  },
  {
    name: 'POST /auth/passkeys/register',
    send: (headers) =>
      call('/auth/passkeys/register', {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ response: { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: {} } }),
      }),
  },
  { name: 'DELETE /auth/passkeys/:id', send: (headers) => call('/auth/passkeys/AAAA', { method: 'DELETE', headers }) },
  {
    name: 'DELETE /auth/account',
    send: (headers) =>
      call('/auth/account', {
        method: 'DELETE',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ password: 'not the password at all' }),
      }),
  },
];

/** The origin the test configuration allows (wrangler.toml's ALLOWED_ORIGINS). */
const ALLOWED_ORIGIN = 'http://localhost:8787';

/** Every admin route reads its own bearer secret: a user's token, forged or not, is never it. */
const ADMIN_ROUTES: Route[] = [
  {
    name: 'POST /admin/users/:id/revoke',
    send: (headers) => call(`/admin/users/${fx.user.id}/revoke`, { method: 'POST', headers }),
  },
  {
    name: 'POST /admin/users/:id/unlock',
    send: (headers) => call(`/admin/users/${fx.user.id}/unlock`, { method: 'POST', headers }),
  },
  { name: 'GET /admin/users/:id', send: (headers) => call(`/admin/users/${fx.user.id}`, { headers }) },
  { name: 'GET /admin/users?email=', send: (headers) => call(`/admin/users?email=${encodeURIComponent(fx.user.email)}`, { headers }) },
];

const TOKEN_FAULTS = new Set(['invalid_token', 'token_expired', 'session_inactive', 'session_revoked', 'session_expired', 'token_reused']);

/** The answer, compared as one object so a mismatch shows everything at once. */
async function observed(response: Response): Promise<Record<string, unknown>> {
  const text = await response.text();
  let body: Record<string, unknown> | undefined;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = undefined;
  }
  return {
    status: response.status,
    code: body?.code,
    problem: response.status >= 400 ? response.headers.get('content-type') : 'n/a',
    bodyStatus: response.status >= 400 ? body?.status : 'n/a',
    challenge: response.headers.get('www-authenticate'),
  };
}

function wanted(expectation: Expectation): Record<string, unknown> {
  const { status, code } = expectation;
  const challenge =
    code === 'missing_token'
      ? 'Bearer'
      : code !== undefined && TOKEN_FAULTS.has(code)
        ? expect.stringMatching(/^Bearer error="invalid_token"/)
        : code === 'unauthorized'
          ? expect.stringMatching(/^Bearer/)
          : null;
  return {
    status,
    code,
    problem: status >= 400 ? 'application/problem+json' : 'n/a',
    bodyStatus: status >= 400 ? status : 'n/a',
    challenge,
  };
}

function expectationFor(testCase: { expect?: Expectation; expectByRoute?: Record<string, Expectation> }, route: string, fallback: Expectation): Expectation {
  return testCase.expectByRoute?.[route] ?? testCase.expect ?? fallback;
}

// ---------------------------------------------------------------------------------------------
// Request bodies

const BODY_ROUTES: Record<string, { path: string; method?: string; token: () => string | undefined }> = {
  register: { path: '/auth/register', token: () => undefined },
  login: { path: '/auth/login', token: () => undefined },
  password: { path: '/auth/password', token: () => fx.requester.token.access_token },
  forgot: { path: '/auth/password/forgot', token: () => undefined },
  reset: { path: '/auth/password/reset', token: () => undefined },
  verify: { path: '/auth/email/verify', token: () => undefined },
  'passkey-register': { path: '/auth/passkeys/register', token: () => fx.requester.token.access_token },
  'passkey-login': { path: '/auth/passkeys/login', token: () => undefined },
  account: { path: '/auth/account', method: 'DELETE', token: () => fx.requester.token.access_token },
};

let address = 0;
/** A fresh client network (/64) per request: the corpus's failed logins must not lock each other out. */
function nextAddress(): string {
  address += 1;
  return `2001:db8:${address.toString(16)}::1`;
}

function requestBody(spec: RequestCase['body']): BodyInit {
  if ('json' in spec) return JSON.stringify(computed(spec.json));
  if ('repeat' in spec) {
    const { prefix = '', text, times, suffix = '' } = spec.repeat;
    return fill(prefix) + text.repeat(times) + fill(suffix);
  }
  if ('stream' in spec) {
    const chunk = utf8.encode(spec.stream.chunk);
    const count = spec.stream.count;
    return new ReadableStream({
      start(controller) {
        for (let i = 0; i < count; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
  }
  return bytesOf(spec);
}

// ---------------------------------------------------------------------------------------------

describe('Security: the attack corpus', () => {
  beforeAll(async () => {
    fx = await setUp();
  }, 30_000);

  it('holds at least 60 token cases and 30 request cases, uniquely named, each with an API.md answer', () => {
    expect(tokenCases.length).toBeGreaterThanOrEqual(60);
    expect(requestCases.length).toBeGreaterThanOrEqual(30);
    for (const list of [tokenCases, requestCases] as Array<Array<{ name: string; expect?: Expectation; expectByRoute?: Record<string, Expectation> }>>) {
      expect(new Set(list.map((c) => c.name)).size).toBe(list.length);
      for (const c of list) {
        for (const e of [c.expect, ...Object.values(c.expectByRoute ?? {})]) {
          if (e?.code !== undefined) expect(API_CODES.has(e.code), `${c.name}: ${e.code}`).toBe(true);
        }
      }
    }
    const routeNames = new Set([...TOKEN_ROUTES.map((route) => route.name), ...Object.keys(BODY_ROUTES)]);
    for (const c of [...tokenCases, ...requestCases]) {
      for (const route of Object.keys(c.expectByRoute ?? {})) expect(routeNames.has(route), `${c.name}: ${route}`).toBe(true);
    }
  });

  it('control: the unchanged recipe signed by the real key is the genuine token, byte for byte', async () => {
    // Ed25519 is deterministic, so this proves "real-key" recipes carry a genuine signature and
    // their one flaw is the only reason they are refused.
    const control: TokenCase = { name: 'control', header: { merge: {} }, payload: { merge: {} }, sign: 'real-key' };
    expect(await authorizationOf(control)).toBe(`Bearer ${fx.genuine}`);
    expect((await call('/api/me', { token: fx.genuine })).status).toBe(200);
  });

  it('materializes every token case into a distinct credential, none of them the genuine one', async () => {
    const values = await Promise.all(tokenCases.map(authorizationOf));
    expect(values).not.toContain(`Bearer ${fx.genuine}`);
    const seenBy = new Map<string, string>();
    for (const [index, value] of values.entries()) {
      if (value === null || !value.startsWith('Bearer ')) continue;
      const name = (tokenCases[index] as TokenCase).name;
      expect(seenBy.get(value), `${name} repeats another case`).toBeUndefined();
      seenBy.set(value, name);
    }
  });

  describe('tokens, on every route that reads one, as a bearer header and as the cookie', () => {
    it.each(tokenCases)('$name', async (testCase) => {
      const authorization = await authorizationOf(testCase);
      const headers: Record<string, string> = authorization === null ? {} : { authorization };
      const got: Record<string, unknown> = {};
      const want: Record<string, unknown> = {};
      for (const route of TOKEN_ROUTES) {
        got[route.name] = await observed(await route.send(headers));
        want[route.name] = wanted(expectationFor(testCase, route.name, { status: 401, code: 'invalid_token' }));
      }
      for (const route of ADMIN_ROUTES) {
        got[route.name] = await observed(await route.send(headers));
        want[route.name] = wanted({ status: 401, code: 'unauthorized' });
      }
      // Cookie mode: every route that takes a bearer token takes the cookie too, and must judge
      // the same token the same way (from an allowed Origin, so the CSRF check is not what answers).
      if (authorization?.startsWith('Bearer ')) {
        const cookie = { cookie: `latchkey_at=${authorization.slice('Bearer '.length)}`, origin: ALLOWED_ORIGIN };
        for (const route of TOKEN_ROUTES) {
          got[`${route.name} (cookie)`] = await observed(await route.send(cookie));
          want[`${route.name} (cookie)`] = testCase.cookieExpect ? wanted(testCase.cookieExpect) : want[route.name];
        }
      }
      expect(got).toEqual(want);
    });
  });

  describe('request bodies, on every route that reads one', () => {
    it.each(requestCases)('$name', async (testCase) => {
      const got: Record<string, unknown> = {};
      const want: Record<string, unknown> = {};
      for (const name of testCase.routes) {
        const route = BODY_ROUTES[name];
        if (!route) throw new Error(`corpus: unknown body route ${name}`);
        const headers: Record<string, string> = { ...testCase.headers, 'cf-connecting-ip': nextAddress() };
        const contentType = testCase.contentType === undefined ? 'application/json' : testCase.contentType;
        if (contentType !== null) headers['content-type'] = contentType;
        const token = route.token();
        if (token !== undefined) headers.authorization = `Bearer ${token}`;
        const body = requestBody(testCase.body);
        const init: RequestInit & { duplex?: string } = { method: route.method ?? 'POST', headers, body };
        if (body instanceof ReadableStream) init.duplex = 'half';
        got[name] = await observed(await call(route.path, init));
        const expectation = expectationFor(testCase, name, { status: 400, code: 'invalid_request' });
        want[name] = wanted(expectation);
      }
      expect(got).toEqual(want);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  });

  it('changed nothing: the genuine session renews once, normally, and logged nothing but its login', async () => {
    const response = await renew(fx.genuine);
    expect(response.status, await response.clone().text()).toBe(200);
    const next = (await response.json()) as TokenBody;
    expect(claimsOf(next.access_token)).toMatchObject({ sid: fx.user.token.session_id, gen: (fx.claims.gen as number) + 1 });
    expect((await eventsOf(next.access_token)).map((event) => event.type)).toEqual(['login']);
    expect((await eventsOf(fx.victim.token.access_token)).map((event) => event.type)).toEqual(['login']);
    // The request cases never changed the requester's password, and its session is still live.
    expect((await call('/api/account', { token: fx.requester.token.access_token })).status).toBe(200);
    expect((await login(fx.requester.email, fx.requester.password)).session_id).toBeTruthy();
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  });
});
