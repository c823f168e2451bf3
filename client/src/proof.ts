import { base64url, SignJWT } from 'jose';

/** What a proof is signed with: a private key and the public JWK that goes in the proof's header. */
export interface ProofSigner {
  privateKey: CryptoKey;
  jwk: { kty: string; crv: string; x: string; y: string };
}

const utf8 = new TextEncoder();

/** The URL as a proof's `htu` names it: without query and fragment (RFC 9449 §4.2). */
function htuOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

/**
 * A DPoP proof for one request (RFC 9449 §4.2), signed with jose. `iatSeconds` is the server's
 * clock as this page knows it, not the device's: latchkey judges a proof's age by its own clock,
 * and a device clock can be hours off. `accessToken`: the token sent with the request, which the
 * proof then hashes (`ath`); absent on login and in cookie mode, where the page cannot read it.
 */
export async function makeProof(
  key: ProofSigner,
  request: { method: string; url: string; iatSeconds: number; accessToken?: string },
): Promise<string> {
  const claims: Record<string, string> = { jti: crypto.randomUUID(), htm: request.method, htu: htuOf(request.url) };
  if (request.accessToken !== undefined) {
    claims.ath = base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8.encode(request.accessToken))));
  }
  return new SignJWT(claims)
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk })
    .setIssuedAt(request.iatSeconds)
    .sign(key.privateKey);
}
