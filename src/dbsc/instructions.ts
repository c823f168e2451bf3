import { TOKEN_COOKIE_ATTRIBUTES, tokenCookieName } from '../http/token-cookie';
import { DBSC_REFRESH_PATH } from './headers';

/**
 * The session instructions JSON (the draft's "JSON Session Instruction Format"): the answer to a
 * registration, and to each refresh. It tells the browser which session this is, where to
 * refresh it, which requests it covers, and which cookie it keeps alive.
 */
export interface DbscSessionInstructions {
  session_identifier: string;
  refresh_url: string;
  scope: {
    origin: string;
    include_site: false;
    scope_specification: Array<{ type: 'include' | 'exclude'; domain: string; path: string }>;
  };
  credentials: Array<{ type: 'cookie'; name: string; attributes: string }>;
  allowed_refresh_initiators?: string[];
}

/** The answer that ends a DBSC session in the browser: it stops refreshing and drops the key. */
export const END_SESSION_INSTRUCTIONS = { continue: false } as const;

/**
 * The token cookie's attributes as a Set-Cookie attribute list, in the form the draft's
 * `credentials[].attributes` takes. The browser checks a cookie against them (Domain, Path,
 * Secure, HttpOnly, SameSite) to decide whether the bound cookie is there, so they must be the
 * ones latchkey sets, which is why both come from TOKEN_COOKIE_ATTRIBUTES.
 */
export function tokenCookieAttributeList(): string {
  const attributes = [`Path=${TOKEN_COOKIE_ATTRIBUTES.path}`];
  if (TOKEN_COOKIE_ATTRIBUTES.secure) attributes.push('Secure');
  if (TOKEN_COOKIE_ATTRIBUTES.httpOnly) attributes.push('HttpOnly');
  attributes.push(`SameSite=${TOKEN_COOKIE_ATTRIBUTES.sameSite}`);
  return attributes.join('; ');
}

/**
 * The hosts, other than latchkey's own, whose pages may make the browser refresh: those of
 * ALLOWED_ORIGINS. Without them a page on another origin (an app calling latchkey with
 * credentials) would see its requests go out without the cookie once it expires, instead of
 * being held while the browser refreshes. The draft matches them against hosts, not origins, so
 * ports and schemes fall away (`http://localhost:8802` becomes `localhost`).
 */
export function refreshInitiators(allowedOrigins: readonly string[], latchkeyOrigin: string): string[] {
  const own = new URL(latchkeyOrigin).origin;
  const hosts = new Set<string>();
  for (const origin of allowedOrigins) {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      continue;
    }
    if (url.origin !== own) hosts.add(url.hostname);
  }
  return [...hosts];
}

export interface SessionInstructionsInput {
  /** The DBSC session identifier (see session-identifier.ts). */
  sessionIdentifier: string;
  /** A URL on latchkey's origin (the registration's, or the refresh's): scope and cookie follow it. */
  requestUrl: string;
  /** ALLOWED_ORIGINS, for `allowed_refresh_initiators`. */
  allowedOrigins: readonly string[];
}

/**
 * The session instructions for latchkey's token cookie: scoped to latchkey's origin alone (not
 * its site: `include_site` would bring sibling hosts into scope), refreshed at
 * DBSC_REFRESH_PATH, keeping alive the token cookie under its name on this origin (`__Host-`
 * over https) with exactly the attributes it is set with.
 */
export function sessionInstructions(input: SessionInstructionsInput): DbscSessionInstructions {
  const origin = new URL(input.requestUrl).origin;
  const initiators = refreshInitiators(input.allowedOrigins, origin);
  return {
    session_identifier: input.sessionIdentifier,
    refresh_url: DBSC_REFRESH_PATH,
    scope: { origin, include_site: false, scope_specification: [] },
    credentials: [{ type: 'cookie', name: tokenCookieName(input.requestUrl), attributes: tokenCookieAttributeList() }],
    ...(initiators.length > 0 ? { allowed_refresh_initiators: initiators } : {}),
  };
}
