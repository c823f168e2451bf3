import { now } from '../clock';
import {
  challengeLifetimeMs,
  type ChallengePurpose,
  judgeChallenge,
  MAX_LIVE_CHALLENGES_PER_SESSION,
  newChallenge,
} from '../dbsc/challenges';
import { type DbscPublicKey, verifyDbscProof } from '../dbsc/proof';
import { currentGeneration } from '../sessions/build';
import { decideRenewal, renewalPolicy, type SessionRecord, sessionLiveness } from '../sessions/decide';
import { NOT_LIVE } from '../storage/liveness';
import type { AccessTokenClaims } from '../tokens/claims';
import { type AuthorityContext, append, loadOwnSession, logEvent, tick } from './context';
import { grant } from './grant';
import { type AuthorityResult, type DbscEndCode, type DbscRefreshOutcome, failed, type TokenGrant } from './results';
import { rotate } from './sessions';

/** Issues and stores a DBSC challenge for `sessionId`; inside a transaction. */
function issueChallenge(authority: AuthorityContext, sessionId: string, purpose: ChallengePurpose): string {
  const nowMs = now();
  const challenge = newChallenge(sessionId, nowMs, challengeLifetimeMs(purpose, authority.config.accessTokenTtlSeconds));
  authority.records.dbsc.saveChallenge(challenge, nowMs, MAX_LIVE_CHALLENGES_PER_SESSION);
  return challenge.value;
}

/** A live session of the user not yet bound through DBSC gets a registration challenge; in the caller's transaction. */
export function offerRegistration(authority: AuthorityContext, input: { userId: string; sessionId: string }): AuthorityResult<string> {
  const own = loadOwnSession(authority, input.userId, input.sessionId);
  if (own === null || own.session.dbscJkt !== null) return failed('not_found');
  if (sessionLiveness(own.session, own.user, now(), renewalPolicy(authority.config)) !== 'live') return failed('not_found');
  return { ok: true, value: issueChallenge(authority, own.session.id, 'registration') };
}

/**
 * Binds the token's session to the key of a verified registration proof, once its challenge is
 * found to be one issued for this session, unused and unexpired (used up here), and only from the
 * session's current token. Answers the current token again and a challenge for the first refresh.
 */
export async function register(
  authority: AuthorityContext,
  input: { token: AccessTokenClaims; proof: { jti: string; key: DbscPublicKey; jkt: string } },
): Promise<AuthorityResult<{ grant: TokenGrant; challenge: string }>> {
  const { records } = authority;
  const bound = authority.transaction(() => {
    const own = loadOwnSession(authority, input.token.sub, input.token.sid);
    if (own === null) return failed('session_revoked');
    const { user, session } = own;
    const at = tick(user);
    const liveness = sessionLiveness(session, user, at, renewalPolicy(authority.config));
    if (liveness !== 'live') return failed(NOT_LIVE[liveness]);
    if (input.token.gen !== session.gen || session.dbscJkt !== null) return failed('invalid_dbsc_proof');
    if (judgeChallenge(records.dbsc.findChallenge(input.proof.jti), session.id, at) !== 'ok') return failed('invalid_dbsc_proof');
    records.dbsc.bindKey(session.id, input.proof.jkt, input.proof.key);
    // Whatever else was issued for the session was issued for its registration, now done.
    records.dbsc.forgetChallenges(session.id);
    records.saveUser(user);
    append(authority, { type: 'device_bound', at, sessionId: session.id, detail: { alg: input.proof.key.alg } });
    const challenge = issueChallenge(authority, session.id, 'ahead');
    return { ok: true as const, value: { session: { ...session, dbscJkt: input.proof.jkt }, at, challenge } };
  });
  if (!bound.ok) return bound;
  return { ok: true, value: { grant: await grant(authority, bound.value.session, bound.value.at), challenge: bound.value.challenge } };
}

/**
 * The browser's refresh of a DBSC-bound session (`POST /auth/dbsc/refresh`), which names the
 * session and usually carries no token: the proof of the session's key is the credential.
 * - The session unknown, not bound through DBSC, or over (revoked, expired, idle): `end`, and
 *   nothing is written.
 * - No proof, a proof not by the session's key, or over a challenge that is not a live one of
 *   this session: `challenge`, a fresh one to sign. A proof by another key is logged as
 *   `proof_failed` (coalesced); a used or lapsed challenge is what a browser resending its last
 *   proof looks like, and is not.
 * - A valid proof: its challenge is used up and the renewal rules apply to the session as it
 *   stands, at its current generation, in one transaction: `refreshed`, with the next token and
 *   a challenge sent ahead for the refresh after.
 */
export async function refresh(
  authority: AuthorityContext,
  input: { userId: string; sessionId: string; proof: string | null },
): Promise<DbscRefreshOutcome> {
  const found = authority.transaction((): { key: DbscPublicKey } | { ended: DbscEndCode } => {
    const own = loadOwnSession(authority, input.userId, input.sessionId);
    const key = own?.session.dbscJkt ? authority.records.dbsc.loadKey(own.session.id) : null;
    if (own === null || key === null) return { ended: 'session_revoked' };
    const liveness = sessionLiveness(own.session, own.user, now(), renewalPolicy(authority.config));
    return liveness === 'live' ? { key } : { ended: NOT_LIVE[liveness] };
  });
  if ('ended' in found) return { kind: 'end', code: found.ended };
  if (input.proof === null) return askAgain(authority, input, false);
  const verified = await verifyDbscProof(input.proof, { use: 'refresh', key: found.key, nowMs: now() });
  if (!verified.ok) return askAgain(authority, input, true);
  const outcome = authority.transaction(() => renewByProof(authority, input, verified));
  if (outcome === null) return askAgain(authority, input, false);
  if ('ended' in outcome) return { kind: 'end', code: outcome.ended };
  return { kind: 'refreshed', grant: await grant(authority, outcome.session, outcome.at), challenge: outcome.challenge };
}

/** A fresh challenge to sign; a proof by another key is logged as `proof_failed` first. */
function askAgain(authority: AuthorityContext, input: { userId: string; sessionId: string }, proofFailed: boolean): DbscRefreshOutcome {
  return authority.transaction(() => {
    if (proofFailed) logEvent(authority, input.userId, { type: 'proof_failed', sessionId: input.sessionId, detail: { via: 'dbsc' } });
    return { kind: 'challenge', challenge: issueChallenge(authority, input.sessionId, 'refresh') };
  });
}

/**
 * Inside a transaction: the proof's challenge used up (null if it is not a live one of the
 * session), then the renewal rules on the session as it stands, at its current generation.
 */
function renewByProof(
  authority: AuthorityContext,
  input: { userId: string; sessionId: string },
  verified: { jti: string; jkt: string },
): null | { ended: DbscEndCode } | { session: SessionRecord; at: number; challenge: string } {
  const { records } = authority;
  if (judgeChallenge(records.dbsc.findChallenge(verified.jti), input.sessionId, now()) !== 'ok') return null;
  records.dbsc.deleteChallenge(verified.jti);
  const own = loadOwnSession(authority, input.userId, input.sessionId);
  if (own === null) return { ended: 'session_revoked' };
  const { user, session } = own;
  const at = tick(user);
  const proof = { kind: 'dbsc' as const, jkt: verified.jkt };
  const decision = decideRenewal(currentGeneration(session), session, user, at, renewalPolicy(authority.config), proof);
  if (decision.kind !== 'rotate') {
    records.saveUser(user);
    return { ended: decision.kind === 'expired' || decision.kind === 'inactive' ? NOT_LIVE[decision.kind] : 'session_revoked' };
  }
  return { session: rotate(authority, user, decision, at), at, challenge: issueChallenge(authority, session.id, 'ahead') };
}
