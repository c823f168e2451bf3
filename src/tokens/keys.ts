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
interface ParsedKey extends PublicKeyEntry {
  privateJwk: JWK;
}

function algorithmOf(jwk: Record<string, unknown>, label: string): SigningAlgorithm {
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && (jwk.alg === undefined || jwk.alg === 'EdDSA' || jwk.alg === 'Ed25519')) {
    return 'EdDSA';
  }
  if (jwk.kty === 'EC' && jwk.crv === 'P-256' && (jwk.alg === undefined || jwk.alg === 'ES256')) return 'ES256';
  throw new ConfigError(`${label} must be an Ed25519 (OKP) or P-256 (EC) JWK`);
}

function member(jwk: Record<string, unknown>, name: string, label: string): string {
  const value = jwk[name];
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]+$/.test(value)) {
    throw new ConfigError(`${label} lacks a base64url "${name}"`);
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
 * Reads the `kid`, the algorithm and the public members of one JWK, throwing `ConfigError`
 * (naming the key by `label`) if it is not a usable Ed25519 or P-256 key. The public half is
 * rebuilt from an allow-list of members rather than by deleting private ones, so no private
 * member (`d`, or anything a future key type adds) can ever reach a JWKS.
 */
export function readPublicKey(raw: unknown, label: string): PublicKeyEntry {
  if (typeof raw !== 'object' || raw === null) throw new ConfigError(`${label} is not an object`);
  const jwk = raw as Record<string, unknown>;
  const alg = algorithmOf(jwk, label);
  const kid = jwk.kid;
  if (typeof kid !== 'string' || kid === '' || kid.length > 128) {
    throw new ConfigError(`${label} needs a "kid" of 1 to 128 characters`);
  }
  const publicJwk: JWK =
    alg === 'EdDSA'
      ? { kty: 'OKP', crv: 'Ed25519', x: member(jwk, 'x', label) }
      : { kty: 'EC', crv: 'P-256', x: member(jwk, 'x', label), y: member(jwk, 'y', label) };
  return { kid, alg, publicJwk: { ...publicJwk, kid, alg, use: 'sig' } };
}

/** Imports a public key for verification. */
export async function importVerificationKey({ kid, alg, publicJwk }: PublicKeyEntry): Promise<VerificationKey> {
  return { kid, alg, key: (await importJWK(publicJwk, alg)) as CryptoKey };
}

/** Parses the private JWK set synchronously, so a malformed secret fails at start-up. */
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
    const label = `SIGNING_KEYS key ${index}`;
    const entry = readPublicKey(raw, label);
    if (seen.has(entry.kid)) throw new ConfigError(`SIGNING_KEYS has two keys with kid ${JSON.stringify(entry.kid)}`);
    seen.add(entry.kid);
    const d = member(raw as Record<string, unknown>, 'd', label);
    const { kid: _kid, alg: _alg, use: _use, ...keyMembers } = entry.publicJwk;
    return { ...entry, privateJwk: { ...keyMembers, d } };
  });
}

async function importKeyring(json: string): Promise<Keyring> {
  const parsed = parseSigningKeys(json);
  const verifiers = new Map<string, VerificationKey>();
  for (const entry of parsed) verifiers.set(entry.kid, await importVerificationKey(entry));
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
