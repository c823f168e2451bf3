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
 * would admit it. The rate is a share of the isolate's time: each hash is timed (hash.ts reports
 * it), and the turns are spaced so that hashes of that length fill `share` of the time, so a
 * slower or busier machine admits fewer. Admission looks at nothing but the time, never at the
 * email or the account, so an unknown email and a wrong password wait, or are refused, exactly
 * alike. The hash strength is unchanged: only how much of the isolate hashing may take is bounded.
 */
export interface HashBudgetPolicy {
  /** The share of the isolate's time that hashing may take, sustained: above 0, at most 1. */
  share: number;
  /**
   * What a hash is taken to cost, in milliseconds, until one has been timed, and the least it is
   * ever taken to cost. Inside a Worker the clock does not move while code runs (a Spectre
   * mitigation), only when I/O completes, so a hash can be timed only to the next I/O.
   */
  assumedHashMs: number;
  /** Hashes that may run back to back after a quiet spell. */
  burst: number;
  /**
   * Longest a request waits for its turn, in milliseconds, and never less than one turn's
   * spacing (so one request can always queue); beyond it, 503 at once.
   */
  maxWaitMs: number;
}

/**
 * A quarter of the isolate's time: with a hash of 125 ms (this row of scrypt on this machine and
 * on production CPUs) two hashes a second, leaving three quarters to everything else; fewer when
 * hashes take longer. bench/RESULTS.md ("A login storm") measures it against half. A burst of two lets two
 * people who sign in at the same moment both go at once. A wait of at most a second queues a few
 * logins; past that, waiting longer would only hold connections open, so the client is told when
 * to come back instead.
 */
export const HASH_BUDGET_POLICY: Readonly<HashBudgetPolicy> = { share: 0.25, assumedHashMs: 125, burst: 2, maxWaitMs: 1000 };

/** Weight of the newest timing in the running estimate of a hash's cost. */
const NEWEST_TIMING_WEIGHT = 0.25;

export class HashBudget {
  readonly #share: number;
  readonly #assumedHashMs: number;
  readonly #burst: number;
  readonly #maxWaitMs: number;
  readonly #clock: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  /** Running estimate of what one hash takes, in ms; undefined until one has been timed. */
  #hashMs: number | undefined;
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
    if (!(policy.share > 0 && policy.share <= 1) || !(policy.assumedHashMs > 0) || !(policy.burst >= 1) || !(policy.maxWaitMs >= 0)) {
      throw new RangeError('a hash budget needs 0 < share <= 1, assumedHashMs > 0, burst >= 1 and maxWaitMs >= 0');
    }
    this.#share = policy.share;
    this.#assumedHashMs = policy.assumedHashMs;
    this.#burst = policy.burst;
    this.#maxWaitMs = policy.maxWaitMs;
    this.#clock = clock;
    this.#sleep = sleep;
  }

  /**
   * The spacing of turns now, in ms: one hash's estimated cost divided by the share. Whole
   * milliseconds, so that sums of them with epoch instants stay exact: in fractions, one turn's
   * wait could come out a hair longer than one turn and be refused.
   */
  get intervalMs(): number {
    return Math.ceil(Math.max(this.#assumedHashMs, this.#hashMs ?? 0) / this.#share);
  }

  /** The longest wait now, in ms: `maxWaitMs`, or one turn's spacing if that is longer. */
  get longestWaitMs(): number {
    return Math.max(this.#maxWaitMs, this.intervalMs);
  }

  /**
   * Resolves when `hashes` hashes may run, having waited at most `longestWaitMs`; throws ApiError 503
   * `temporarily_unavailable` with `retryAfterSeconds` when the wait would be longer. Call it
   * before anything that depends on who is signing in.
   */
  async admit(hashes = 1): Promise<void> {
    const nowMs = this.#clock();
    const startMs = this.#startOf(nowMs);
    const waitMs = startMs - nowMs;
    const longestWaitMs = this.longestWaitMs;
    if (waitMs > longestWaitMs) {
      this.#refused += 1;
      throw new ApiError('temporarily_unavailable', { retryAfterSeconds: (waitMs - longestWaitMs) / 1000 });
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

  /**
   * Takes the time one hash held the isolate into the estimate. A time of zero says nothing (the
   * clock did not move) and is ignored.
   */
  observe(hashMs: number): void {
    if (!(hashMs > 0) || !Number.isFinite(hashMs)) return;
    this.#hashMs = this.#hashMs === undefined ? hashMs : this.#hashMs + NEWEST_TIMING_WEIGHT * (hashMs - this.#hashMs);
  }

  /** Since this budget was made: hashes admitted or charged, admissions refused, and the waits it imposed in ms. */
  get counts(): { admitted: number; refused: number; waitedMs: number } {
    return { admitted: this.#admitted, refused: this.#refused, waitedMs: this.#waitedMs };
  }

  #scheduledUntil(nowMs: number): number {
    // Further ahead than admissions could have put it: the clock stepped back. Start over rather
    // than refuse every login until the clock catches up.
    const horizonMs = this.longestWaitMs + (this.#burst + 16) * this.intervalMs;
    if (this.#scheduledUntilMs - nowMs > horizonMs) this.#scheduledUntilMs = nowMs;
    return Math.max(this.#scheduledUntilMs, nowMs);
  }

  #startOf(nowMs: number): number {
    return Math.max(nowMs, this.#scheduledUntil(nowMs) - (this.#burst - 1) * this.intervalMs);
  }

  #book(nowMs: number, hashes: number): void {
    this.#scheduledUntilMs = this.#scheduledUntil(nowMs) + hashes * this.intervalMs;
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

/** Reports how long one hash held this isolate, in ms (hash.ts, for every hash, switch or not). */
export function observeHash(hashMs: number): void {
  isolateHashBudget.observe(hashMs);
}
