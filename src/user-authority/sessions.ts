import { now } from '../clock';
import type { ErrorCode } from '../errors';
import { rotatedSession } from '../sessions/build';
import {
  decideRenewal,
  type PresentedProof,
  type RenewalDecision,
  renewalPolicy,
  type SessionRecord,
  sessionLiveness,
} from '../sessions/decide';
import type { UserState } from '../storage/records';
import type { AccessTokenClaims } from '../tokens/claims';
import { type AuthorityContext, append, freshUser, loadOwnSession, type Refusal, tick, userOf } from './context';
import { type AuthorityResult, done, failed, type ProofOfPossession, type SessionSummary } from './results';

/** What a decision that mints nothing answers to a renewal (a logout ends `revoked` and `expired` quietly). */
const REFUSED = {
  unproven: 'invalid_dpop_proof',
  reuse: 'token_reused',
  mismatch: 'invalid_token',
  inactive: 'session_inactive',
  revoked: 'session_revoked',
  expired: 'session_expired',
} as const satisfies Record<Exclude<RenewalDecision['kind'], 'rotate' | 'grace' | 'browser_renews'>, ErrorCode>;

/** A renewal's outcome: the session whose current generation to sign, or the refusal. */
export type Renewal = { ok: true; session: SessionRecord; at: number; emailVerifiedAt: number | null } | Refusal;

/**
 * Load and decide, inside the caller's transaction: the token's session and the user's instants
 * in one read, a tick of the user's clock, the proof spent, then `decideRenewal`. A user this
 * object does not hold, or another user's token, is decided as a fresh user without that session
 * (rule 2 or 3), for which nothing is ever persisted.
 */
function loadAndDecide(
  authority: AuthorityContext,
  token: AccessTokenClaims,
  proof: ProofOfPossession | null,
): { user: UserState; decision: RenewalDecision; at: number } {
  const { records } = authority;
  const stored = records.loadUserAndSession(token.sid);
  const own = stored?.user.userId === token.sub ? stored : null;
  const user = own?.user ?? freshUser(token.sub);
  const at = tick(user);
  // A proof counts once: a replayed one is no proof at all. Its jti is kept until the proof
  // is too old to be accepted anyway, in the same storage, so an eviction forgets nothing.
  const presented: PresentedProof | null =
    proof !== null && records.sessions.useProofOnce(proof.jti, proof.usableUntilMs) ? { kind: proof.kind, jkt: proof.jkt } : null;
  const decision = decideRenewal(token, own?.session ?? null, user, at, renewalPolicy(authority.config), presented);
  return { user, decision, at };
}

/**
 * What a renewal and a logout record alike, whatever the token was presented for: a failed proof
 * (rule 1b), a reuse (rule 7), a generation never reached (rule 8). Nothing for the other kinds.
 */
function recordRefused(authority: AuthorityContext, user: UserState, decision: RenewalDecision, token: AccessTokenClaims, at: number): void {
  switch (decision.kind) {
    case 'unproven':
      authority.records.saveUser(user);
      append(authority, { type: 'proof_failed', at, sessionId: decision.session.id, detail: null });
      return;
    case 'reuse':
      recordReuse(authority, user, decision.session.id, decision.scope, at);
      return;
    case 'mismatch':
      authority.records.saveUser(user);
      append(authority, {
        type: 'generation_mismatch',
        at,
        sessionId: decision.session.id,
        detail: { presented_gen: token.gen, stored_gen: decision.session.gen },
      });
      return;
  }
}

/** PROTOCOL.md's renewal: load, decide, persist, in the caller's transaction. */
export function renewSession(authority: AuthorityContext, token: AccessTokenClaims, proof: ProofOfPossession | null): Renewal {
  const { user, decision, at } = loadAndDecide(authority, token, proof);
  switch (decision.kind) {
    case 'rotate':
      return { ok: true, session: rotate(authority, user, decision, at), at, emailVerifiedAt: user.emailVerifiedAt };
    case 'grace':
    case 'browser_renews':
      return { ok: true, session: decision.session, at, emailVerifiedAt: user.emailVerifiedAt };
    default:
      recordRefused(authority, user, decision, token, at);
      return failed(REFUSED[decision.kind]);
  }
}

/**
 * Ends the session of the presented token, in the caller's transaction, following the decision
 * table: the newest token, or the previous one within the grace window, ends it as a logout (so
 * does any token of a session past its absolute limit); a superseded token beyond it is reuse,
 * recorded and answered as such. Idempotent for a session already ended.
 */
export function logOut(authority: AuthorityContext, token: AccessTokenClaims, proof: ProofOfPossession | null): AuthorityResult<null> {
  const { user, decision, at } = loadAndDecide(authority, token, proof);
  switch (decision.kind) {
    case 'browser_renews':
    case 'rotate':
    case 'grace':
    case 'expired':
      endSession(authority, user, decision.session.id);
      return done;
    case 'revoked':
      return done;
    default:
      recordRefused(authority, user, decision, token, at);
      return failed(REFUSED[decision.kind]);
  }
}

/** Ends one of the user's sessions by id, in the caller's transaction; `not_found` if it is not theirs. */
export function endSessionById(authority: AuthorityContext, input: { userId: string; sessionId: string }): AuthorityResult<null> {
  const own = loadOwnSession(authority, input.userId, input.sessionId);
  if (own === null) return failed('not_found');
  if (own.session.revokedAt === null) endSession(authority, own.user, own.session.id);
  return done;
}

/** Persists rule 5: the next generation (sessions/build.ts), by compare-and-swap, and the clock. */
export function rotate(
  authority: AuthorityContext,
  user: UserState,
  decision: Extract<RenewalDecision, { kind: 'rotate' }>,
  at: number,
): SessionRecord {
  const next = rotatedSession(decision, at, authority.config.accessTokenTtlSeconds);
  authority.records.sessions.advanceGeneration(next, decision.session.gen);
  authority.records.saveClock(user);
  return next;
}

/** Rule 7: the session ends, and with scope "user" every session of the user; logged. */
function recordReuse(authority: AuthorityContext, user: UserState, sessionId: string, scope: 'session' | 'user', at: number): void {
  const { records } = authority;
  records.sessions.revoke(sessionId, at, 'reuse');
  records.outbox.enqueue({ kind: 'revoke_session', userId: user.userId, sessionId, at });
  if (scope === 'user') {
    user.revokedBefore = Math.max(user.revokedBefore, at);
    records.outbox.enqueue({ kind: 'revoke_user', userId: user.userId, at });
  }
  records.saveUser(user);
  append(authority, { type: 'reuse_detected', at, sessionId, detail: { scope } });
}

/** Marks one session revoked as a logout, owes D1 the same, logs it. Inside a transaction. */
function endSession(authority: AuthorityContext, user: UserState, sessionId: string): void {
  const at = tick(user);
  if (!authority.records.sessions.revoke(sessionId, at, 'logout')) return;
  authority.records.outbox.enqueue({ kind: 'revoke_session', userId: user.userId, sessionId, at });
  authority.records.saveUser(user);
  append(authority, { type: 'logout', at, sessionId, detail: null });
}

/** Every session of the user ends (`revoked_before` = now), owed to D1 and logged as `event`; in the caller's transaction. */
export function revokeAll(
  authority: AuthorityContext,
  input: { userId: string; event: 'logout_all' | 'admin_revoked'; sessionId: string | null },
): void {
  const user = userOf(authority, input.userId);
  const at = tick(user);
  user.revokedBefore = at;
  authority.records.saveUser(user);
  authority.records.outbox.enqueue({ kind: 'revoke_user', userId: input.userId, at });
  append(authority, { type: input.event, at, sessionId: input.sessionId, detail: null });
}

/** The user's live sessions, newest first, however many ended ones there are. */
export function liveSessions(authority: AuthorityContext, userId: string): SessionSummary[] {
  const user = authority.records.loadUser();
  if (!user || user.userId !== userId) return [];
  const nowMs = now();
  const policy = renewalPolicy(authority.config);
  return authority.records.sessions
    .unrevoked(user.userId)
    .filter((session) => sessionLiveness(session, user, nowMs, policy) === 'live')
    .map((session) => ({
      id: session.id,
      client: session.client,
      createdAt: session.createdAt,
      lastRenewedAt: session.gen > 1 ? session.genMintedAt : null,
    }));
}
