/**
 * The one place that reads the wall clock, for latchkey and for this package's verifier alike.
 * Every instant comes from `now()`, so tests move time by hand instead of waiting out token
 * lifetimes. `testClock` is not part of the package's exports: only latchkey's own tests reach it.
 */

let fixedMs: number | undefined;
let offsetMs = 0;

/** Milliseconds since the Unix epoch, as latchkey sees it. */
export function now(): number {
  return fixedMs ?? Date.now() + offsetMs;
}

/** Whole seconds since the epoch, as JWT NumericDate claims use. */
export function nowSeconds(): number {
  return Math.floor(now() / 1000);
}

/**
 * Test control of the clock. Production code never calls these; they exist so that expiry,
 * idle and absolute limits can be tested without sleeping.
 */
export const testClock = {
  /** Freeze the clock at `ms`. */
  set(ms: number): void {
    fixedMs = ms;
  },
  /** Move the clock forward (frozen or not). */
  advance(ms: number): void {
    if (fixedMs === undefined) offsetMs += ms;
    else fixedMs += ms;
  },
  /** Back to the real clock. */
  reset(): void {
    fixedMs = undefined;
    offsetMs = 0;
  },
};
