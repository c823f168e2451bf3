import { ApiError } from '../errors';
import type { AppContext } from './context';
import { allowedOrigin } from './cors';
import { authorizationCredential, type CredentialSource } from './credentials';
import { tokenFromCookie } from './token-cookie';

/** Methods that change nothing (RFC 9110 §9.2.1); everything else here is a POST or a DELETE. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The access token of the request and where it came from: the Authorization header first, else
 * the cookie of cookie mode. `undefined`: the request carries neither.
 *
 * A cookie rides along on any request the browser makes to this host, including one another page
 * started (CSRF). SameSite=Strict stops other sites, but not other origins of the same site
 * (another port of localhost, a sibling subdomain), and not browsers that ignore it. So a
 * cookie-authenticated request that changes state must also carry an Origin from the allow-list:
 * browsers set Origin on every POST and DELETE, and a page cannot forge it. A header token needs
 * no such check: no browser attaches it on its own.
 */
export function requestCredential(c: AppContext): { token: string | undefined; via: CredentialSource } | undefined {
  const header = authorizationCredential(c.req.raw);
  if (header !== undefined && (header.token !== undefined || header.scheme === 'DPoP')) {
    return { token: header.token, via: header.scheme };
  }
  const cookie = tokenFromCookie(c);
  if (cookie === undefined) return undefined;
  if (!SAFE_METHODS.has(c.req.method) && allowedOrigin(c) === undefined) throw new ApiError('forbidden_origin');
  return { token: cookie, via: 'cookie' };
}
