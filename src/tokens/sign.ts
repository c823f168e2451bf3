import { base64url, SignJWT } from 'jose';
import { ACCESS_TOKEN_TYP, type AccessTokenClaims } from './claims';
import { toLowS } from './ecdsa';
import type { Keyring } from './keys';

/**
 * Signs an access token with the keyring's signer. With Ed25519 the signature is deterministic,
 * so signing the same claims twice yields the same bytes (PROTOCOL.md, "Identity of a generation").
 * An ES256 signature is given its low-s spelling, the only one `verifyAccessToken` accepts (ecdsa.ts).
 */
export async function signAccessToken(claims: AccessTokenClaims, keyring: Keyring): Promise<string> {
  const { signer } = keyring;
  const token = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: ACCESS_TOKEN_TYP })
    .sign(signer.key);
  if (signer.alg !== 'ES256') return token;
  const lastDot = token.lastIndexOf('.');
  return `${token.slice(0, lastDot + 1)}${base64url.encode(toLowS(base64url.decode(token.slice(lastDot + 1))))}`;
}
