/**
 * What the DPoP and DBSC proof corpora share (dpop-recipes.ts, dbsc-recipes.ts): a case's header
 * and claims are JSON with a few computed values, merged over those of a valid proof; the proof is
 * signed as the case says and transformed if asked. Runtime-neutral (WebCrypto and jose only).
 */
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Changes = { merge: Record<string, Json> };
type JsonObject = { [key: string]: Json };

/** What a case of either corpus may say about the proof it makes. */
export interface RecipeCase {
  name: string;
  why?: string;
  /** Members of the valid proof's header and claims replaced (null: removed). */
  header?: Changes;
  claims?: Changes;
  /** The claims segment as this exact text. */
  claimsText?: string;
  /** How it is signed (default: with the proof's own key); see `signAs`. */
  sign?: string;
  /** What is done to the finished proof; see `transformed`. */
  transform?: string;
  /** The proof is accepted once first, and the case is its second use. */
  replay?: boolean;
  /** The refusal reason (refused cases only). */
  expect?: string;
}

export interface KeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  /** The public key's RFC 7638 thumbprint. */
  jkt: string;
}

/** A pair's public JWK and thumbprint. */
export async function described(privateKey: CryptoKey, publicKey: CryptoKey): Promise<KeyPair> {
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk) };
}

/** An extractable key pair of jose's `alg`. */
export async function keyPair(alg: string, options: { modulusLength?: number } = {}): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  return described(privateKey, publicKey);
}

/** The keys both corpora name: the proof's own (`p256`), and the wrong ones. */
export interface CorpusKeys {
  p256: KeyPair;
  other: KeyPair;
  ed25519: KeyPair;
  rsa: KeyPair;
  p384: KeyPair;
  /** The private JWK of `p256`, for the case that leaks it. */
  p256Private: JWK;
}

export async function makeCorpusKeys(): Promise<CorpusKeys> {
  const [p256, other, ed25519, rsa, p384] = await Promise.all([
    keyPair('ES256'),
    keyPair('ES256'),
    keyPair('EdDSA'),
    keyPair('RS256', { modulusLength: 2048 }),
    keyPair('ES384'),
  ]);
  return { p256, other, ed25519, rsa, p384, p256Private: await exportJWK(p256.privateKey) };
}

/**
 * A case's value with its computed parts: `{ $now: s }` (seconds from now), `{ $repeat: [text, n] }`,
 * `{ $jwk: name, ...members }` (a key of `jwks` with members added or replaced), and whatever
 * `special` computes for its corpus (undefined: not its kind).
 */
export async function computed(
  value: Json,
  nowSeconds: number,
  jwks: Record<string, JWK>,
  corpus: string,
  special: (value: JsonObject) => Promise<Json> | undefined = () => undefined,
): Promise<Json> {
  const compute = (inner: Json) => computed(inner, nowSeconds, jwks, corpus, special);
  if (Array.isArray(value)) return Promise.all(value.map(compute));
  if (value === null || typeof value !== 'object') return value;
  if ('$now' in value) return nowSeconds + (value.$now as number);
  if ('$repeat' in value) {
    const [text, times] = value.$repeat as [string, number];
    return text.repeat(times);
  }
  if ('$jwk' in value) {
    const { $jwk: name, ...extra } = value;
    const jwk = jwks[name as string];
    if (!jwk) throw new Error(`${corpus} corpus: unknown key ${String(name)}`);
    const out: JsonObject = { ...(jwk as JsonObject) };
    for (const [key, inner] of Object.entries(extra)) out[key] = await compute(inner);
    return out;
  }
  const own = special(value);
  if (own !== undefined) return own;
  const out: JsonObject = {};
  for (const [key, inner] of Object.entries(value)) out[key] = await compute(inner);
  return out;
}

/** The JWKs a `$jwk` may name in both corpora, under the corpus's name for the proof's own key. */
export function corpusJwks(keys: CorpusKeys, own: string): Record<string, JWK> {
  return {
    [own]: keys.p256.publicJwk,
    [`${own}-private`]: keys.p256Private,
    other: keys.other.publicJwk,
    ed25519: keys.ed25519.publicJwk,
    rsa: keys.rsa.publicJwk,
    p384: keys.p384.publicJwk,
    oct: { kty: 'oct', k: keys.p256.publicJwk.x as string },
  };
}

/** `base` with a case's changes: a member set to null is removed, others computed and set. */
export async function merged(base: Record<string, Json>, changes: Changes | undefined, compute: (value: Json) => Promise<Json>) {
  const out = { ...base };
  for (const [name, change] of Object.entries(changes?.merge ?? {})) {
    if (change === null) delete out[name];
    else out[name] = await compute(change);
  }
  return out;
}

export const ECDSA_P256 = { name: 'ECDSA', hash: 'SHA-256' };
export const PKCS1 = { name: 'RSASSA-PKCS1-v1_5' };

export type Sign = (algorithm: Parameters<SubtleCrypto['sign']>[0], key: CryptoKey) => Promise<Uint8Array>;

/**
 * The signature a case's `sign` instruction makes over `input`: the shared instructions, or one of
 * `own` (the corpus's own: signing with the proof's key, say).
 */
export async function signAs(
  how: string,
  keys: CorpusKeys,
  input: Uint8Array,
  corpus: string,
  own: Record<string, (sign: Sign) => Promise<Uint8Array>>,
): Promise<Uint8Array> {
  const sign: Sign = async (algorithm, key) => new Uint8Array(await crypto.subtle.sign(algorithm, key, input));
  const ownInstruction = own[how];
  if (ownInstruction) return ownInstruction(sign);
  switch (how) {
    case 'other-key':
      return sign(ECDSA_P256, keys.other.privateKey);
    case 'ed25519-key':
      return sign({ name: 'Ed25519' }, keys.ed25519.privateKey);
    case 'rsa-key':
      return sign(PKCS1, keys.rsa.privateKey);
    case 'p384-key':
      return sign({ name: 'ECDSA', hash: 'SHA-384' }, keys.p384.privateKey);
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
      throw new Error(`${corpus} corpus: unknown signing instruction ${how}`);
  }
}

const utf8 = new TextEncoder();

/**
 * The compact JWS of `header` and `claims` (or the claims segment as `claimsText`, exactly), signed
 * as `sign` says.
 */
export async function compactJws(
  header: Record<string, Json>,
  claims: Record<string, Json>,
  claimsText: string | undefined,
  sign: (input: Uint8Array) => Promise<Uint8Array>,
): Promise<string> {
  const claimsBytes = utf8.encode(claimsText ?? JSON.stringify(claims));
  const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(claimsBytes)}`;
  return `${input}.${base64url.encode(await sign(utf8.encode(input)))}`;
}

/**
 * A finished proof transformed as a case's `transform` says. `otherClaims` are claims of another
 * proof, for the transform that swaps them in; `typ` is the corpus's, for the garbled header.
 */
export function transformed(proof: string, transform: string, otherClaims: Record<string, Json>, typ: string, corpus: string): string {
  const [h, p, s] = proof.split('.') as [string, string, string];
  switch (transform) {
    case 'drop-signature-segment':
      return `${h}.${p}`;
    case 'append-segment':
      return `${proof}.${s}`;
    case 'pad-segments':
      return proof
        .split('.')
        .map((segment) => `${segment}==`)
        .join('.');
    case 'garble-header':
      return `${base64url.encode(`{"typ":"${typ}",`)}.${proof.split('.').slice(1).join('.')}`;
    case 'flip-signature-bit': {
      const bytes = base64url.decode(s);
      bytes[5] = (bytes[5] as number) ^ 0x01;
      return `${h}.${p}.${base64url.encode(bytes)}`;
    }
    case 'truncate-signature':
      return `${h}.${p}.${base64url.encode(base64url.decode(s).slice(0, 32))}`;
    case 'swap-in-other-claims':
      return `${h}.${base64url.encode(JSON.stringify(otherClaims))}.${s}`;
    default:
      throw new Error(`${corpus} corpus: unknown transform ${transform}`);
  }
}
