/** The schemes an access token travels under: RFC 6750 §2.1 `Bearer`, RFC 9449 §7.1 `DPoP`. */
export type TokenScheme = 'Bearer' | 'DPoP';

/** An `Authorization` header of a token scheme. `token` is undefined when the header names the scheme alone. */
export interface AuthorizationCredential {
  scheme: TokenScheme;
  token: string | undefined;
}

/**
 * The `Authorization` header when it is of a token scheme, compared case-insensitively (RFC 9110
 * §11.1). Undefined for no header or another scheme (Basic, Digest, a made-up one).
 *
 * The scheme is kept because it is part of the credential: a token bound to a key must come as
 * `DPoP`, and one that comes as `Bearer` is refused rather than accepted without its proof
 * (RFC 9449 §7.2); and the scheme decides which challenge the client is answered with.
 */
export function authorizationCredential(request: Request): AuthorizationCredential | undefined {
  const header = request.headers.get('authorization');
  if (header === null) return undefined;
  const match = /^(Bearer|DPoP)(?:\s+(.*))?$/i.exec(header.trim());
  if (!match) return undefined;
  const scheme: TokenScheme = (match[1] as string).toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
  const token = (match[2] ?? '').trim();
  return { scheme, token: token === '' ? undefined : token };
}

/**
 * The bearer token a request presents. `undefined` means none at all (no header, an empty
 * `Bearer `, another scheme): RFC 6750 §3.1 answers that with a bare challenge, not an error.
 */
export function bearerToken(request: Request): string | undefined {
  const credential = authorizationCredential(request);
  return credential?.scheme === 'Bearer' ? credential.token : undefined;
}
