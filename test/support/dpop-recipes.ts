/**
 * Materializes the DPoP proof cases of dpop-proofs.json into requests: the Authorization header,
 * the DPoP header(s), and which token they carry. Runtime-neutral (WebCrypto and jose only).
 *
 * A recipe starts from a valid proof for the case's request and bound token (header `typ`,
 * `alg: ES256`, the bound key as `jwk`; claims `jti`, `htm`, `htu`, `iat`, `ath`), applies the
 * case's changes, signs as the case says (by default with the bound key, so the change is the only
 * thing wrong), and transforms the finished proof if asked.
 */
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { generateProof } from 'dpop';
import { accessTokenHash } from '../../packages/verify/src/dpop/proof';
import proofsText from '../security/dpop-proofs.json?raw';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Changes = { merge: Record<string, Json> };

export interface ProofCase {
  name: string;
  why?: string;
  /** How the token is presented. Default DPoP. */
  authorization?: 'DPoP' | 'Bearer' | 'cookie';
  /** Which token. Default bound (to the proof key, or to `key`). */
  token?: 'bound' | 'unbound';
  /** Which key the token is bound to and the proof is made with. Default p256. */
  key?: 'p256' | 'ed25519';
  /** null: no DPoP header. Default: the recipe's proof. */
  dpop?: null | { raw: string } | { twice: true };
  builder?: 'dpop-package' | 'dpop-package-ed25519';
  header?: Changes;
  claims?: Changes;
  /** The claims segment as this exact text. */
  claimsText?: string;
  sign?: string;
  transform?: string;
  /** The proof is accepted once first, and the case is its second use. */
  replay?: boolean;
  /** The refusal reason (refused cases only). */
  expect?: string;
  /** The wire code, where not invalid_dpop_proof. */
  code?: string;
}

export const proofCorpus = JSON.parse(proofsText) as {
  request: { method: string; url: string };
  refused: ProofCase[];
  accepted: ProofCase[];
};

interface Pair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  jkt: string;
}

/** The keys a case can name, made once per test file. */
export interface ProofKeys {
  p256: Pair;
  ed25519: Pair;
  other: Pair;
  rsa: Pair;
  p384: Pair;
  /** The private JWK of `p256`, for the case that leaks it. */
  p256Private: JWK;
}

async function pair(alg: string, options: { modulusLength?: number } = {}): Promise<Pair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk) };
}

export async function makeProofKeys(): Promise<ProofKeys> {
  const [p256, ed25519, other, rsa, p384] = await Promise.all([
    pair('ES256'),
    pair('EdDSA'),
    pair('ES256'),
    pair('RS256', { modulusLength: 2048 }),
    pair('ES384'),
  ]);
  return { p256, ed25519, other, rsa, p384, p256Private: await exportJWK(p256.privateKey) };
}

/** The tokens a case can carry: one bound to each key, one unbound, one that is none of them. */
export interface ProofTokens {
  boundTo: (jkt: string) => string;
  unbound: string;
  other: string;
}

/** What a case becomes: the request's credentials, the token, and the thumbprint it is bound to. */
export interface MaterializedCase {
  presentedAs: 'DPoP' | 'Bearer' | 'cookie';
  token: string;
  boundJkt: string | undefined;
  /** The DPoP header values to send (none, one, or two). */
  dpop: string[];
}

const utf8 = new TextEncoder();

/** The key a case's token is bound to and its proof is made with. */
function caseKey(keys: ProofKeys, testCase: ProofCase): Pair {
  return testCase.key === 'ed25519' || testCase.builder === 'dpop-package-ed25519' ? keys.ed25519 : keys.p256;
}

async function computed(value: Json, keys: ProofKeys, tokens: { bound: string; other: string; unbound: string }, nowSeconds: number): Promise<Json> {
  if (Array.isArray(value)) return Promise.all(value.map((item) => computed(item, keys, tokens, nowSeconds)));
  if (value === null || typeof value !== 'object') return value;
  if ('$now' in value) return nowSeconds + (value.$now as number);
  if ('$repeat' in value) {
    const [text, times] = value.$repeat as [string, number];
    return text.repeat(times);
  }
  if ('$ath' in value) {
    const which = value.$ath as 'token' | 'other' | 'unbound';
    const token = which === 'token' ? tokens.bound : which === 'other' ? tokens.other : tokens.unbound;
    return (await accessTokenHash(token)) + ((value.pad as string | undefined) ?? '');
  }
  if ('$jwk' in value) {
    const { $jwk: name, ...extra } = value;
    const jwks: Record<string, JWK> = {
      proof: keys.p256.publicJwk,
      other: keys.other.publicJwk,
      ed25519: keys.ed25519.publicJwk,
      rsa: keys.rsa.publicJwk,
      p384: keys.p384.publicJwk,
      'proof-private': keys.p256Private,
      oct: { kty: 'oct', k: keys.p256.publicJwk.x as string },
    };
    const jwk = jwks[name as string];
    if (!jwk) throw new Error(`dpop corpus: unknown key ${String(name)}`);
    return { ...(jwk as Record<string, Json>), ...extra };
  }
  const out: Record<string, Json> = {};
  for (const [key, inner] of Object.entries(value)) out[key] = await computed(inner, keys, tokens, nowSeconds);
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

async function signWith(how: string, keys: ProofKeys, proofKey: Pair, input: Uint8Array): Promise<Uint8Array> {
  const ecdsa = { name: 'ECDSA', hash: 'SHA-256' };
  const sign = async (algorithm: Parameters<SubtleCrypto['sign']>[0], key: CryptoKey) =>
    new Uint8Array(await crypto.subtle.sign(algorithm, key, input));
  switch (how) {
    case 'proof-key':
      return sign(proofKey.privateKey.algorithm.name === 'Ed25519' ? { name: 'Ed25519' } : ecdsa, proofKey.privateKey);
    case 'other-key':
      return sign(ecdsa, keys.other.privateKey);
    case 'ed25519-key':
      return sign({ name: 'Ed25519' }, keys.ed25519.privateKey);
    case 'rsa-key':
      return sign({ name: 'RSASSA-PKCS1-v1_5' }, keys.rsa.privateKey);
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
      throw new Error(`dpop corpus: unknown signing instruction ${how}`);
  }
}

const TRANSFORMS: Record<string, (proof: string, other: string) => string> = {
  'drop-signature-segment': (proof) => proof.split('.').slice(0, 2).join('.'),
  'append-segment': (proof) => `${proof}.${proof.split('.')[2]}`,
  'pad-segments': (proof) => proof.split('.').map((segment) => `${segment}==`).join('.'),
  'garble-header': (proof) => `${base64url.encode('{"typ":"dpop+jwt",')}.${proof.split('.').slice(1).join('.')}`,
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

/**
 * The request a case describes, at `nowSeconds` by the server's clock. `url` and `method` are the
 * corpus's request. Each call makes fresh `jti`s, so materializing one case twice gives two proofs.
 */
export async function materialize(
  testCase: ProofCase,
  keys: ProofKeys,
  tokens: ProofTokens,
  nowSeconds: number,
): Promise<MaterializedCase> {
  const { method, url } = proofCorpus.request;
  const proofKey = caseKey(keys, testCase);
  const bound = tokens.boundTo(proofKey.jkt);
  const unbound = testCase.token === 'unbound';
  const token = unbound ? tokens.unbound : bound;
  const presentedAs = testCase.authorization ?? 'DPoP';
  const result = { presentedAs, token, boundJkt: unbound ? undefined : proofKey.jkt };

  if (testCase.dpop === null) return { ...result, dpop: [] };
  if (testCase.dpop && 'raw' in testCase.dpop) return { ...result, dpop: [testCase.dpop.raw.replace('{{token}}', token)] };

  let proof: string;
  if (testCase.builder !== undefined) {
    // An independent builder: its proofs must pass as they are, iat from the real clock included.
    proof = await generateProof(
      { privateKey: proofKey.privateKey, publicKey: proofKey.publicKey },
      url,
      method,
      undefined,
      presentedAs === 'DPoP' ? token : undefined,
    );
  } else {
    const tokensForValues = { bound, other: tokens.other, unbound: tokens.unbound };
    const compute = (value: Json) => computed(value, keys, tokensForValues, nowSeconds);
    const baseHeader: Record<string, Json> = {
      typ: 'dpop+jwt',
      alg: proofKey === keys.ed25519 ? 'EdDSA' : 'ES256',
      jwk: proofKey.publicJwk as Record<string, Json>,
    };
    const baseClaims: Record<string, Json> = { jti: crypto.randomUUID(), htm: method, htu: url, iat: nowSeconds };
    baseClaims.ath = await accessTokenHash(token);
    const header = await merged(baseHeader, testCase.header, compute);
    const claims = await merged(baseClaims, testCase.claims, compute);
    const claimsBytes = utf8.encode(testCase.claimsText ?? JSON.stringify(claims));
    const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(claimsBytes)}`;
    const signature = await signWith(testCase.sign ?? 'proof-key', keys, proofKey, utf8.encode(input));
    proof = `${input}.${base64url.encode(signature)}`;
    if (testCase.transform !== undefined) {
      const transform = TRANSFORMS[testCase.transform];
      if (!transform) throw new Error(`dpop corpus: unknown transform ${testCase.transform}`);
      const otherClaims = base64url.encode(JSON.stringify({ ...claims, jti: crypto.randomUUID() }));
      proof = transform(proof, `x.${otherClaims}.x`);
    }
  }
  const twice = testCase.dpop !== undefined && 'twice' in testCase.dpop;
  return { ...result, dpop: twice ? [proof, proof] : [proof] };
}

/** The request a materialized case is sent as (`cookie` cases carry the token as latchkey's cookie). */
export function requestOf(materialized: MaterializedCase): Request {
  const headers = new Headers();
  if (materialized.presentedAs === 'cookie') headers.set('cookie', `latchkey_at=${materialized.token}`);
  else headers.set('authorization', `${materialized.presentedAs} ${materialized.token}`);
  for (const proof of materialized.dpop) headers.append('dpop', proof);
  return new Request(proofCorpus.request.url, { method: proofCorpus.request.method, headers });
}
