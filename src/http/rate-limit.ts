import type { MiddlewareHandler } from 'hono';
import { ApiError, ConfigError } from '../errors';
import { type AppEnv, clientAddress } from './context';

/**
 * The Rate Limiting bindings of wrangler.toml, each counting requests per client address:
 * `ADDRESS_RATE_LIMITER` for the routes that hash a password, `PASSKEY_RATE_LIMITER` for the
 * passkey sign-in routes.
 */
export type AddressLimiter = 'ADDRESS_RATE_LIMITER' | 'PASSKEY_RATE_LIMITER';

const LIMITERS: readonly AddressLimiter[] = ['ADDRESS_RATE_LIMITER', 'PASSKEY_RATE_LIMITER'];

/**
 * The period of both limiters in wrangler.toml, in seconds (the binding accepts 10 or 60 and does
 * not report it back). A refused request is told to come back after one period: the
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
 * The passkey sign-in routes count on a limiter of their own (`PASSKEY_RATE_LIMITER`): they hash
 * no password, and a sign-in page that offers passkeys in its email field's autofill asks for
 * options on every load, which must not spend the password logins' allowance of everyone behind
 * the same address (an office, a carrier's NAT). That limit bounds what one address can make
 * latchkey write to D1 (each options request stores a challenge) and verify.
 *
 * Off with `ADDRESS_RATE_LIMIT=off` (test suites, load runs), both limiters alike.
 */
export function addressRateLimit(limiter: AddressLimiter = 'ADDRESS_RATE_LIMITER'): MiddlewareHandler<AppEnv> {
  if (!LIMITERS.includes(limiter)) throw new TypeError(`unknown rate limiter ${String(limiter)}`);
  return async (c, next) => {
    if (!c.var.config.addressRateLimit) return next();
    let allowed: boolean;
    try {
      allowed = (await c.env[limiter].limit({ key: clientAddress(c) })).success;
    } catch (error) {
      console.error(`latchkey: ${limiter} failed; letting the request through`, String(error));
      allowed = true;
    }
    if (!allowed) throw new ApiError('too_many_attempts', { retryAfterSeconds: ADDRESS_RATE_LIMIT_PERIOD_SECONDS });
    return next();
  };
}

/**
 * Refuses to start when the limit is on and a limiter's binding is missing (a wrangler.toml
 * without its `[[ratelimits]]` block): a deployment would otherwise run without the limit and say
 * nothing.
 */
export function assertAddressRateLimiter(env: Partial<Record<AddressLimiter, unknown>>, enabled: boolean): void {
  if (!enabled) return;
  for (const limiter of LIMITERS) {
    if (env[limiter] === undefined || env[limiter] === null) {
      throw new ConfigError(
        `ADDRESS_RATE_LIMIT is on but the ${limiter} binding is missing: add its [[ratelimits]] block of wrangler.toml`,
      );
    }
  }
}
