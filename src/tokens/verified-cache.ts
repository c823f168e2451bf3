import type { AccessTokenClaims } from './claims';
import type { Keyring } from './keys';
import { isExpired, judgeExpiry, type VerifyExpectations, type VerifyResult, verifyAccessToken } from '../../packages/verify/src/tokens/verify';

/**
 * How many verified tokens one isolate remembers. An entry is a token (ours are about 400 bytes)
 * and its claims: about 1 KB, so about 4 MB at most of a 128 MB isolate. Only tokens that passed a
 * full verification are stored, so nobody can fill it with larger ones.
 */
export const VERIFIED_CACHE_CAPACITY = 4096;

interface Entry {
  claims: Readonly<AccessTokenClaims>;
  issuer: string;
  audience: string;
  /** The `nowMs` of the full verification. */
  verifiedAtMs: number;
}

/**
 * Remembers, per isolate, the tokens that passed a full verification, so that a client presenting
 * the same token for its whole life pays for one Ed25519 verify, not one per request.
 *
 * A hit answers exactly what a full verification would answer at that moment:
 * - keyed by the whole token string, signature included: a token that differs in any byte
 *   (a forged signature on known claims, another header) is a miss and is verified in full;
 * - scoped to one keyring object: a change of SIGNING_KEYS (a new keyring from `keyringFor`)
 *   empties it, so a key taken out of the ring stops verifying at once;
 * - the expected issuer and audience are part of the entry and must match;
 * - every time-dependent check is re-run: expiry (`exp` plus leeway against `nowMs`) on every hit,
 *   and the not-in-the-future checks (`iat`, `nbf`) hold because they passed at `verifiedAtMs`
 *   and only become truer as time advances; if the clock reads earlier than that, it is a miss.
 *
 * Bounded by `capacity`, least recently used out first. Failures are never stored: a bad token
 * costs a full verification each time, as without the cache.
 */
export class VerifiedTokenCache {
  private readonly entries = new Map<string, Entry>();
  private keyring: Keyring | undefined;
  /** Counters for the benchmark's report; nothing decides on them. */
  hits = 0;
  misses = 0;

  constructor(readonly capacity: number = VERIFIED_CACHE_CAPACITY) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
  }

  get size(): number {
    return this.entries.size;
  }

  /** `verifyAccessToken`, answered from memory when this token was verified before. */
  async verify(token: string, keyring: Keyring, expect: VerifyExpectations): Promise<VerifyResult> {
    if (keyring !== this.keyring) {
      this.entries.clear();
      this.keyring = keyring;
    }
    const entry = this.entries.get(token);
    if (
      entry &&
      entry.issuer === expect.issuer &&
      entry.audience === expect.audience &&
      expect.nowMs >= entry.verifiedAtMs
    ) {
      this.hits++;
      const result = judgeExpiry(entry.claims, expect);
      // Re-inserted to mark it most recently used; an expired one stays refused from here on.
      this.entries.delete(token);
      if (!isExpired(entry.claims, expect.nowMs)) this.entries.set(token, entry);
      return result;
    }
    this.misses++;
    const result = await verifyAccessToken(token, keyring, expect);
    // The keyring may have changed while this one was verified: its verdict is not for the new ring.
    if (result.ok && !isExpired(result.claims, expect.nowMs) && this.keyring === keyring) {
      this.remember(token, {
        claims: Object.freeze({ ...result.claims }),
        issuer: expect.issuer,
        audience: expect.audience,
        verifiedAtMs: expect.nowMs,
      });
    }
    return result;
  }

  private remember(token: string, entry: Entry): void {
    this.entries.delete(token);
    this.entries.set(token, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }
}

/** This isolate's cache, shared by every request it serves. */
export const verifiedTokens = new VerifiedTokenCache();

/** `verifyAccessToken` through this isolate's cache. */
export function verifyAccessTokenCached(token: string, keyring: Keyring, expect: VerifyExpectations): Promise<VerifyResult> {
  return verifiedTokens.verify(token, keyring, expect);
}
