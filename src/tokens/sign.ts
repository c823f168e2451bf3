import { SignJWT } from 'jose';
import { ACCESS_TOKEN_TYP, type AccessTokenClaims } from './claims';
import type { Keyring } from './keys';

/**
 * Signs an access token with the keyring's signer. With Ed25519 the signature is deterministic,
 * so signing the same claims twice yields the same bytes (PROTOCOL.md, "Identity of a generation").
 */
export function signAccessToken(claims: AccessTokenClaims, keyring: Keyring): Promise<string> {
  const { signer } = keyring;
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: ACCESS_TOKEN_TYP })
    .sign(signer.key);
}
