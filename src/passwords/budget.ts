import { now } from '../clock';
import { ApiError } from '../errors';

/**
 * A bounded share of the isolate for password hashing.
 *
 * An scrypt hash (hash.ts) is about 125 ms of CPU on the isolate's one thread, and nothing else
 * that isolate serves (token checks, renewals, its Durable Objects) runs while it does. Left
 * alone, a few logins in flight keep the thread busy hashing and everything else waits behind
 * them: in local workerd two logins continuously in flight took `GET /api/me` from about 4,200 to
 * 120 requests a second. The per-address limit (http/rate-limit.ts) does not help against many
 * addresses; this does, whatever their number.
 *
 * Hashes are admitted at a sustained rate with a small burst, the generic cell rate algorithm
 * (GCRA, ITU-T I.371): a request that needs a hash either gets its turn at once, waits for it
 * (at most `maxWaitMs`), or is refused with 503 `temporarily_unavailable` and the Retry-After that
 * would admit it. Admission looks at nothing but the time, never at the email or the account, so
 * an unknown email and a wrong password wait, or are refused, exactly alike. The hash strength is
 * unchanged: only how many hashes an isolate runs per second is bounded.
 */
export interface HashBudgetPolicy {
  /** Hashes admitted per second, sustained. */
  hashesPerSecond: number;
  /** Hashes that may run back to back after a quiet spell. */
  burst: number;
  /** Longest a request waits for its turn, in milliseconds; beyond it, 503 at once. */
  maxWaitMs: number;
}

/**
 * Two hashes a second: at about 125 ms each, a quarter of the isolate's time, leaving three
 * quarters to everything else (bench/RESULTS.md, "A login storm", measures the choice against
 * three a second). A burst of two lets two people who sign in at the same moment both go at once.
 * A wait of at most a second keeps up to four logins queued; past that, waiting longer would only
 * hold connections open, so the client is told when to come back instead.
 */
export const HASH_BUDGET_POLICY: Readonly<HashBudgetPolicy> = { hashesPerSecond: 2, burst: 2, maxWaitMs: 1000 };

export class HashBudget {
  readonly #intervalMs: number;
  readonly #toleranceMs: number;
  readonly #maxWaitMs: number;
  /** Past this, the schedule cannot be the result of admissions: the clock stepped back. */
  readonly #horizonMs: number;
  readonly #clock: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  /** GCRA's theoretical arrival time: when every hash admitted so far has had its turn at the sustained rate. */
  #scheduledUntilMs = Number.NEGATIVE_INFINITY;
  #admitted = 0;
  #refused = 0;
  #waitedMs = 0;

  constructor(
    policy: HashBudgetPolicy,
    clock: () => number = now,
    sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {
    if (!(policy.hashesPerSecond > 0) || !(policy.burst >= 1) || !(policy.maxWaitMs >= 0)) {
      throw new RangeError('a hash budget needs hashesPerSecond > 0, burst >= 1 and maxWaitMs >= 0');
    }
    this.#intervalMs = 1000 / policy.hashesPerSecond;
    this.#toleranceMs = (policy.burst - 1) * this.#intervalMs;
    this.#maxWaitMs = policy.maxWaitMs;
    this.#horizonMs = this.#maxWaitMs + this.#toleranceMs + 16 * this.#intervalMs;
    this.#clock = clock;
    this.#sleep = sleep;
  }

  /**
   * Resolves when `hashes` hashes may run, having waited at most `maxWaitMs`; throws ApiError 503
   * `temporarily_unavailable` with `retryAfterSeconds` when the wait would be longer. Call it
   * before anything that depends on who is signing in.
   */
  async admit(hashes = 1): Promise<void> {
    const nowMs = this.#clock();
    const startMs = this.#startOf(nowMs);
    const waitMs = startMs - nowMs;
    if (waitMs > this.#maxWaitMs) {
      this.#refused += 1;
      throw new ApiError('temporarily_unavailable', { retryAfterSeconds: (waitMs - this.#maxWaitMs) / 1000 });
    }
    this.#book(nowMs, hashes);
    if (waitMs > 0) {
      this.#waitedMs += waitMs;
      await this.#sleep(waitMs);
    }
  }

  /**
   * Books hashes that run now, unasked: the upgrade of an old-parameter hash after a successful
   * login. They are never refused (the person has proved their password), but later admissions
   * wait for them.
   */
  charge(hashes = 1): void {
    this.#book(this.#clock(), hashes);
  }

  /** Since this budget was made: hashes admitted or charged, admissions refused, and the waits it imposed in ms. */
  get counts(): { admitted: number; refused: number; waitedMs: number } {
    return { admitted: this.#admitted, refused: this.#refused, waitedMs: this.#waitedMs };
  }

  #scheduledUntil(nowMs: number): number {
    if (this.#scheduledUntilMs - nowMs > this.#horizonMs) this.#scheduledUntilMs = nowMs;
    return Math.max(this.#scheduledUntilMs, nowMs);
  }

  #startOf(nowMs: number): number {
    return Math.max(nowMs, this.#scheduledUntil(nowMs) - this.#toleranceMs);
  }

  #book(nowMs: number, hashes: number): void {
    this.#scheduledUntilMs = this.#scheduledUntil(nowMs) + hashes * this.#intervalMs;
    this.#admitted += hashes;
  }
}

/**
 * This isolate's budget. Module state lives exactly as long as the isolate, which is what the
 * budget shares out: every request the isolate serves (its Durable Objects included) runs on the
 * one thread that the hashes would otherwise take.
 */
export const isolateHashBudget = new HashBudget(HASH_BUDGET_POLICY);

/** Admits `hashes` from this isolate's budget when `HASH_BUDGET` is on; at once when it is off. */
export function admitHashes(enabled: boolean, hashes: number): Promise<void> {
  return enabled ? isolateHashBudget.admit(hashes) : Promise.resolve();
}

/** Books `hashes` that run now, unasked, when `HASH_BUDGET` is on (see `HashBudget.charge`). */
export function chargeHashes(enabled: boolean, hashes: number): void {
  if (enabled) isolateHashBudget.charge(hashes);
}
