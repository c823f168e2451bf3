import type { ErrorCode } from '../errors';

/** A freshly issued (or re-answered) access token. */
export interface TokenGrant {
  accessToken: string;
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
