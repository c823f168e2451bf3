import type { MiddlewareHandler } from 'hono';
import { now } from '../clock';
import type { AppEnv } from './context';

/**
 * Puts latchkey's own clock on every answer as `Date` (RFC 9110 §6.6.1: an origin server with a
 * clock sends one). DPoP clients date their proofs by it (RFC 9449 §4.3: the server judges `iat`
 * by its clock), so a device whose clock is hours off still makes proofs latchkey accepts. The
 * edge adds a Date of its own, but `wrangler dev` does not, and the clock that judges proofs is
 * `now()`, so the answer states that one.
 */
export function serverDate(): MiddlewareHandler<AppEnv> {
  // An HTTP date has whole seconds (RFC 9110 §5.6.7): formatted once per second, not per answer.
  let second = Number.NaN;
  let formatted = '';
  return async (c, next) => {
    await next();
    const nowMs = now();
    if (Math.floor(nowMs / 1000) !== second) {
      second = Math.floor(nowMs / 1000);
      formatted = new Date(nowMs).toUTCString();
    }
    c.res.headers.set('date', formatted);
  };
}
