import { authorizationCredential } from '../../packages/verify/src/http/credentials';

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
