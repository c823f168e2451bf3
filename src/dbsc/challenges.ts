import { base64url } from 'jose';

/**
 * DBSC challenges: what a proof signs as its `jti`, so that a proof cannot be made ahead of time
 * or used twice. Each one is random, belongs to one session, lives briefly and is used up by the
 * first proof that signs it.
 *
 * Single use matters in practice, not only in principle: Chromium keeps a signed proof and sends
 * it again for as long as the challenge it signs is the latest one it was given (measured with
 * Chromium 150, which resends the same proof on every refresh when the answers bring no new
 * challenge). A server that accepted a challenge twice would accept a proof copied off the wire or
 * out of a log, without the key.
 *
 * latchkey keeps them in the user's Durable Object, next to the session they belong to
 * (user-records.ts, which also bounds how many a session keeps); this module is the rule, free of
 * storage: how a challenge is made, how long each kind lives, and how a presented one is judged.
 */

/** A challenge as stored. */
export interface DbscChallenge {
  /** 256 random bits, unpadded base64url: the string a proof's `jti` must equal. */
  value: string;
  /** The latchkey session it was issued for. */
  sessionId: string;
  /** Milliseconds since the epoch; at and after this instant it is refused. */
  expiresAtMs: number;
}

/**
 * Why a challenge is issued, which sets how long it lives.
 * - `registration`: in the login answer's `Secure-Session-Registration`. The browser registers at
 *   once (Chromium within milliseconds; a TPM may take a second or two).
 * - `refresh`: in the 403 that asks a refresh for a proof; the browser answers at once.
 * - `ahead`: sent ahead of time on a registration or refresh answer, for the next refresh, which
 *   comes when the new cookie expires, ACCESS_TOKEN_TTL later (or up to two minutes sooner:
 *   Chromium refreshes ahead of expiry when a request comes in).
 */
export type ChallengePurpose = 'registration' | 'refresh' | 'ahead';

/** How long a challenge that is answered at once stays usable. */
export const DBSC_CHALLENGE_TTL_SECONDS = 60;

/**
 * How many live challenges one session keeps. Issuing one more drops the oldest, so that refresh
 * requests without a proof (from anyone who knows a session's identifier) cost a bounded amount of
 * storage; the worst they do is drop the challenge sent ahead of time, which costs the browser one
 * more round trip (a 403, then its proof).
 */
export const MAX_LIVE_CHALLENGES_PER_SESSION = 4;

/** Milliseconds a challenge issued for `purpose` lives. */
export function challengeLifetimeMs(purpose: ChallengePurpose, accessTokenTtlSeconds: number): number {
  const immediate = DBSC_CHALLENGE_TTL_SECONDS * 1000;
  return purpose === 'ahead' ? accessTokenTtlSeconds * 1000 + immediate : immediate;
}

/** A fresh challenge value: 256 bits from the platform's CSPRNG. */
export function newChallengeValue(): string {
  return base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
}

/** A new challenge for `sessionId`, usable for `lifetimeMs` from `nowMs`. */
export function newChallenge(sessionId: string, nowMs: number, lifetimeMs: number): DbscChallenge {
  return { value: newChallengeValue(), sessionId, expiresAtMs: nowMs + lifetimeMs };
}

/**
 * What a presented challenge is worth. Only `ok` uses it up; the others change nothing.
 * - `ok`: live and issued for this session.
 * - `unknown`: never issued, or already used (a used challenge is deleted), or dropped.
 * - `expired`: issued for this session, but past its lifetime.
 * - `other_session`: issued for another session (of the same user: each user's object only
 *   knows its own), which must not let one session's proof stand in for another's.
 */
export type ChallengeVerdict = 'ok' | 'unknown' | 'expired' | 'other_session';

/**
 * Judges the challenge a proof signs, given the stored challenge with that value (undefined if
 * none), the session the request is for, and the server's clock.
 */
export function judgeChallenge(found: DbscChallenge | undefined, sessionId: string, nowMs: number): ChallengeVerdict {
  if (found === undefined) return 'unknown';
  if (found.sessionId !== sessionId) return 'other_session';
  if (nowMs >= found.expiresAtMs) return 'expired';
  return 'ok';
}
