/**
 * The renewal decision of PROTOCOL.md as a pure function: presented token, stored records, the
 * user's clock reading and the policy in; a tagged decision out. No I/O, so every row of the
 * table is tested on its own. The user's Durable Object loads, calls this, persists, answers.
 */

/**
 * The generation of a verified token and its instants: what renewal needs of it (rule 1 has
 * already passed). Not where the token came from (header or cookie: src/http/presented-token.ts).
 */
export interface TokenGeneration {
  gen: number;
  /** Seconds. */
  iat: number;
  /** Seconds. */
  exp: number;
}

/** A session row, instants in milliseconds on the user's clock. */
export interface SessionRecord {
  id: string;
  userId: string;
  client: string | null;
  /** The login instant. */
  createdAt: number;
  /** The current (newest) generation. */
  gen: number;
  /** When the current generation was minted; also when the previous one was superseded. */
  genMintedAt: number;
  /** `exp` of the current generation's token, in seconds. */
  genExpiresAt: number;
  revokedAt: number | null;
  /**
   * RFC 7638 thumbprints of the keys the session is bound to, null where it is not: a DPoP key
   * (bound at login, carried by every token as `cnf.jkt`) and a Device Bound Session Credentials
   * key (bound by the browser after a cookie-mode login). Once set, a binding never changes.
   */
  dpopJkt: string | null;
  dbscJkt: string | null;
}

/** A proof of possession that came with the request: verified, fresh, and its `jti` never seen before. */
export interface PresentedProof {
  kind: 'dpop' | 'dbsc';
  /** RFC 7638 thumbprint of the key that signed it. */
  jkt: string;
}

/** The user's instants, in milliseconds. */
export interface UserInstants {
  /** Every session whose login is at or before this is revoked. */
  revokedBefore: number;
  /** The last time the user proved their credentials (login or password change). */
  lastLoginAt: number;
}

import type { Config } from '../config';

export interface RenewalPolicy {
  renewWindowMs: number;
  sessionMaxAgeMs: number;
  reuseGraceMs: number;
}

/** The policy of a configuration, in milliseconds. */
export function renewalPolicy(config: Config): RenewalPolicy {
  return {
    renewWindowMs: config.renewWindowSeconds * 1000,
    sessionMaxAgeMs: config.sessionMaxAgeSeconds * 1000,
    reuseGraceMs: config.reuseGraceSeconds * 1000,
  };
}

/**
 * Each decision carries the stored session it is about, as loaded: what the caller persists or
 * answers from. Rules 2 and 3 are about no live session (none may be stored at all), and say so.
 */
export type RenewalDecision =
  /**
   * Rule 1a: a session bound through DBSC, shown its current, unexpired token without a DBSC
   * proof. The browser renews it (its refresh carries the proof); the token stays as it is.
   */
  | { kind: 'browser_renews'; session: SessionRecord }
  /** Rule 1b: a session bound to a key, and no valid proof of it. Nothing is revoked. */
  | { kind: 'unproven'; session: SessionRecord }
  /** Rule 2: idle too long. */
  | { kind: 'inactive'; session: null }
  /** Rule 3: unknown or revoked session. */
  | { kind: 'revoked'; session: null }
  /** Rule 4: past the absolute limit. */
  | { kind: 'expired'; session: SessionRecord }
  /** Rule 5: mint generation `nextGen` of `session` (sessions/build.ts, `rotatedSession`). */
  | { kind: 'rotate'; session: SessionRecord; nextGen: number }
  /** Rule 6: answer the current generation's token again. */
  | { kind: 'grace'; session: SessionRecord }
  /** Rule 7: a superseded token shown again; revoke the session, or every session of the user. */
  | { kind: 'reuse'; session: SessionRecord; scope: 'session' | 'user' }
  /** Rule 8: a generation the records never reached. */
  | { kind: 'mismatch'; session: SessionRecord };

/** What `sessionLiveness` judges a session: API.md's liveness. */
export type SessionLiveness = 'live' | 'revoked' | 'expired' | 'inactive';

/**
 * Whether a session is revoked (rule 3) or past its absolute limit (rule 4). A session whose
 * login is at or before `revokedBefore` is revoked: the login instant is on the user's
 * millisecond clock, so a revocation and a login in the same second are ordered exactly, which
 * `iat` (whole seconds) could not do. Needs only the login instant and the revocation mark, so
 * the edge's strict check can judge D1's mirror of a session with it as well.
 */
export function revocationStanding(
  session: Pick<SessionRecord, 'createdAt' | 'revokedAt'> | null,
  user: Pick<UserInstants, 'revokedBefore'> | null,
  nowMs: number,
  policy: RenewalPolicy,
): 'live' | 'revoked' | 'expired' {
  if (!session || !user || session.revokedAt !== null || session.createdAt <= user.revokedBefore) return 'revoked';
  if (nowMs - session.createdAt > policy.sessionMaxAgeMs) return 'expired';
  return 'live';
}

/**
 * API.md's liveness, for strict routes and the sessions list: `revocationStanding`, then the idle
 * limit, which needs the session's newest token (`genExpiresAt`), kept only by the user's object.
 */
export function sessionLiveness(
  session: SessionRecord | null,
  user: UserInstants | null,
  nowMs: number,
  policy: RenewalPolicy,
): SessionLiveness {
  const standing = revocationStanding(session, user, nowMs, policy);
  if (standing !== 'live' || !session) return standing;
  return nowMs - session.genExpiresAt * 1000 > policy.renewWindowMs ? 'inactive' : 'live';
}

/**
 * Rule 7's scope. A superseded token minted at or after the user's last login means the thief
 * may hold credentials as fresh as the user's: every session goes. One minted before it is an old
 * threat the user has since answered by typing their password: only its own session goes, so an
 * attacker replaying an old token cannot sign the user out again and again.
 *
 * When the token was minted is known as precisely as the records allow: a generation-1 token at
 * the session's login instant; any superseded token before the current generation was minted.
 * Only past those does the whole-second `iat` decide, and its same second resolves toward safety.
 */
function reuseScope(token: TokenGeneration, session: SessionRecord, user: UserInstants): 'session' | 'user' {
  // Every token of a session is minted at or after that session's login.
  if (session.createdAt >= user.lastLoginAt) return 'user';
  if (token.gen === 1) return 'session';
  // A superseded token was minted before the current generation was.
  if (session.genMintedAt <= user.lastLoginAt) return 'session';
  return token.iat >= Math.floor(user.lastLoginAt / 1000) ? 'user' : 'session';
}

/** Rule 2: the token expired longer ago than the renew window; no stored record can change that. */
export function isInactive(token: TokenGeneration, nowMs: number, policy: RenewalPolicy): boolean {
  return nowMs - token.exp * 1000 > policy.renewWindowMs;
}

/**
 * Rule 1b: whether the request proves possession of the key that renews the session. An unbound
 * session needs no proof. A session bound through DBSC needs a DBSC proof of its key, even when it
 * is bound to a DPoP key as well: the browser's key is the one page scripts cannot reach. A
 * session bound to a DPoP key alone needs a DPoP proof of it.
 */
export function provesBinding(session: Pick<SessionRecord, 'dpopJkt' | 'dbscJkt'>, proof: PresentedProof | null): boolean {
  const required = session.dbscJkt !== null ? 'dbsc' : session.dpopJkt !== null ? 'dpop' : null;
  if (required === null) return true;
  return proof !== null && proof.kind === required && proof.jkt === (required === 'dbsc' ? session.dbscJkt : session.dpopJkt);
}

/**
 * Rule 1a. A session bound through DBSC renews only by the browser's own refresh, which proves
 * the key: its page cannot sign with that key, so whatever it presents itself (the cookie, with a
 * DPoP proof or without) mints nothing. The current token while it is unexpired is a bearer
 * credential like on any route; shown here it is answered with the session's standing (live:
 * the browser renews; else why not), so that a page learns when to look again and a copy learns
 * nothing it could not learn from any route. Anything else goes on to rule 1b.
 */
function browserRenewal(
  token: TokenGeneration,
  session: SessionRecord,
  user: UserInstants | null,
  nowMs: number,
  policy: RenewalPolicy,
  proof: PresentedProof | null,
): RenewalDecision | null {
  if (session.dbscJkt === null || proof?.kind === 'dbsc') return null;
  if (token.gen !== session.gen || token.exp * 1000 <= nowMs) return null;
  const liveness = sessionLiveness(session, user, nowMs, policy);
  if (liveness === 'live') return { kind: 'browser_renews', session };
  return liveness === 'expired' ? { kind: 'expired', session } : { kind: liveness, session: null };
}

/**
 * PROTOCOL.md's decision table, rules 1a and 1b and rules 2 to 8, in order. `proof` is the proof of
 * possession that came with the request, if any; whoever holds a copy of a bound session's token
 * without its key stops at rule 1b, before anything could be revoked.
 */
export function decideRenewal(
  token: TokenGeneration,
  session: SessionRecord | null,
  user: UserInstants | null,
  nowMs: number,
  policy: RenewalPolicy,
  proof: PresentedProof | null = null,
): RenewalDecision {
  const renewedByBrowser = session === null ? null : browserRenewal(token, session, user, nowMs, policy, proof);
  if (renewedByBrowser !== null) return renewedByBrowser;
  if (session !== null && !provesBinding(session, proof)) return { kind: 'unproven', session };
  if (isInactive(token, nowMs, policy)) return { kind: 'inactive', session: null };
  const standing = revocationStanding(session, user, nowMs, policy);
  if (standing === 'revoked' || !session || !user) return { kind: 'revoked', session: null };
  // Belt and braces for rule 3's "T minted at or before U.revoked_before": a token whose whole
  // `iat` second lies at or before the revocation instant is dead even if the session row says otherwise.
  if (token.iat * 1000 + 999 <= user.revokedBefore) return { kind: 'revoked', session: null };
  if (standing === 'expired') return { kind: 'expired', session };
  if (token.gen === session.gen) return { kind: 'rotate', session, nextGen: session.gen + 1 };
  if (token.gen === session.gen - 1 && nowMs - session.genMintedAt < policy.reuseGraceMs) return { kind: 'grace', session };
  if (token.gen < session.gen) return { kind: 'reuse', session, scope: reuseScope(token, session, user) };
  return { kind: 'mismatch', session };
}
