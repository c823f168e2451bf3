import type { TokenGrant } from '../user-authority/results';
import type { AppContext } from '../http/context';

/** API.md's token response. `no-store`: a token must never sit in a shared cache (RFC 6749 §5.1). */
export function tokenResponse(c: AppContext, grant: TokenGrant): Response {
  c.header('cache-control', 'no-store');
  return c.json({
    access_token: grant.accessToken,
    token_type: 'Bearer',
    expires_in: grant.expiresIn,
    session_id: grant.sessionId,
  });
}

export function isoInstant(ms: number): string {
  return new Date(ms).toISOString();
}
