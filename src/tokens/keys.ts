import { type CryptoKey, importJWK, type JWK } from 'jose';
import {
  importVerificationKey,
  InvalidKeyError,
  keyMember,
  type PublicKeyEntry,
  readPublicKey,
  type VerificationKey,
} from '../../packages/verify/src/tokens/keys';
import { ConfigError } from '../errors';

// Reading and importing public keys is what every verifier does (packages/verify); the private
// keys, signing and the keyring are latchkey's.
export type { PublicKeyEntry, SigningAlgorithm, VerificationKey } from '../../packages/verify/src/tokens/keys';

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
    const entry = asConfigError(() => readPublicKey(raw, label));
    if (seen.has(entry.kid)) throw new ConfigError(`SIGNING_KEYS has two keys with kid ${JSON.stringify(entry.kid)}`);
    seen.add(entry.kid);
    const d = asConfigError(() => keyMember(raw as Record<string, unknown>, 'd', label));
    const { kid: _kid, alg: _alg, use: _use, ...keyMembers } = entry.publicJwk;
    return { ...entry, privateJwk: { ...keyMembers, d } };
  });
}

/** A bad key in SIGNING_KEYS is a configuration error, reported at start-up as one. */
function asConfigError<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof InvalidKeyError) throw new ConfigError(error.message);
    throw error;
  }
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
