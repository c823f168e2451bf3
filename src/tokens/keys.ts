import { type CryptoKey, type JWK, importJWK } from 'jose';
import { ConfigError } from '../errors';

/** Algorithms latchkey signs with and accepts. Asymmetric only: verifiers never hold a secret. */
export type SigningAlgorithm = 'EdDSA' | 'ES256';

export interface VerificationKey {
  kid: string;
  alg: SigningAlgorithm;
  key: CryptoKey;
}

export interface Keyring {
  /** The first key of SIGNING_KEYS: the only one that signs. */
  signer: VerificationKey;
  /** Every key of SIGNING_KEYS by `kid`, as public keys: all of them verify. */
  verifiers: ReadonlyMap<string, VerificationKey>;
  /** The JWKS document body: public members only. */
  jwksJson: string;
}

/** A key as parsed from SIGNING_KEYS, before import. */
interface ParsedKey {
  kid: string;
  alg: SigningAlgorithm;
  privateJwk: JWK;
  publicJwk: JWK;
}

function algorithmOf(jwk: Record<string, unknown>, index: number): SigningAlgorithm {
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && (jwk.alg === undefined || jwk.alg === 'EdDSA' || jwk.alg === 'Ed25519')) {
    return 'EdDSA';
  }
  if (jwk.kty === 'EC' && jwk.crv === 'P-256' && (jwk.alg === undefined || jwk.alg === 'ES256')) return 'ES256';
  throw new ConfigError(`SIGNING_KEYS key ${index} must be an Ed25519 (OKP) or P-256 (EC) private JWK`);
}

function member(jwk: Record<string, unknown>, name: string, index: number): string {
  const value = jwk[name];
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]+$/.test(value)) {
    throw new ConfigError(`SIGNING_KEYS key ${index} lacks a base64url "${name}"`);
  }
  return value;
}

/**
 * Parses the private JWK set synchronously, so a malformed secret fails at start-up. The public
 * half is rebuilt from an allow-list of members rather than by deleting private ones, so no
 * private member (`d`, or anything a future key type adds) can ever reach the JWKS.
 */
export function parseSigningKeys(json: string): ParsedKey[] {
  let document: unknown;
  try {
    document = JSON.parse(json);
  } catch {
    throw new ConfigError('SIGNING_KEYS is not valid JSON (expected {"keys": [private JWKs]})');
  }
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new ConfigError('SIGNING_KEYS must be a JWK set: {"keys": [at least one private JWK]}');
  }
  const seen = new Set<string>();
  return keys.map((raw: unknown, index) => {
    if (typeof raw !== 'object' || raw === null) throw new ConfigError(`SIGNING_KEYS key ${index} is not an object`);
    const jwk = raw as Record<string, unknown>;
    const alg = algorithmOf(jwk, index);
    const kid = jwk.kid;
    if (typeof kid !== 'string' || kid === '' || kid.length > 128) {
      throw new ConfigError(`SIGNING_KEYS key ${index} needs a "kid" of 1 to 128 characters`);
    }
    if (seen.has(kid)) throw new ConfigError(`SIGNING_KEYS has two keys with kid ${JSON.stringify(kid)}`);
    seen.add(kid);
    member(jwk, 'd', index);
    const publicJwk: JWK =
      alg === 'EdDSA'
        ? { kty: 'OKP', crv: 'Ed25519', x: member(jwk, 'x', index) }
        : { kty: 'EC', crv: 'P-256', x: member(jwk, 'x', index), y: member(jwk, 'y', index) };
    const privateJwk: JWK = { ...publicJwk, d: jwk.d as string };
    return { kid, alg, privateJwk, publicJwk: { ...publicJwk, kid, alg, use: 'sig' } };
  });
}

async function importKeyring(json: string): Promise<Keyring> {
  const parsed = parseSigningKeys(json);
  const verifiers = new Map<string, VerificationKey>();
  for (const { kid, alg, publicJwk } of parsed) {
    verifiers.set(kid, { kid, alg, key: (await importJWK(publicJwk, alg)) as CryptoKey });
  }
  const first = parsed[0] as ParsedKey;
  const signer: VerificationKey = {
    kid: first.kid,
    alg: first.alg,
    key: (await importJWK(first.privateJwk, first.alg)) as CryptoKey,
  };
  await assertKeyPairMatches(signer, verifiers.get(first.kid) as VerificationKey);
  return { signer, verifiers, jwksJson: JSON.stringify({ keys: parsed.map((key) => key.publicJwk) }) };
}

/** A `d` that does not belong to its `x` would mint tokens nobody can verify: refuse it at once. */
async function assertKeyPairMatches(signer: VerificationKey, verifier: VerificationKey): Promise<void> {
  const algorithm = signer.alg === 'EdDSA' ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' };
  const probe = new TextEncoder().encode('latchkey key check');
  const signature = await crypto.subtle.sign(algorithm, signer.key, probe);
  if (!(await crypto.subtle.verify(algorithm, verifier.key, signature, probe))) {
    throw new ConfigError(`SIGNING_KEYS key ${JSON.stringify(signer.kid)}: the private part does not match "x"`);
  }
}

let cache: { json: string; keyring: Promise<Keyring> } | undefined;

/**
 * The keyring for this SIGNING_KEYS value, imported once per isolate: key import is WebCrypto
 * work that has no place on the per-request path.
 */
export function keyringFor(json: string): Promise<Keyring> {
  if (cache?.json !== json) {
    const keyring = importKeyring(json);
    // A failed import must not stick: the next request retries (and fails loudly again).
    keyring.catch(() => {
      if (cache?.keyring === keyring) cache = undefined;
    });
    cache = { json, keyring };
  }
  return cache.keyring;
}
