import { now } from '../clock';

/**
 * Where the `jti`s of accepted DPoP proofs are remembered, so that each proof is accepted once
 * (RFC 9449 §11.1). A proof is only acceptable for a short while after its `iat`, so an entry
 * only needs to outlive that: `untilMs`.
 *
 * Latchkey's own routes keep them in the user's Durable Object, one per user and strongly
 * consistent. A resource server chooses: `MemoryReplayCache` per isolate, or a store of its own
 * (a Durable Object keyed by the token's `cnf.jkt` is the natural one on Workers).
 */
export interface DpopReplayStore {
  /**
   * Records `jti` as used until `untilMs` (milliseconds since the epoch). Resolves to true the
   * first time, false when it was already recorded and has not lapsed: a replay. `jkt` is the
   * thumbprint of the key that signed the proof, for a store that keeps each client's proofs
   * apart (a Durable Object per key, say); a store may ignore it.
   */
  useOnce(jti: string, untilMs: number, jkt: string): Promise<boolean>;
}

/** How many proofs one isolate's cache remembers by default: about 1.5 MB at most. */
export const DEFAULT_REPLAY_CACHE_CAPACITY = 10_000;

/**
 * A `DpopReplayStore` in one isolate's memory, bounded by `capacity`.
 *
 * What it can and cannot promise: a replay that reaches the same isolate within the proof's window
 * is refused; one that reaches another isolate (Workers run many, and move traffic between them)
 * is not seen at all. So it narrows replay, it does not prevent it: a captured proof can still be
 * used against the same method and URL, with the same token, within the window. When more than
 * `capacity` proofs are live at once the oldest are forgotten first (the ones closest to lapsing),
 * so a flood of proofs costs memory only up to the bound, and weakens the cache, not the service.
 * Where a replay within the window matters, use a strongly consistent store.
 */
export class MemoryReplayCache implements DpopReplayStore {
  /** By `jti`, in insertion order; the value is `untilMs`. */
  private readonly entries = new Map<string, number>();

  constructor(
    readonly capacity: number = DEFAULT_REPLAY_CACHE_CAPACITY,
    private readonly clock: () => number = now,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
  }

  get size(): number {
    return this.entries.size;
  }

  async useOnce(jti: string, untilMs: number, _jkt?: string): Promise<boolean> {
    const nowMs = this.clock();
    const known = this.entries.get(jti);
    if (known !== undefined && known >= nowMs) return false;
    this.entries.delete(jti);
    this.prune(nowMs);
    this.entries.set(jti, untilMs);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    return true;
  }

  /** Drops lapsed entries from the front; entries arrive roughly in `untilMs` order, so this stops early. */
  private prune(nowMs: number): void {
    for (const [jti, untilMs] of this.entries) {
      if (untilMs >= nowMs) break;
      this.entries.delete(jti);
    }
  }
}
