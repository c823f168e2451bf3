import { type CryptoKey, type JWK, importJWK } from 'jose';

/** Algorithms latchkey signs with and accepts. Asymmetric only: verifiers never hold a secret. */
export type SigningAlgorithm = 'EdDSA' | 'ES256';

export interface VerificationKey {
  kid: string;
  alg: SigningAlgorithm;
  key: CryptoKey;
}

/** A JWK that is not a usable Ed25519 or P-256 key. The message names the key by its label. */
export class InvalidKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidKeyError';
  }
}

function algorithmOf(jwk: Record<string, unknown>, label: string): SigningAlgorithm {
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && (jwk.alg === undefined || jwk.alg === 'EdDSA' || jwk.alg === 'Ed25519')) {
    return 'EdDSA';
  }
  if (jwk.kty === 'EC' && jwk.crv === 'P-256' && (jwk.alg === undefined || jwk.alg === 'ES256')) return 'ES256';
  throw new InvalidKeyError(`${label} must be an Ed25519 (OKP) or P-256 (EC) JWK`);
}

/** A base64url member of a JWK (`x`, `y`, `d`), or `InvalidKeyError`. */
export function keyMember(jwk: Record<string, unknown>, name: string, label: string): string {
  const value = jwk[name];
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]+$/.test(value)) {
    throw new InvalidKeyError(`${label} lacks a base64url "${name}"`);
  }
  return value;
}

/** The public half of a JWK, its `kid` and algorithm, as read from SIGNING_KEYS or a JWKS. */
export interface PublicKeyEntry {
  kid: string;
  alg: SigningAlgorithm;
  /** Public members only, with `kid`, `alg` and `use: "sig"`: what a JWKS publishes. */
  publicJwk: JWK;
}

/**
 * Reads the `kid`, the algorithm and the public members of one JWK, throwing `InvalidKeyError`
 * (naming the key by `label`) if it is not a usable Ed25519 or P-256 key. The public half is
 * rebuilt from an allow-list of members rather than by deleting private ones, so no private
 * member (`d`, or anything a future key type adds) can ever reach a JWKS.
 */
export function readPublicKey(raw: unknown, label: string): PublicKeyEntry {
  if (typeof raw !== 'object' || raw === null) throw new InvalidKeyError(`${label} is not an object`);
  const jwk = raw as Record<string, unknown>;
  const alg = algorithmOf(jwk, label);
  const kid = jwk.kid;
  if (typeof kid !== 'string' || kid === '' || kid.length > 128) {
    throw new InvalidKeyError(`${label} needs a "kid" of 1 to 128 characters`);
  }
  const publicJwk: JWK =
    alg === 'EdDSA'
      ? { kty: 'OKP', crv: 'Ed25519', x: keyMember(jwk, 'x', label) }
      : { kty: 'EC', crv: 'P-256', x: keyMember(jwk, 'x', label), y: keyMember(jwk, 'y', label) };
  return { kid, alg, publicJwk: { ...publicJwk, kid, alg, use: 'sig' } };
}

/** Imports a public key for verification. */
export async function importVerificationKey({ kid, alg, publicJwk }: PublicKeyEntry): Promise<VerificationKey> {
  return { kid, alg, key: (await importJWK(publicJwk, alg)) as CryptoKey };
}
