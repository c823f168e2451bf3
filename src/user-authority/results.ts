import type { ErrorCode } from '../errors';

/** A freshly issued (or re-answered) access token. */
export interface TokenGrant {
  accessToken: string;
  /** `DPoP` when the session is bound to a DPoP key (RFC 9449 §5), else `Bearer`. */
  tokenType: 'Bearer' | 'DPoP';
  /** Seconds until the token's `exp`, counted from the answer. */
  expiresIn: number;
  sessionId: string;
  /** When the session reaches SESSION_MAX_AGE, in milliseconds. */
  sessionEndsAt: number;
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
