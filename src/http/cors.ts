import type { MiddlewareHandler } from 'hono';
import type { AppContext, AppEnv } from './context';

/** What browsers may send here: every method and request header API.md uses (DPoP: RFC 9449 proofs). */
const ALLOWED_METHODS = 'GET, POST, DELETE';
const ALLOWED_HEADERS = 'Authorization, Content-Type, DPoP';
/**
 * Response headers a cross-origin page may read beyond the CORS-safelisted ones: Retry-After for
 * 429/503 back-off, WWW-Authenticate for RFC 6750 and RFC 9449 challenges, and Date, from which
 * the browser client learns the server's clock: DPoP proofs are judged by it, and a device clock
 * may be hours off.
 */
const EXPOSED_HEADERS = 'Retry-After, WWW-Authenticate, Date';
/** Seconds a browser may cache a preflight answer (Chromium caps it at 7200). */
const PREFLIGHT_MAX_AGE = '600';

/**
 * The request's `Origin` when it is listed in ALLOWED_ORIGINS, compared exactly (scheme, host and
 * port). No patterns and no `null`: a wildcard with credentials would hand every site the user's
 * session, and sandboxed frames send `null`.
 */
export function allowedOrigin(c: AppContext): string | undefined {
  const origin = c.req.header('origin');
  if (origin === undefined) return undefined;
  return c.var.config.allowedOrigins.includes(origin) ? origin : undefined;
}

/**
 * CORS for the allow-list (API.md "Browsers"). A listed origin gets its own origin echoed, with
 * credentials, so cookie mode works from that page; any other origin gets no CORS header at all,
 * and the browser keeps the answer from the page. `Vary: Origin` goes on every answer because
 * each one depends on the Origin, so a shared cache must not hand one origin's answer to another.
 *
 * CORS only protects reading answers. Whether a request may change state is decided elsewhere
 * (`forbidden_origin`), since a simple cross-origin POST is sent before any CORS check.
 */
export function cors(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const origin = allowedOrigin(c);
    const isPreflight = c.req.method === 'OPTIONS' && c.req.header('access-control-request-method') !== undefined;
    if (isPreflight) {
      const headers = new Headers({ vary: 'Origin' });
      if (origin !== undefined) {
        headers.set('access-control-allow-origin', origin);
        headers.set('access-control-allow-credentials', 'true');
        headers.set('access-control-allow-methods', ALLOWED_METHODS);
        headers.set('access-control-allow-headers', ALLOWED_HEADERS);
        headers.set('access-control-max-age', PREFLIGHT_MAX_AGE);
      }
      return new Response(null, { status: 204, headers });
    }
    await next();
    // c.res is the final answer here, problem documents from onError included, so a page can
    // read the `code` of a 401 and know whether to renew or sign the person out.
    c.res.headers.append('vary', 'Origin');
    if (origin !== undefined) {
      c.res.headers.set('access-control-allow-origin', origin);
      c.res.headers.set('access-control-allow-credentials', 'true');
      c.res.headers.set('access-control-expose-headers', EXPOSED_HEADERS);
    }
  };
}
