import { now } from '../clock';
import type { Config } from '../config';
import { renewalPolicy, type SessionRecord, sessionLiveness } from '../sessions/decide';
import { NOT_LIVE } from '../storage/liveness';
import type { SecurityEvent, UserState } from '../storage/records';
import type { Store } from '../storage/store';
import type { UserRecords } from '../storage/user-records';
import { failed } from './results';
import type { ErrorCode } from '../errors';

/** Repeats of a coalesced event type within this window add to one event's count. */
const COALESCE_WINDOW_MS = 60 * 60 * 1000;

/**
 * What the user object's concerns share, handed to their functions by the object (object.ts)
 * and held there in a `#private` field: nothing in it is reachable over RPC.
 */
export interface AuthorityContext {
  /** The object's own SQLite storage. */
  readonly records: UserRecords;
  /** D1. */
  readonly directory: Store;
  readonly config: Config;
  /** The object's state: its alarm, `deleteAll`, `blockConcurrencyWhile`. */
  readonly state: DurableObjectState;
  /** The one way to write `records`: a synchronous storage transaction (object.ts). */
  readonly transaction: <T>(work: () => T) => T;
}

/** A refusal to answer, with the code the Worker turns into a problem document. */
export type Refusal = { ok: false; code: ErrorCode };

/** The state of a user this object has not recorded yet. */
export function freshUser(userId: string): UserState {
  return { userId, revokedBefore: 0, lastLoginAt: 0, clock: 0, emailVerifiedAt: null };
}

/** The user's state, or a fresh one for a user this object has not seen yet. */
export function userOf(authority: AuthorityContext, userId: string): UserState {
  return authority.records.loadUser() ?? freshUser(userId);
}

/** The user and one of their sessions, if this object holds both and the user is `userId`. */
export function loadOwnSession(
  authority: AuthorityContext,
  userId: string,
  sessionId: string,
): { user: UserState; session: SessionRecord } | null {
  const user = authority.records.loadUser();
  const session = user?.userId === userId ? authority.records.sessions.load(user.userId, sessionId) : null;
  return user && session ? { user, session } : null;
}

/** The next instant of the user's clock: after now and after every instant handed out before. */
export function tick(user: UserState): number {
  user.clock = Math.max(now(), user.clock + 1);
  return user.clock;
}

export function append(authority: AuthorityContext, event: SecurityEvent): void {
  authority.records.events.append(event, COALESCE_WINDOW_MS);
}

/** Null when `sessionId` is a live session of the user here; else the refusal to answer. */
export function refusedUnlessLive(authority: AuthorityContext, user: UserState, sessionId: string): Refusal | null {
  const session = authority.records.sessions.load(user.userId, sessionId);
  const liveness = sessionLiveness(session, user, now(), renewalPolicy(authority.config));
  return liveness === 'live' ? null : failed(NOT_LIVE[liveness]);
}

/**
 * The email is verified from `at` on (once: a later proof changes nothing), logged with how it
 * was proved. Inside a transaction; the caller saves `user`.
 */
export function noteEmailVerified(authority: AuthorityContext, user: UserState, at: number, via: 'link' | 'password_reset'): void {
  if (user.emailVerifiedAt !== null) return;
  user.emailVerifiedAt = at;
  append(authority, { type: 'email_verified', at, sessionId: null, detail: { via } });
}

/** Ticks the user's clock, saves the user and logs `event` at that instant; inside a transaction. */
export function logEvent(authority: AuthorityContext, userId: string, event: Omit<SecurityEvent, 'at'>): void {
  const user = userOf(authority, userId);
  const at = tick(user);
  authority.records.saveUser(user);
  append(authority, { ...event, at });
}
