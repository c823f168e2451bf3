import { ApiError } from '../errors';
import type { AppContext } from '../http/context';
import type { TokenDelivery } from '../http/credentials';
import { allowedOrigin } from '../http/cors';
import { clearEndedCookie, setTokenCookie } from '../http/token-cookie';
import { offerDeviceBinding } from './dbsc';
import type { TokenGrant } from '../user-authority/results';

export type { TokenDelivery };

export const TOKEN_DELIVERIES = ['bearer', 'cookie'] as const;

/**
 * API.md's token response. `no-store`: a token must never sit in a shared cache (RFC 6749 §5.1).
 * In cookie mode the token goes into the cookie only, never into the body, where page scripts
 * could read it.
 */
export function tokenResponse(c: AppContext, grant: TokenGrant, delivery: TokenDelivery = 'bearer'): Response {
  c.header('cache-control', 'no-store');
  // Tells a page that the browser renews this session (DBSC), so it need not try itself.
  const bound = grant.deviceBound ? { device_bound: true } : {};
  if (delivery === 'cookie') {
    setTokenCookie(c, grant);
    return c.json({ token_type: grant.tokenType, expires_in: grant.expiresIn, session_id: grant.sessionId, ...bound });
  }
  return c.json({
    access_token: grant.accessToken,
    token_type: grant.tokenType,
    expires_in: grant.expiresIn,
    session_id: grant.sessionId,
    ...bound,
  });
}

/**
 * The token response of a sign-in that opened a session (login, passkey sign-in, password change
 * or reset). In cookie mode it also offers the browser to bind the session to a key of its own
 * (DBSC registration); browsers without DBSC ignore the header.
 */
export async function newSessionResponse(c: AppContext, grant: TokenGrant, delivery: TokenDelivery): Promise<Response> {
  if (delivery === 'cookie') {
    clearEndedCookie(c);
    await offerDeviceBinding(c, grant);
  }
  return tokenResponse(c, grant, delivery);
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
