import { ApiError } from '../errors';
import type { AppContext } from '../http/context';
import { allowedOrigin } from '../http/cors';
import { setTokenCookie } from '../http/token-cookie';
import type { TokenGrant } from '../user-authority/results';

/** How a token response hands the token over: in the body, or as the HttpOnly cookie (API.md "Browsers"). */
export type TokenDelivery = 'bearer' | 'cookie';

export const TOKEN_DELIVERIES = ['bearer', 'cookie'] as const;

/**
 * API.md's token response. `no-store`: a token must never sit in a shared cache (RFC 6749 §5.1).
 * In cookie mode the token goes into the cookie only, never into the body, where page scripts
 * could read it.
 */
export function tokenResponse(c: AppContext, grant: TokenGrant, delivery: TokenDelivery = 'bearer'): Response {
  c.header('cache-control', 'no-store');
  if (delivery === 'cookie') {
    setTokenCookie(c, grant);
    return c.json({ token_type: grant.tokenType, expires_in: grant.expiresIn, session_id: grant.sessionId });
  }
  return c.json({
    access_token: grant.accessToken,
    token_type: grant.tokenType,
    expires_in: grant.expiresIn,
    session_id: grant.sessionId,
  });
}

/**
 * Asking for cookie mode from a page whose Origin is not allowed is refused before any password
 * is checked: a page on another origin of the same site could otherwise sign the browser into an
 * account of its choosing (login CSRF). A request without Origin is no browser's and passes.
 */
export function assertCookieDeliveryAllowed(c: AppContext, delivery: TokenDelivery | undefined): void {
  if (delivery === 'cookie' && c.req.header('origin') !== undefined && allowedOrigin(c) === undefined) {
    throw new ApiError('forbidden_origin');
  }
}

export function isoInstant(ms: number): string {
  return new Date(ms).toISOString();
}
