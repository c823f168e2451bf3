import type { ErrorCode } from '../errors';
import type { StoredEvent } from '../storage/records';

/** A freshly issued (or re-answered) access token. */
export interface TokenGrant {
  accessToken: string;
  /** `DPoP` when the session is bound to a DPoP key (RFC 9449 §5), else `Bearer`. */
  tokenType: 'Bearer' | 'DPoP';
  /** Seconds until the token's `exp`, counted from the answer. */
  expiresIn: number;
  /** The token's `exp`, in seconds since the epoch. */
  expiresAtSeconds: number;
  userId: string;
  sessionId: string;
  /** When the session reaches SESSION_MAX_AGE, in milliseconds. */
  sessionEndsAt: number;
  /**
   * The session is bound through DBSC: the browser renews it, so its cookie lives as long as this
   * token and no longer (the browser refreshes when the cookie is gone).
   */
  deviceBound: boolean;
}

/**
 * What the user's Durable Object answers. Tagged results rather than thrown errors: exceptions
 * lose their class crossing RPC, and a closed set of codes keeps internal reasons off the wire.
 */
export type AuthorityResult<T> = { ok: true; value: T } | { ok: false; code: ErrorCode };

export const done: AuthorityResult<null> = { ok: true, value: null };

export function failed(code: ErrorCode): { ok: false; code: ErrorCode } {
  return { ok: false, code };
}

/**
 * A proof of possession the Worker verified with a request (signature, method, URL, age, and the
 * key it was signed with); the user's object checks it is the session's key and was not used
 * before.
 */
export interface ProofOfPossession {
  kind: 'dpop' | 'dbsc';
  /** RFC 7638 thumbprint of the key that signed it. */
  jkt: string;
  jti: string;
  /** Until when the proof would be accepted: how long its `jti` is remembered. */
  usableUntilMs: number;
}

/** Why a DBSC refresh ends the browser's session. */
export type DbscEndCode = 'session_revoked' | 'session_expired' | 'session_inactive';

/** What a DBSC refresh comes to (dbsc.ts, `refresh`). */
export type DbscRefreshOutcome =
  /** The session cannot be refreshed (unknown, not bound through DBSC, or over): the browser ends it. */
  | { kind: 'end'; code: DbscEndCode }
  /** No valid proof over a live challenge: this one must be signed. */
  | { kind: 'challenge'; challenge: string }
  /** Renewed: the next token, and a challenge sent ahead for the refresh after. */
  | { kind: 'refreshed'; grant: TokenGrant; challenge: string };

/**
 * What the Worker verified before asking the user's object to delete the account: the password
 * (checked against this hash), or a passkey's signature over a challenge it spent (with the
 * signature counter the authenticator presented). The object checks, inside its turn, that it is
 * still so.
 */
export type Reauthentication =
  | { kind: 'password'; checkedPasswordHash: string }
  | { kind: 'passkey'; passkeyId: string; counter: number };

/** A live session of the user, as the sessions list shows it. */
export interface SessionSummary {
  id: string;
  client: string | null;
  createdAt: number;
  /** When its newest token was minted; null while it has only the login's. */
  lastRenewedAt: number | null;
}

export interface EventPage {
  events: StoredEvent[];
  /** Pass as `before` for the next (older) page; null on the last page. */
  next: number | null;
}
