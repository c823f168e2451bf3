import type { MiddlewareHandler } from 'hono';
import { now } from '../clock';
import { ApiError } from '../errors';
import type { AccessTokenClaims } from '../tokens/claims';
import { verifyAccessTokenCached } from '../tokens/verified-cache';
import { verifyAccessToken } from '../tokens/verify';
import { readSessionLiveness } from '../storage/liveness';
import { type AppContext, type AppEnv, configOf, keyringOf, storeOf } from './context';
import { presentedToken } from './presented-token';

/**
 * Verifies the presented access token (signature, algorithm, `typ`, `iss`, `aud`, every claim)
 * and records in `credential` whether it came from the header or the cookie.
 * Renewal and logout pass `allowExpired`; they apply the idle limit themselves.
 */
export async function presentedClaims(c: AppContext, options: { allowExpired: boolean }): Promise<AccessTokenClaims> {
  const presented = presentedToken(c);
  if (presented === undefined) throw new ApiError('missing_token');
  c.set('credential', presented.via);
  const token = presented.token;
  const config = configOf(c);
  // Renewal and logout see a token about once (renewal supersedes it): caching those would only
  // push out tokens that clients are still presenting. The cache answers as a full verify would.
  const verify = options.allowExpired ? verifyAccessToken : verifyAccessTokenCached;
  const result = await verify(token, await keyringOf(c), {
    issuer: config.issuer,
    audience: config.audience,
    nowMs: now(),
    allowExpired: options.allowExpired,
  });
  if (result.ok) return result.claims;
  throw new ApiError(result.reason === 'expired' ? 'token_expired' : 'invalid_token');
}

/**
 * Guards a route with a valid (unexpired) access token and sets `caller`.
 *
 * - `stateless`: the token alone, no database read. A stolen token works until it expires,
 *   which is why tokens are short-lived.
 * - `strict`: also one D1 read of the session and the user's revocation instant, so a revoked
 *   session is refused at once. For changing a password, paying, and the like.
 */
export function requireAccessToken(mode: 'stateless' | 'strict'): MiddlewareHandler<AppEnv> {
  if (mode !== 'stateless' && mode !== 'strict') throw new TypeError(`unknown verification mode ${String(mode)}`);
  return async (c, next) => {
    const claims = await presentedClaims(c, { allowExpired: false });
    if (mode === 'strict') {
      const liveness = await readSessionLiveness(storeOf(c), claims, configOf(c));
      if (!liveness.live) throw new ApiError(liveness.code);
      c.set('caller', { claims, email: liveness.mirror.user.email, emailVerified: liveness.mirror.user.emailVerified });
    } else {
      c.set('caller', { claims });
    }
    await next();
  };
}
