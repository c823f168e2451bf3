import type { MiddlewareHandler } from 'hono';
import { ApiError, ConfigError } from '../errors';
import { type AppEnv, clientAddress, configOf } from './context';

/**
 * The period of `ADDRESS_RATE_LIMITER` in wrangler.toml, in seconds (the binding accepts 10 or
 * 60 and does not report it back). A refused request is told to come back after one period: the
 * limiter counts in windows of this length, so by then the address has a fresh allowance.
 */
export const ADDRESS_RATE_LIMIT_PERIOD_SECONDS = 60;

/**
 * A limit per client address, whatever the email, in front of every route that hashes a password
 * (or, later, sends mail): login, register, password change.
 *
 * The threat is password-hash exhaustion. Each of these requests costs an scrypt hash, about
 * 125 ms of the isolate's one thread, and the login throttle counts per (email, address), so a
 * client that tries many emails (credential stuffing) is never throttled by it. This limit caps
 * what one address can make the service hash, before anything is parsed or hashed; the hash budget
 * (passwords/budget.ts) caps what all addresses together can.
 *
 * Keyed like the login throttle (http/address.ts): an IPv4 address, or an IPv6 /64. Answered 429
 * `too_many_attempts` with `Retry-After`, the code API.md gives login's throttling, so clients
 * handle both limits alike. If the limiter itself fails the request goes on: refusing every sign-in
 * while the limiter is down would be an outage of its own, and the hash budget still bounds the CPU.
 *
 * Off with `ADDRESS_RATE_LIMIT=off` (test suites, load runs).
 */
export function addressRateLimit(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!configOf(c).addressRateLimit) return next();
    let allowed: boolean;
    try {
      allowed = (await c.env.ADDRESS_RATE_LIMITER.limit({ key: clientAddress(c) })).success;
    } catch (error) {
      console.error('latchkey: ADDRESS_RATE_LIMITER failed; letting the request through', String(error));
      allowed = true;
    }
    if (!allowed) throw new ApiError('too_many_attempts', { retryAfterSeconds: ADDRESS_RATE_LIMIT_PERIOD_SECONDS });
    return next();
  };
}

/**
 * Refuses to start when the limit is on and its binding is missing (a wrangler.toml without the
 * `[[ratelimits]]` block): a deployment would otherwise run without the limit and say nothing.
 */
export function assertAddressRateLimiter(env: { ADDRESS_RATE_LIMITER?: unknown }, enabled: boolean): void {
  if (enabled && (env.ADDRESS_RATE_LIMITER === undefined || env.ADDRESS_RATE_LIMITER === null)) {
    throw new ConfigError(
      'ADDRESS_RATE_LIMIT is on but the ADDRESS_RATE_LIMITER binding is missing: add the [[ratelimits]] block of wrangler.toml',
    );
  }
}
