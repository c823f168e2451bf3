/**
 * Whether a failed call to another Worker or a Durable Object is the platform's own, passing
 * failure (the callee restarting, reset, overloaded, unreachable): the runtime flags those
 * `retryable` or `overloaded`. They are answered 503 with a short Retry-After; anything else is a
 * misconfiguration or a bug and surfaces as such.
 */
export function isTransientPlatformFailure(error: unknown): boolean {
  const flags = error as { retryable?: boolean; overloaded?: boolean } | null | undefined;
  return Boolean(flags?.retryable || flags?.overloaded);
}

/** The Retry-After of a 503 for a passing failure (the platform's, or D1's), in seconds. */
export const TRANSIENT_RETRY_AFTER_SECONDS = 1;
