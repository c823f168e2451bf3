import { importVerificationKey, InvalidKeyError, type PublicKeyEntry, readPublicKey, type VerificationKey } from './tokens/keys.js';

/** A JWK set as published at /.well-known/jwks.json. */
export interface JwkSet {
  keys: unknown[];
}

/**
 * Latchkey publishes a handful of keys (the signer, a "next" key, one being retired). A set far
 * larger than that is not latchkey's, and importing it would be CPU spent on a verifier's hot path.
 */
const MAX_KEYS = 16;

/**
 * Reads the keys of a public JWK set that latchkey can have signed with: Ed25519 or P-256, for
 * signatures. Other keys are skipped, not fatal (RFC 7517 §5: ignore keys that are not
 * understood), so an issuer that adds a key type later does not break older verifiers. Only public
 * members are kept, whatever else a key carries. The first key of a `kid` wins.
 */
export function readPublicJwks(document: unknown): PublicKeyEntry[] {
  const keys = typeof document === 'object' && document !== null ? (document as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(keys)) throw new TypeError('not a JWK set: expected {"keys": [...]}');
  const entries = new Map<string, PublicKeyEntry>();
  for (const [index, raw] of keys.slice(0, MAX_KEYS).entries()) {
    const use = (raw as { use?: unknown } | null)?.use;
    if (use !== undefined && use !== 'sig') continue;
    try {
      const entry = readPublicKey(raw, `JWKS key ${index}`);
      if (!entries.has(entry.kid)) entries.set(entry.kid, entry);
    } catch (error) {
      if (!(error instanceof InvalidKeyError)) throw error;
    }
  }
  return [...entries.values()];
}

/** Imports the keys of the set by `kid`, leaving out any that WebCrypto refuses (a bad `x`). */
export async function importPublicKeys(entries: readonly PublicKeyEntry[]): Promise<Map<string, VerificationKey>> {
  const keys = new Map<string, VerificationKey>();
  for (const entry of entries) {
    try {
      keys.set(entry.kid, await importVerificationKey(entry));
    } catch {
      // Skipped like a key of an unknown type: the rest of the set still verifies.
    }
  }
  return keys;
}
