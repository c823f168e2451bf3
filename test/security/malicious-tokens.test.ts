/**
 * Security: malicious and malformed access tokens.
 *
 * Every token below is built at runtime from a genuine token of a signed-in user, and differs from
 * it in exactly one way (an algorithm, a key, a header parameter, a claim, the encoding). Tokens
 * whose flaw is in the claims or the header are signed with the service's real private key (the
 * first key of SIGNING_KEYS), so the flaw is the only thing wrong with them. Each one is presented
 * to a stateless route, a strict route, renewal and logout: every answer must be a 401
 * `invalid_token` problem document with the RFC 6750 challenge, and nothing may change.
 */
import { env } from 'cloudflare:workers';
import { base64url, CompactSign, type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { call, claimsOf, eventsOf, login, renew, signedInUser, type TokenBody } from '../support/helpers';

// ---------------------------------------------------------------------------------------------
// Building tokens

type Json = Record<string, unknown>;

/**
 * Who signs. A key (CryptoKey, or bytes for an HMAC secret) signs through jose's `CompactSign`;
 * a function gets the JWS signing input (`header.payload`, ASCII) and returns the raw signature
 * bytes, for what jose refuses to produce (`alg: none`, an all-zero ECDSA signature, a header that
 * is not valid UTF-8).
 */
type Signer = CryptoKey | Uint8Array | ((signingInput: Uint8Array) => Uint8Array | Promise<Uint8Array>);

const utf8 = new TextEncoder();

/** A header or payload as it goes on the wire: an object/array is JSON, a string is its UTF-8, bytes are bytes. */
function bytesOf(part: Json | unknown[] | string | Uint8Array): Uint8Array {
  if (part instanceof Uint8Array) return part;
  return utf8.encode(typeof part === 'string' ? part : JSON.stringify(part));
}

/** Builds a compact JWS `header.payload.signature` from (header, payload, signer). */
async function forge(
  header: Json | Uint8Array,
  payload: Json | unknown[] | string | Uint8Array,
  signer: Signer,
): Promise<string> {
  const payloadBytes = bytesOf(payload);
  if (typeof signer === 'function' || header instanceof Uint8Array) {
    const signingInput = `${base64url.encode(bytesOf(header))}.${base64url.encode(payloadBytes)}`;
    const sign = typeof signer === 'function' ? signer : webCryptoSigner(signer as CryptoKey);
    return `${signingInput}.${base64url.encode(await sign(utf8.encode(signingInput)))}`;
  }
  // jose refuses to sign a `crit` it does not know unless told the parameter is understood.
  const crit = Array.isArray(header.crit) ? Object.fromEntries(header.crit.map((name) => [String(name), true])) : undefined;
  return new CompactSign(payloadBytes).setProtectedHeader(header as { alg: string }).sign(signer, { crit });
}

/** Raw WebCrypto signing with an Ed25519 or P-256 private key (JWS raw `r || s` for ECDSA). */
function webCryptoSigner(key: CryptoKey): (input: Uint8Array) => Promise<Uint8Array> {
  const algorithm = key.algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: key.algorithm.name };
  return async (input) => new Uint8Array(await crypto.subtle.sign(algorithm, key, input));
}

/** `alg: none` and friends: no signature at all. */
const unsigned: Signer = () => new Uint8Array(0);

/** An ECDSA P-256 signature with r = s = 0 ("psychic signatures", CVE-2022-21449). */
const zeroEcdsaSignature: Signer = () => new Uint8Array(64);

function segments(token: string): [string, string, string] {
  const [header = '', payload = '', signature = ''] = token.split('.');
  return [header, payload, signature];
}

function decodeSegment(segment: string): Json {
  return JSON.parse(new TextDecoder().decode(base64url.decode(segment))) as Json;
}

/** base64url to standard base64 with `=` padding (the alphabet JWS forbids). */
function toStandardBase64(segment: string): string {
  const standard = segment.replace(/-/g, '+').replace(/_/g, '/');
  return standard + '='.repeat((4 - (standard.length % 4)) % 4);
}

// ---------------------------------------------------------------------------------------------
// The fixture: a genuine token, the real signing key, and an attacker's keys

interface Fixture {
  /** The user whose genuine token every case starts from. */
  user: { id: string; email: string; token: TokenBody };
  /** Another user, whose id the "sub changed" case steals. */
  victim: { id: string; token: TokenBody };
  /** The genuine access token, its segments, its decoded header and claims. */
  genuine: string;
  parts: [string, string, string];
  header: Json;
  claims: Json;
  /** The real private key (first key of SIGNING_KEYS) and the kids of both configured keys. */
  realKey: CryptoKey;
  kid: string;
  otherKid: string;
  /** The real public key's `x`, as bytes and as its base64url text. */
  publicX: Uint8Array;
  publicXText: string;
  /** An attacker's own Ed25519 key pair (public half as a JWK) and P-256 private key. */
  attackerEd25519: CryptoKey;
  attackerJwk: JWK;
  attackerP256: CryptoKey;
}

let fx: Fixture;

async function setUpFixture(): Promise<Fixture> {
  const user = await signedInUser('malicious-tokens');
  const victim = await signedInUser('malicious-tokens-victim');
  const { keys } = JSON.parse(env.SIGNING_KEYS) as { keys: Array<JWK & { kid: string; x: string }> };
  const [k0, k1] = keys as [JWK & { kid: string; x: string }, JWK & { kid: string; x: string }];
  const attacker = await generateKeyPair('EdDSA', { extractable: true });
  const p256 = await generateKeyPair('ES256');
  const genuine = user.token.access_token;
  const parts = segments(genuine);
  return {
    user: { id: user.id, email: user.email, token: user.token },
    victim: { id: victim.id, token: victim.token },
    genuine,
    parts,
    header: decodeSegment(parts[0]),
    claims: decodeSegment(parts[1]),
    realKey: (await importJWK(k0, 'EdDSA')) as CryptoKey,
    kid: k0.kid,
    otherKid: k1.kid,
    publicX: base64url.decode(k0.x),
    publicXText: k0.x,
    attackerEd25519: attacker.privateKey,
    attackerJwk: await exportJWK(attacker.publicKey),
    attackerP256: p256.privateKey,
  };
}

/** The genuine header, with changes (`undefined` removes a parameter). */
function headerWith(changes: Json): Json {
  const header = { ...fx.header, ...changes };
  for (const [name, value] of Object.entries(changes)) if (value === undefined) delete header[name];
  return header;
}

/** The genuine claims, with changes (`undefined` removes a claim). */
function claimsWith(changes: Json): Json {
  const claims = { ...fx.claims, ...changes };
  for (const [name, value] of Object.entries(changes)) if (value === undefined) delete claims[name];
  return claims;
}

/** Genuine claims with `changes`, signed by the real key under the genuine header. */
function realKeySigned(changes: Json): Promise<string> {
  return forge(fx.header, claimsWith(changes), fx.realKey);
}

/** The genuine header and signature around a replaced payload (no re-signing). */
function withOriginalSignature(claims: Json): string {
  return `${fx.parts[0]}.${base64url.encode(JSON.stringify(claims))}.${fx.parts[2]}`;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

// ---------------------------------------------------------------------------------------------
// The cases

interface Case {
  name: string;
  token: () => Promise<string>;
}

const cases: Case[] = [
  // Algorithm confusion and foreign keys.
  {
    name: 'alg none, empty signature segment (h.p.)',
    token: () => forge(headerWith({ alg: 'none' }), fx.claims, unsigned),
  },
  {
    name: 'alg none, no signature segment at all (h.p)',
    token: async () => (await forge(headerWith({ alg: 'none' }), fx.claims, unsigned)).replace(/\.$/, ''),
  },
  {
    name: 'alg none, keeping the genuine signature segment',
    token: async () => `${(await forge(headerWith({ alg: 'none' }), fx.claims, unsigned))}${fx.parts[2]}`,
  },
  {
    name: 'alg "None" (case variant), empty signature',
    token: () => forge(headerWith({ alg: 'None' }), fx.claims, unsigned),
  },
  {
    name: 'HS256 with the public key bytes (x) as HMAC secret',
    token: () => forge(headerWith({ alg: 'HS256' }), fx.claims, fx.publicX),
  },
  {
    name: 'HS256 with the public key text (base64url x) as HMAC secret',
    token: () => forge(headerWith({ alg: 'HS256' }), fx.claims, utf8.encode(fx.publicXText)),
  },
  {
    name: 'EdDSA signed by a different Ed25519 key under the real kid',
    token: () => forge(fx.header, fx.claims, fx.attackerEd25519),
  },
  {
    name: 'ES256 signed by a fresh P-256 key under the real kid',
    token: () => forge(headerWith({ alg: 'ES256' }), fx.claims, fx.attackerP256),
  },
  {
    name: 'ES256 with an r = s = 0 signature (64 zero bytes)',
    token: () => forge(headerWith({ alg: 'ES256' }), fx.claims, zeroEcdsaSignature),
  },
  {
    name: 'signed by the real signing key but naming the other configured kid',
    token: () => forge(headerWith({ kid: fx.otherKid }), fx.claims, fx.realKey),
  },
  {
    name: 'genuine token with one bit of the signature flipped',
    token: async () => {
      const signature = base64url.decode(fx.parts[2]);
      signature[10] = (signature[10] as number) ^ 0x01;
      return `${fx.parts[0]}.${fx.parts[1]}.${base64url.encode(signature)}`;
    },
  },

  // Header parameters.
  { name: 'unknown kid', token: () => forge(headerWith({ kid: 'no-such-key' }), fx.claims, fx.realKey) },
  { name: 'missing kid', token: () => forge(headerWith({ kid: undefined }), fx.claims, fx.realKey) },
  { name: 'kid as a number', token: () => forge(headerWith({ kid: 12345 }), fx.claims, fx.realKey) },
  { name: 'typ JWT', token: () => forge(headerWith({ typ: 'JWT' }), fx.claims, fx.realKey) },
  { name: 'missing typ', token: () => forge(headerWith({ typ: undefined }), fx.claims, fx.realKey) },
  {
    name: 'jku header pointing at an attacker JWKS, signed by the attacker key',
    token: () =>
      forge(headerWith({ jku: 'https://attacker.example/.well-known/jwks.json' }), fx.claims, fx.attackerEd25519),
  },
  {
    name: "jwk header embedding the attacker's public key, signed by the attacker key",
    token: () => forge(headerWith({ jwk: fx.attackerJwk }), fx.claims, fx.attackerEd25519),
  },
  {
    name: 'crit header naming an unknown parameter (real key)',
    token: () =>
      forge(headerWith({ crit: ['urn:attacker:must-understand'], 'urn:attacker:must-understand': true }), fx.claims, fx.realKey),
  },
  {
    name: 'header that is not valid UTF-8 (real key)',
    token: () => {
      const json = JSON.stringify(headerWith({ note: '@@' }));
      const [before, after] = json.split('@@') as [string, string];
      const header = new Uint8Array([...utf8.encode(before), 0xff, 0xfe, 0xc3, ...utf8.encode(after)]);
      return forge(header, fx.claims, webCryptoSigner(fx.realKey));
    },
  },
  {
    name: 'nested JWT: the genuine token as payload of an attacker-signed JWS with cty JWT',
    token: () => forge(headerWith({ cty: 'JWT' }), fx.genuine, fx.attackerEd25519),
  },

  // Payload tampered after signing (the genuine header and signature kept).
  { name: 'tampered payload: gen changed, original signature', token: async () => withOriginalSignature(claimsWith({ gen: (fx.claims.gen as number) + 1 })) },
  { name: "tampered payload: sub changed to another user's id, original signature", token: async () => withOriginalSignature(claimsWith({ sub: fx.victim.id })) },
  { name: "tampered payload: sid changed to another user's session, original signature", token: async () => withOriginalSignature(claimsWith({ sid: fx.victim.token.session_id })) },

  // Claims, signed by the real key.
  { name: 'wrong iss', token: () => realKeySigned({ iss: 'https://attacker.example' }) },
  { name: 'wrong aud', token: () => realKeySigned({ aud: 'some-other-service' }) },
  { name: 'aud as an array holding the right audience', token: () => realKeySigned({ aud: [fx.claims.aud] }) },
  { name: 'missing sub', token: () => realKeySigned({ sub: undefined }) },
  { name: 'missing sid', token: () => realKeySigned({ sid: undefined }) },
  { name: 'missing gen', token: () => realKeySigned({ gen: undefined }) },
  { name: 'missing jti', token: () => realKeySigned({ jti: undefined }) },
  { name: 'gen as a string', token: () => realKeySigned({ gen: String(fx.claims.gen) }) },
  { name: 'gen 0', token: () => realKeySigned({ gen: 0 }) },
  { name: 'gen negative', token: () => realKeySigned({ gen: -1 }) },
  { name: 'gen 1.5', token: () => realKeySigned({ gen: 1.5 }) },
  { name: 'iat as a string', token: () => realKeySigned({ iat: String(fx.claims.iat) }) },
  {
    name: 'iat an hour in the future (exp = iat + TTL)',
    token: () => {
      const iat = nowSeconds() + 3600;
      return realKeySigned({ iat, exp: iat + ((fx.claims.exp as number) - (fx.claims.iat as number)) });
    },
  },
  // exp one second before iat: within the 5 s leeway, so the token is not "expired".
  { name: 'exp before iat', token: () => realKeySigned({ exp: (fx.claims.iat as number) - 1 }) },
  { name: 'payload that is not JSON (real key)', token: () => forge(fx.header, 'this is not json', fx.realKey) },
  { name: 'payload that is a JSON array (real key)', token: () => forge(fx.header, [fx.claims], fx.realKey) },
  { name: 'empty payload, validly signed (h..s)', token: () => forge(fx.header, '', fx.realKey) },
  { name: 'oversized token (> 8 KB), otherwise valid (real key)', token: () => realKeySigned({ pad: 'A'.repeat(9000) }) },

  // Compact serialization.
  { name: 'two segments (genuine header.payload)', token: async () => `${fx.parts[0]}.${fx.parts[1]}` },
  { name: 'four segments (genuine token plus another signature)', token: async () => `${fx.genuine}.${fx.parts[2]}` },
  { name: 'empty segments (..)', token: async () => '..' },
  { name: 'genuine header and signature, empty payload segment', token: async () => `${fx.parts[0]}..${fx.parts[2]}` },
  {
    name: 'standard base64 (+ / =) instead of base64url',
    token: async () => fx.parts.map(toStandardBase64).join('.'),
  },
  { name: 'non-base64url character (*) in the payload segment', token: async () => `${fx.parts[0]}.${fx.parts[1]}*.${fx.parts[2]}` },
  { name: 'whitespace inside the payload segment', token: async () => `${fx.parts[0]}.${fx.parts[1].slice(0, 8)} ${fx.parts[1].slice(8)}.${fx.parts[2]}` },
];

/** Each case's token is built once, so every route sees the very same bytes. */
const built = new Map<Case, Promise<string>>();
function tokenOf(testCase: Case): Promise<string> {
  let token = built.get(testCase);
  if (!token) {
    token = testCase.token();
    built.set(testCase, token);
  }
  return token;
}

// ---------------------------------------------------------------------------------------------
// The routes and the expected answer

const routes = [
  { name: 'GET /api/me', send: (token: string) => call('/api/me', { token }) },
  { name: 'GET /api/account', send: (token: string) => call('/api/account', { token }) },
  { name: 'POST /auth/renew', send: (token: string) => renew(token) },
  { name: 'POST /auth/logout', send: (token: string) => call('/auth/logout', { method: 'POST', token }) },
];

/** 401 problem document, code `invalid_token`, RFC 6750 challenge; the body is in the message on failure. */
async function expectInvalidToken(response: Response, label: string): Promise<void> {
  const text = await response.text();
  let body: Json | undefined;
  try {
    body = JSON.parse(text) as Json;
  } catch {
    body = undefined;
  }
  expect(
    {
      status: response.status,
      contentType: response.headers.get('content-type'),
      challenge: response.headers.get('www-authenticate'),
      bodyStatus: body?.status,
      code: body?.code,
    },
    `${label} answered ${response.status}: ${text}`,
  ).toEqual({
    status: 401,
    contentType: 'application/problem+json',
    challenge: expect.stringMatching(/^Bearer error="invalid_token"/),
    bodyStatus: 401,
    code: 'invalid_token',
  });
}

// ---------------------------------------------------------------------------------------------

describe('Security: malicious tokens', () => {
  beforeAll(async () => {
    fx = await setUpFixture();
  }, 30_000);

  it(`has at least 24 cases, all distinct from the genuine token and from each other`, async () => {
    expect(cases.length).toBeGreaterThanOrEqual(24);
    const tokens = await Promise.all(cases.map(tokenOf));
    for (const token of tokens) expect(token).not.toBe(fx.genuine);
    expect(new Set(tokens).size).toBe(tokens.length);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  describe('control: the genuine token', () => {
    it('is reproduced byte for byte by forge() with the real key (Ed25519 is deterministic)', async () => {
      expect(fx.header).toEqual({ alg: 'EdDSA', kid: fx.kid, typ: 'at+jwt' });
      expect(await forge(fx.header, fx.claims, fx.realKey)).toBe(fx.genuine);
      expect(await realKeySigned({})).toBe(fx.genuine);
    });

    it('passes GET /api/me', async () => {
      const response = await call('/api/me', { token: fx.genuine });
      expect(response.status, await response.clone().text()).toBe(200);
      expect(await response.json()).toMatchObject({ user_id: fx.user.id, session_id: fx.user.token.session_id });
    });

    it('passes GET /api/account', async () => {
      const response = await call('/api/account', { token: fx.genuine });
      expect(response.status, await response.clone().text()).toBe(200);
      expect(await response.json()).toMatchObject({ user_id: fx.user.id, session_id: fx.user.token.session_id });
    });

    it('passes POST /auth/renew and POST /auth/logout (a sibling session of the same user, its token rebuilt by forge())', async () => {
      // Renewing or logging out the genuine session here would change it; the final check renews it.
      const sibling = await login(fx.user.email, undefined, 'malicious-tokens-sibling');
      const [header, payload] = segments(sibling.access_token);
      const rebuilt = await forge(decodeSegment(header), decodeSegment(payload), fx.realKey);
      expect(rebuilt).toBe(sibling.access_token);
      const renewed = await renew(rebuilt);
      expect(renewed.status, await renewed.clone().text()).toBe(200);
      const next = (await renewed.json()) as TokenBody;
      expect(next.session_id).toBe(sibling.session_id);
      const out = await call('/auth/logout', { method: 'POST', token: next.access_token });
      expect(out.status, await out.clone().text()).toBe(204);
    });
  });

  describe.each(routes)('$name', (route) => {
    it.each(cases)('refuses: $name', async (testCase) => {
      const token = await tokenOf(testCase);
      await expectInvalidToken(await route.send(token), `${route.name} with "${testCase.name}"`);
    });
  });

  it('changed nothing: the genuine session renews, exactly once and normally, after all the cases', async () => {
    const gen = fx.claims.gen as number;
    const response = await renew(fx.genuine);
    expect(response.status, await response.clone().text()).toBe(200);
    const next = (await response.json()) as TokenBody;
    expect(next.session_id).toBe(fx.user.token.session_id);
    const claims = claimsOf(next.access_token);
    expect(claims).toMatchObject({ sub: fx.user.id, sid: fx.user.token.session_id, gen: gen + 1 });
    expect(claims.jti).not.toBe(fx.claims.jti);
    // No case logged anything: the genuine session's only event is its login, and neither user saw
    // a reuse or a generation mismatch. (The user's other events are the sibling session's.)
    const events = await eventsOf(next.access_token);
    expect(events.filter((event) => event.session_id === fx.user.token.session_id).map((event) => event.type)).toEqual(['login']);
    expect(events.map((event) => event.type).sort()).toEqual(['login', 'login', 'logout']);
    expect((await eventsOf(fx.victim.token.access_token)).map((event) => event.type)).toEqual(['login']);
  });
});
