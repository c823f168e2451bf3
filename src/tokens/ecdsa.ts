/**
 * ECDSA signatures come in pairs: if (r, s) verifies, so does (r, n - s). WebCrypto signs with
 * either and verifies both, so without a rule one ES256 token would have two spellings that both
 * verify. Latchkey keeps only the low one (s <= n/2, as Bitcoin's BIP 62 and Ethereum do): it signs
 * that way and refuses the other, so a token has exactly one spelling wherever it is compared,
 * cached, logged or deny-listed.
 */

/** The order of the P-256 group (SEC 2 §2.4.2). */
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_HALF_ORDER = P256_ORDER >> 1n;
/** An ES256 JWS signature is r || s, 32 bytes each (RFC 7518 §3.4). */
const COMPONENT_BYTES = 32;

function toBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

function toBytes(value: bigint): Uint8Array {
  const bytes = new Uint8Array(COMPONENT_BYTES);
  let rest = value;
  for (let i = COMPONENT_BYTES - 1; i >= 0; i--) {
    bytes[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return bytes;
}

/** True when an ES256 signature is r || s of the right length with s in the lower half (0 < s <= n/2). */
export function isLowS(signature: Uint8Array): boolean {
  if (signature.length !== 2 * COMPONENT_BYTES) return false;
  const s = toBigInt(signature.subarray(COMPONENT_BYTES));
  return s > 0n && s <= P256_HALF_ORDER;
}

/** The low-s spelling of an ES256 signature r || s: (r, n - s) when s is in the upper half. */
export function toLowS(signature: Uint8Array): Uint8Array {
  if (signature.length !== 2 * COMPONENT_BYTES) throw new RangeError('an ES256 signature is 64 bytes');
  const s = toBigInt(signature.subarray(COMPONENT_BYTES));
  // s >= n is no signature at all; it is left for verification to refuse.
  if (s <= P256_HALF_ORDER || s >= P256_ORDER) return signature;
  const low = new Uint8Array(signature);
  low.set(toBytes(P256_ORDER - s), COMPONENT_BYTES);
  return low;
}
