import { getCookie, setCookie } from 'hono/cookie';
import type { CookieOptions } from 'hono/utils/cookie';
import { now } from '../clock';
import type { Config } from '../config';
import type { TokenGrant } from '../user-authority/results';
import type { AppContext } from './context';
import { deliveryFor } from './credentials';

/** The cookie's base name; over https it carries the `__Host-` prefix (RFC 6265bis §4.1.3.2). */
export const TOKEN_COOKIE = 'latchkey_at';

/**
 * The attributes the token cookie is always set with, besides its Max-Age. HttpOnly: page scripts
 * (and so XSS) cannot read it. SameSite=Strict: no other site's page or link makes the browser send
 * it. Secure: never over plain http, except to localhost, which browsers treat as secure. Path=/
 * and no Domain, as the `__Host-` prefix requires. DBSC's session instructions name the same ones.
 */
export const TOKEN_COOKIE_ATTRIBUTES = {
  httpOnly: true,
  secure: true,
  sameSite: 'Strict',
  path: '/',
} as const satisfies CookieOptions;

/**
 * The name the cookie has on the origin of `url`. Over https only the `__Host-` name is read: the
 * browser accepts that name only from this exact host, with Secure, Path=/ and no Domain, so a
 * sibling subdomain cannot plant a token of its choosing (cookie tossing, login CSRF). Plain http
 * exists for local development, where browsers refuse the prefix.
 */
export function tokenCookieName(url: string | URL): string {
  return new URL(url).protocol === 'https:' ? `__Host-${TOKEN_COOKIE}` : TOKEN_COOKIE;
}

function cookieName(c: AppContext): string {
  return tokenCookieName(c.req.url);
}

/** The access token the request carries in the cookie, if any. */
export function tokenFromCookie(c: AppContext): string | undefined {
  const value = getCookie(c, cookieName(c));
  return value === undefined || value === '' ? undefined : value;
}

/**
 * How much sooner than its token a DBSC-bound cookie goes. The browser refreshes only once the
 * cookie is gone; a request sent just before that must still arrive with a token that has not
 * expired, or it would be refused (a bound session's expired token renews nothing without the
 * browser's proof) and the page signed out.
 */
const DEVICE_BOUND_COOKIE_MARGIN_SECONDS = 1;

/**
 * Seconds the cookie lives, never past the session's absolute end, after which nothing could
 * renew it anyway:
 * - in general, long enough to renew the token it holds until the idle limit (RENEW_WINDOW after
 *   `exp`);
 * - for a session bound through DBSC, as long as its token, less a margin: the browser refreshes
 *   when the bound cookie is gone, with a proof of its key, and an expired token in the jar would
 *   only be a copy that renews nothing.
 */
export function tokenCookieMaxAge(config: Config, grant: TokenGrant, nowMs: number): number {
  const untilUseless = grant.deviceBound
    ? Math.floor((grant.expiresAtSeconds * 1000 - nowMs) / 1000) - DEVICE_BOUND_COOKIE_MARGIN_SECONDS
    : config.renewWindowSeconds + config.accessTokenTtlSeconds;
  const untilSessionEnds = Math.floor((grant.sessionEndsAt - nowMs) / 1000);
  return Math.max(0, Math.min(untilUseless, untilSessionEnds));
}

/** Sets the token cookie, with TOKEN_COOKIE_ATTRIBUTES. */
export function setTokenCookie(c: AppContext, grant: TokenGrant): void {
  setCookie(c, cookieName(c), grant.accessToken, { ...TOKEN_COOKIE_ATTRIBUTES, maxAge: tokenCookieMaxAge(c.var.config, grant, now()) });
}

/** Expires the token cookie at once (logout). */
export function clearTokenCookie(c: AppContext): void {
  setCookie(c, cookieName(c), '', { ...TOKEN_COOKIE_ATTRIBUTES, maxAge: 0 });
}

/** Expires the token cookie if the request's token came in it: a header token leaves the cookie alone. */
export function clearTokenCookieIfPresented(c: AppContext): void {
  if (deliveryFor(c.var.credential) === 'cookie') clearTokenCookie(c);
}

/**
 * Why a session the browser renewed (DBSC) ended, for the page to learn. The browser's refresh
 * clears the token cookie and ends its DBSC session, and the page's next request goes out without
 * a token: this cookie, set on the same answer, lets latchkey tell the page why (revoked,
 * expired, idle) instead of only that a token is missing. It holds a problem code, nothing secret.
 */
export const ENDED_COOKIE = 'latchkey_ended';
/** Long enough for a page that looks after the token expired; a page opened later just signs in. */
const ENDED_COOKIE_MAX_AGE_SECONDS = 3600;
const ENDED_CODES = ['session_revoked', 'session_expired', 'session_inactive'] as const;
export type EndedCode = (typeof ENDED_CODES)[number];

function endedCookieName(c: AppContext): string {
  return new URL(c.req.url).protocol === 'https:' ? `__Host-${ENDED_COOKIE}` : ENDED_COOKIE;
}

export function setEndedCookie(c: AppContext, code: EndedCode): void {
  setCookie(c, endedCookieName(c), code, { ...TOKEN_COOKIE_ATTRIBUTES, maxAge: ENDED_COOKIE_MAX_AGE_SECONDS });
}

/** The reason a browser-renewed session ended, if the request carries one; the cookie is cleared. */
export function takeEndedCode(c: AppContext): EndedCode | undefined {
  const value = getCookie(c, endedCookieName(c));
  if (value === undefined) return undefined;
  clearEndedCookie(c);
  return (ENDED_CODES as readonly string[]).includes(value) ? (value as EndedCode) : undefined;
}

/** Forgets why an earlier session ended: a new one was opened in this browser. */
export function clearEndedCookie(c: AppContext): void {
  if (getCookie(c, endedCookieName(c)) !== undefined) setCookie(c, endedCookieName(c), '', { ...TOKEN_COOKIE_ATTRIBUTES, maxAge: 0 });
}
