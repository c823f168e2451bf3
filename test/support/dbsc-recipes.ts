/**
 * Materializes the DBSC proof cases of dbsc-proofs.json into requests and the state they meet:
 * the `Secure-Session-Response` header(s), the key registered for the session (on refresh), and
 * the session's live challenges. Runtime-neutral (WebCrypto and jose only).
 *
 * A recipe starts from a valid proof for the case's use and key (header `typ: dbsc+jwt`, the
 * key's `alg`, its public `jwk` on registration; claims `jti` = the case's challenge), applies the
 * case's changes, signs as the case says (by default with the session's key, so the change is the
 * only thing wrong), and transforms the finished proof if asked.
 */
import { base64url, decodeProtectedHeader, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { DbscAlgorithm } from '../../src/dbsc/algorithms';
import { challengeLifetimeMs, type DbscChallenge, newChallenge } from '../../src/dbsc/challenges';
import { DBSC_HEADERS, DBSC_REFRESH_PATH, DBSC_REGISTRATION_PATH } from '../../src/dbsc/headers';
import { type DbscPublicKey, publicDbscJwk } from '../../src/dbsc/proof';
import corpusText from '../security/dbsc-proofs.json?raw';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Changes = { merge: Record<string, Json> };

export type ChallengeState = 'live' | 'used' | 'expired' | 'ahead-last-moment' | 'other-session' | 'never-issued';

export interface DbscProofCase {
  name: string;
  why?: string;
  use: 'registration' | 'refresh';
  /** The session's key: what registers, or what was registered. Default p256. */
  key?: 'p256' | 'rsa';
  /** null: no header. Default: the recipe's proof, bare. */
  response?: null | { raw: string } | { twice: true } | { quoted: true; suffix?: string };
  /** The challenge the proof signs. Default live. */
  challenge?: ChallengeState;
  /** A proof Chromium sent, used as it is (with its own key and challenge). */
  recorded?: 'registration' | 'refresh';
  header?: Changes;
  claims?: Changes;
  claimsText?: string;
  sign?: string;
  transform?: string;
  /** The proof is accepted once first, and the case is its second use. */
  replay?: boolean;
  /** The refusal reason (refused cases only). */
  expect?: string;
}

export const dbscCorpus = JSON.parse(corpusText) as {
  refused: DbscProofCase[];
  accepted: DbscProofCase[];
  recorded: { registration: string; refresh: string };
};

/** The session a case's request is for, and another session of the same user. */
export const SESSION_A = 'session-a';
export const SESSION_B = 'session-b';

const ORIGIN = 'https://latchkey.test';

interface Pair {
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export interface DbscKeys {
  p256: Pair;
  rsa: Pair;
  other: Pair;
  ed25519: Pair;
  p384: Pair;
  rsa1024: Pair;
  p256Private: JWK;
}

async function pair(alg: string, options: { modulusLength?: number } = {}): Promise<Pair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  return { privateKey, publicJwk: await exportJWK(publicKey) };
}

/** RSA below 2048 bits, which jose will not make: straight from WebCrypto. */
async function rsa1024(): Promise<Pair> {
  const { privateKey, publicKey } = (await crypto.subtle.generateKey(
    { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    true,
    ['sign', 'verify'],
  )) as CryptoKeyPair;
  return { privateKey, publicJwk: await exportJWK(publicKey) };
}

export async function makeDbscKeys(): Promise<DbscKeys> {
  const [p256, rsa, other, ed25519, p384, small] = await Promise.all([
    pair('ES256'),
    pair('RS256', { modulusLength: 2048 }),
    pair('ES256'),
    pair('EdDSA'),
    pair('ES384'),
    rsa1024(),
  ]);
  return { p256, rsa, other, ed25519, p384, rsa1024: small, p256Private: await exportJWK(p256.privateKey) };
}

/** What a case becomes: the request, and the state it meets. */
export interface MaterializedDbscCase {
  request: Request;
  /** The key registered for session A (refresh cases only). */
  registered: DbscPublicKey | undefined;
  /** The user's live challenges before the request. */
  live: DbscChallenge[];
  /** The challenge the proof signs, when it is one of `live`. */
  signed: DbscChallenge | undefined;
  nowMs: number;
  /** For `replay` cases: the same request again. */
  again: () => Request;
}

/** The registered form of a public JWK of `alg` (as the user's object keeps it). */
function registeredKey(alg: DbscAlgorithm, jwk: JWK): DbscPublicKey {
  const publicJwk = publicDbscJwk(jwk, alg);
  if (!publicJwk) throw new Error('dbsc corpus: not a registrable key');
  return { alg, jwk: publicJwk };
}

function challengesFor(state: ChallengeState, nowMs: number, ttlSeconds: number): { live: DbscChallenge[]; jti: string; signed?: DbscChallenge } {
  const immediate = challengeLifetimeMs('refresh', ttlSeconds);
  const ahead = challengeLifetimeMs('ahead', ttlSeconds);
  // One unrelated live challenge of each session, so that a refusal visibly leaves others alone.
  const bystanders = [newChallenge(SESSION_A, nowMs - 1000, ahead), newChallenge(SESSION_B, nowMs - 1000, ahead)];
  switch (state) {
    case 'live': {
      const signed = newChallenge(SESSION_A, nowMs - 200, immediate);
      return { live: [...bystanders, signed], jti: signed.value, signed };
    }
    case 'ahead-last-moment': {
      const signed = newChallenge(SESSION_A, nowMs - ahead + 1, ahead);
      return { live: [...bystanders, signed], jti: signed.value, signed };
    }
    case 'used':
      // Used up: deleted, so only its value is known, to whoever kept the proof.
      return { live: bystanders, jti: newChallenge(SESSION_A, nowMs - 2000, immediate).value };
    case 'expired': {
      const old = newChallenge(SESSION_A, nowMs - 61_000, immediate);
      return { live: [...bystanders, old], jti: old.value };
    }
    case 'other-session': {
      const theirs = newChallenge(SESSION_B, nowMs - 200, immediate);
      return { live: [...bystanders, theirs], jti: theirs.value };
    }
    case 'never-issued':
      return { live: bystanders, jti: newChallenge(SESSION_A, nowMs, immediate).value };
  }
}

async function computed(value: Json, keys: DbscKeys, nowSeconds: number): Promise<Json> {
  if (Array.isArray(value)) return Promise.all(value.map((item) => computed(item, keys, nowSeconds)));
  if (value === null || typeof value !== 'object') return value;
  if ('$now' in value) return nowSeconds + (value.$now as number);
  if ('$repeat' in value) {
    const [text, times] = value.$repeat as [string, number];
    return text.repeat(times);
  }
  if ('$padModulus' in value) {
    const n = base64url.decode(keys.rsa1024.publicJwk.n as string);
    const padded = new Uint8Array(value.$padModulus as number);
    padded.set(n, padded.length - n.length);
    return base64url.encode(padded);
  }
  if ('$jwk' in value) {
    const { $jwk: name, ...extra } = value;
    const jwks: Record<string, JWK> = {
      session: keys.p256.publicJwk,
      rsa: keys.rsa.publicJwk,
      other: keys.other.publicJwk,
      ed25519: keys.ed25519.publicJwk,
      p384: keys.p384.publicJwk,
      rsa1024: keys.rsa1024.publicJwk,
      'session-private': keys.p256Private,
      oct: { kty: 'oct', k: keys.p256.publicJwk.x as string },
    };
    const jwk = jwks[name as string];
    if (!jwk) throw new Error(`dbsc corpus: unknown key ${String(name)}`);
    const out: Record<string, Json> = { ...(jwk as Record<string, Json>) };
    for (const [key, inner] of Object.entries(extra)) out[key] = await computed(inner, keys, nowSeconds);
    return out;
  }
  const out: Record<string, Json> = {};
  for (const [key, inner] of Object.entries(value)) out[key] = await computed(inner, keys, nowSeconds);
  return out;
}

async function merged(base: Record<string, Json>, changes: Changes | undefined, compute: (value: Json) => Promise<Json>) {
  const out = { ...base };
  for (const [name, change] of Object.entries(changes?.merge ?? {})) {
    if (change === null) delete out[name];
    else out[name] = await compute(change);
  }
  return out;
}

const ECDSA = { name: 'ECDSA', hash: 'SHA-256' };
const PKCS1 = { name: 'RSASSA-PKCS1-v1_5' };

async function signWith(how: string, keys: DbscKeys, sessionKey: 'p256' | 'rsa', input: Uint8Array): Promise<Uint8Array> {
  const sign = async (algorithm: Parameters<SubtleCrypto['sign']>[0], key: CryptoKey) =>
    new Uint8Array(await crypto.subtle.sign(algorithm, key, input));
  switch (how) {
    case 'session-key':
      return sessionKey === 'rsa' ? sign(PKCS1, keys.rsa.privateKey) : sign(ECDSA, keys.p256.privateKey);
    case 'other-key':
      return sign(ECDSA, keys.other.privateKey);
    case 'rsa-key':
      return sign(PKCS1, keys.rsa.privateKey);
    case 'rsa1024-key':
      return sign(PKCS1, keys.rsa1024.privateKey);
    case 'ed25519-key':
      return sign({ name: 'Ed25519' }, keys.ed25519.privateKey);
    case 'p384-key':
      return sign({ name: 'ECDSA', hash: 'SHA-384' }, keys.p384.privateKey);
    case 'rsa-pss': {
      const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.rsa.privateKey);
      const pss = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSA-PSS', hash: 'SHA-256' }, false, ['sign']);
      return sign({ name: 'RSA-PSS', saltLength: 32 }, pss);
    }
    case 'none':
      return new Uint8Array(0);
    case 'zero-ecdsa':
      return new Uint8Array(64);
    case 'hmac-with-jwk-x': {
      const secret = base64url.decode(keys.p256.publicJwk.x as string);
      const key = await crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      return sign('HMAC', key);
    }
    default:
      throw new Error(`dbsc corpus: unknown signing instruction ${how}`);
  }
}

const TRANSFORMS: Record<string, (proof: string, other: string) => string> = {
  'drop-signature-segment': (proof) => proof.split('.').slice(0, 2).join('.'),
  'append-segment': (proof) => `${proof}.${proof.split('.')[2]}`,
  'pad-segments': (proof) => proof.split('.').map((segment) => `${segment}==`).join('.'),
  'garble-header': (proof) => `${base64url.encode('{"typ":"dbsc+jwt",')}.${proof.split('.').slice(1).join('.')}`,
  'flip-signature-bit': (proof) => {
    const [h, p, s] = proof.split('.') as [string, string, string];
    const bytes = base64url.decode(s);
    bytes[5] = (bytes[5] as number) ^ 0x01;
    return `${h}.${p}.${base64url.encode(bytes)}`;
  },
  'truncate-signature': (proof) => {
    const [h, p, s] = proof.split('.') as [string, string, string];
    return `${h}.${p}.${base64url.encode(base64url.decode(s).slice(0, 32))}`;
  },
  'swap-in-other-claims': (proof, other) => {
    const [h, , s] = proof.split('.') as [string, string, string];
    return `${h}.${other.split('.')[1]}.${s}`;
  },
};

const utf8 = new TextEncoder();

/** The `jti` of a compact JWS, read without verifying (for recorded proofs). */
function jtiOf(proof: string): string {
  return (JSON.parse(new TextDecoder().decode(base64url.decode(proof.split('.')[1] as string))) as { jti: string }).jti;
}

function requestWith(use: DbscProofCase['use'], values: string[]): Request {
  const headers = new Headers();
  if (use === 'refresh') headers.set(DBSC_HEADERS.sessionId, `${SESSION_A}`);
  for (const value of values) headers.append(DBSC_HEADERS.response, value);
  return new Request(`${ORIGIN}${use === 'refresh' ? DBSC_REFRESH_PATH : DBSC_REGISTRATION_PATH}`, { method: 'POST', headers });
}

/** The request a case describes, and the state it meets, at `nowMs` by the server's clock. */
export async function materialize(testCase: DbscProofCase, keys: DbscKeys, nowMs: number, ttlSeconds: number): Promise<MaterializedDbscCase> {
  const nowSeconds = Math.floor(nowMs / 1000);
  const sessionKey = testCase.key ?? 'p256';
  const alg: DbscAlgorithm = sessionKey === 'rsa' ? 'RS256' : 'ES256';
  let { live, jti, signed } = challengesFor(testCase.challenge ?? 'live', nowMs, ttlSeconds);
  let registered = testCase.use === 'refresh' ? registeredKey(alg, keys[sessionKey].publicJwk) : undefined;

  let proof: string;
  if (testCase.recorded !== undefined) {
    proof = dbscCorpus.recorded[testCase.recorded];
    const recordedKey = decodeProtectedHeader(dbscCorpus.recorded.registration).jwk as JWK;
    if (testCase.use === 'refresh') registered = registeredKey('ES256', recordedKey);
    signed = { value: jtiOf(proof), sessionId: SESSION_A, expiresAtMs: nowMs + 1000 };
    live = [...live, signed];
    jti = signed.value;
  } else {
    const compute = (value: Json) => computed(value, keys, nowSeconds);
    const baseHeader: Record<string, Json> = { alg, typ: 'dbsc+jwt' };
    if (testCase.use === 'registration') baseHeader.jwk = keys[sessionKey].publicJwk as Record<string, Json>;
    const header = await merged(baseHeader, testCase.header, compute);
    const claims = await merged({ jti }, testCase.claims, compute);
    const claimsBytes = utf8.encode(testCase.claimsText ?? JSON.stringify(claims));
    const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(claimsBytes)}`;
    const signature = await signWith(testCase.sign ?? 'session-key', keys, sessionKey, utf8.encode(input));
    proof = `${input}.${base64url.encode(signature)}`;
    if (testCase.transform !== undefined) {
      const transform = TRANSFORMS[testCase.transform];
      if (!transform) throw new Error(`dbsc corpus: unknown transform ${testCase.transform}`);
      const otherClaims = base64url.encode(JSON.stringify({ ...claims, jti: live[0]?.value ?? 'x' }));
      proof = transform(proof, `x.${otherClaims}.x`);
    }
  }

  const response = testCase.response;
  let values: string[];
  if (response === null) values = [];
  else if (response === undefined) values = [proof];
  else if ('raw' in response) values = [response.raw];
  else if ('twice' in response) values = [proof, proof];
  else values = [`"${proof}"${response.suffix ?? ''}`];

  return { request: requestWith(testCase.use, values), registered, live, signed, nowMs, again: () => requestWith(testCase.use, values) };
}
