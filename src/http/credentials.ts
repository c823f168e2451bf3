import { authorizationCredential, type TokenScheme } from '../../packages/verify/src/http/credentials';

// How a request presents its token is read the same way by every verifier (packages/verify).
export { type AuthorizationCredential, authorizationCredential, type TokenScheme } from '../../packages/verify/src/http/credentials';

/**
 * The bearer token a request presents. `undefined` means none at all (no header, an empty
 * `Bearer `, another scheme): RFC 6750 §3.1 answers that with a bare challenge, not an error.
 */
export function bearerToken(request: Request): string | undefined {
  const credential = authorizationCredential(request);
  return credential?.scheme === 'Bearer' ? credential.token : undefined;
}

/** Where the request's access token came from: the Authorization header under its scheme, or the cookie. */
export type CredentialSource = TokenScheme | 'cookie';

/** How a token response hands the token over: in the body, or as the HttpOnly cookie (API.md "Browsers"). */
export type TokenDelivery = 'bearer' | 'cookie';

/** A token is renewed (or replaced) the way it was presented: a cookie is answered with a cookie. */
export function deliveryFor(source: CredentialSource): TokenDelivery {
  return source === 'cookie' ? 'cookie' : 'bearer';
}
