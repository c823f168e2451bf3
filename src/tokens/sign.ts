import { base64url } from 'jose';
import { ACCESS_TOKEN_TYP, type AccessTokenClaims } from './claims';
import { toLowS } from '../../packages/verify/src/tokens/ecdsa';
import type { Keyring, VerificationKey } from './keys';

const encoder = new TextEncoder();

/** The encoded protected header of each signing key, built once: it is the same for every token. */
const encodedHeaders = new WeakMap<VerificationKey, string>();

function encodedHeaderOf(signer: VerificationKey): string {
  let encoded = encodedHeaders.get(signer);
  if (encoded === undefined) {
    encoded = base64url.encode(JSON.stringify({ alg: signer.alg, kid: signer.kid, typ: ACCESS_TOKEN_TYP }));
    encodedHeaders.set(signer, encoded);
  }
  return encoded;
}

/**
 * Signs an access token with the keyring's signer. With Ed25519 the signature is deterministic,
 * so signing the same claims twice yields the same bytes (PROTOCOL.md, "Identity of a generation").
 * An ES256 signature is given its low-s spelling, the only one `verifyAccessToken` accepts (ecdsa.ts).
 *
 * Signed with WebCrypto directly: every renewal signs once, and jose's general JWS builder (header
 * validation, a copy of the claims, key checks per call) cost as much again as the signature.
 * The bytes are exactly those jose's `SignJWT` produces for the same header and claims
 * (test/unit/verify.test.ts compares them), so a generation minted before this change is answered
 * again as the very same token.
 */
export async function signAccessToken(claims: AccessTokenClaims, keyring: Keyring): Promise<string> {
  const { signer } = keyring;
  // A non-finite number would be serialized as null: refuse it, as jose does.
  if (!Number.isFinite(claims.iat) || !Number.isFinite(claims.exp)) throw new TypeError('"iat" and "exp" must be finite numbers');
  const input = `${encodedHeaderOf(signer)}.${base64url.encode(JSON.stringify(claims))}`;
  const algorithm = signer.alg === 'EdDSA' ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' };
  const signature = new Uint8Array(await crypto.subtle.sign(algorithm, signer.key, encoder.encode(input)));
  return `${input}.${base64url.encode(signer.alg === 'ES256' ? toLowS(signature) : signature)}`;
}
