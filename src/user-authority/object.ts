import { DurableObject } from 'cloudflare:workers';
import { now } from '../clock';
import { type Config, configFrom } from '../config';
import {
  challengeLifetimeMs,
  type ChallengePurpose,
  judgeChallenge,
  MAX_LIVE_CHALLENGES_PER_SESSION,
  newChallenge,
} from '../dbsc/challenges';
import { type DbscPublicKey, verifyDbscProof } from '../dbsc/proof';
import { isUsableLink } from '../email/tokens';
import { type ErrorCode, StorageUnavailableError } from '../errors';
import { PASSKEY_CHALLENGE_TTL_MS } from '../passkeys/ceremony';
import {
  decideRenewal,
  type PresentedProof,
  type RenewalDecision,
  renewalPolicy,
  type SessionRecord,
  sessionState,
} from '../renewal/decide';
import { NOT_LIVE } from '../storage/liveness';
import type {
  DirectoryWrite,
  EventDetail,
  NewPasskey,
  PasskeyDeviceType,
  PasskeyRecord,
  SecurityEvent,
  StoredEvent,
  UserState,
} from '../storage/records';
import { Store } from '../storage/store';
import { UserRecords } from '../storage/user-records';
import { type AccessTokenClaims, accessTokenClaims } from '../tokens/claims';
import { keyringFor } from '../tokens/keys';
import { signAccessToken } from '../tokens/sign';
import {
  type AuthorityResult,
  type DbscEndCode,
  type DbscRefreshOutcome,
  done,
  failed,
  type ProofOfPossession,
  type Reauthentication,
  type TokenGrant,
} from './results';

/** Repeats of a coalesced event type within this window add to one event's count. */
const COALESCE_WINDOW_MS = 60 * 60 * 1000;
/** How often the object looks for sessions and events it may delete, while it holds any. */
const PRUNE_INTERVAL_MS = 24 * 60 * 60 * 1000;
/** Registration challenges kept per user, the newest: options asked for and never answered. */
const MAX_PENDING_REGISTRATIONS = 5;
/** Retries of writes owed to D1 back off from 1 s, doubling, up to this. */
const MAX_RETRY_DELAY_MS = 5 * 60 * 1000;

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

/**
 * The per-user authority: one instance per user (`idFromName(userId)`). It owns that user's hot
 * state in its own SQLite storage (user-records.ts): the user's instants, sessions, generations,
 * security events, and an outbox of writes owed to D1. Every write concerning the user passes
 * through it: login (by password or passkey), renewal, logout, logout-all, password change and
 * reset, email verification, admin revocation, clearing a login lockout, deleting the account,
 * adding and removing passkeys, and binding and refreshing a session through DBSC.
 *
 * - A renewal touches no D1: load, decide with `decideRenewal`, persist, in one synchronous
 *   storage transaction with nothing awaited in between (PROTOCOL.md invariant 5). The platform
 *   admits one live instance of an object's storage at a time, so no second instance or
 *   interleaving can mint one generation twice.
 * - D1 mirrors what the edge's strict check reads (each session's revocation, the user's
 *   `revoked_before`). A revocation is recorded here first, with its D1 write in the outbox in the
 *   same transaction, and acknowledged only once D1 has it; if D1 fails, the alarm retries until
 *   it lands (invariant 7). So D1 may lag behind a revocation for as long as D1 is down, but
 *   never claims a session is revoked that this object still renews.
 * - Operations that await D1 run one at a time (`#exclusive`): awaiting outgoing I/O lets the
 *   next request in, and no decision is held across such an await.
 * - The user's clock: instants in milliseconds, strictly increasing, persisted with the state.
 *
 * Only the methods below without `#` are reachable over RPC: its public API. Everything else is
 * `#private`, because TypeScript's `private` is still callable through a stub.
 */
export class UserAuthority extends DurableObject<Env> {
  readonly #records: UserRecords;
  readonly #directory: Store;
  readonly #config: Config;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#records = new UserRecords(ctx.storage.sql);
    this.#directory = new Store(env.DB);
    this.#config = configFrom(env);
    void ctx.blockConcurrencyWhile(async () => this.#records.migrate());
  }

  // ---- the public API --------------------------------------------------------------------

  /**
   * Opens a session after the Worker checked the password. D1 records the session's mirror row
   * first, and only if the hash it checked is still the user's (a password change in between
   * refuses the login); then this object records the session.
   */
  login(input: {
    userId: string;
    checkedPasswordHash: string;
    upgradedPasswordHash: string | null;
    client: string | null;
    throttleKey: { email: string; clientIp: string };
    /** The login's DPoP proof, verified by the Worker: the new session is bound to its key. */
    dpop: ProofOfPossession | null;
    emailVerified: boolean;
  }): Promise<AuthorityResult<TokenGrant>> {
    return this.#openSession(
      {
        userId: input.userId,
        client: input.client,
        detail: input.client === null ? null : { client: input.client },
        dpop: input.dpop,
        emailVerified: input.emailVerified,
      },
      async (pending, session) => ({
        opened: await this.#directory.recordLogin({
          pending,
          session,
          checkedPasswordHash: input.checkedPasswordHash,
          upgradedPasswordHash: input.upgradedPasswordHash,
          throttleKey: input.throttleKey,
        }),
        refusal: null,
      }),
    );
  }

  /**
   * Opens a session after the Worker verified a passkey's signature over a challenge it spent: a
   * sign-in like a password login in every respect (renewal rules, events, and `last_login_at`,
   * since the person proved their credentials). D1 records the session's mirror row first, only
   * if the passkey is still the user's and the signature counter presented is above the stored
   * one; a counter that is not is refused and logged as `passkey_counter_regressed`.
   */
  loginWithPasskey(input: {
    userId: string;
    passkeyId: string;
    counter: number;
    deviceType: PasskeyDeviceType;
    backedUp: boolean;
    userVerified: boolean;
    client: string | null;
    /** The sign-in's DPoP proof, verified by the Worker: the new session is bound to its key. */
    dpop: ProofOfPossession | null;
  }): Promise<AuthorityResult<TokenGrant>> {
    const detail: EventDetail = { method: 'passkey', passkey_id: input.passkeyId, user_verified: input.userVerified };
    if (input.client !== null) detail.client = input.client;
    const opening = { userId: input.userId, client: input.client, detail, dpop: input.dpop, emailVerified: false };
    return this.#openSession(opening, async (pending, session) => {
      const recorded = await this.#directory.recordPasskeyLogin({
        pending,
        session,
        credentialId: input.passkeyId,
        counter: input.counter,
        deviceType: input.deviceType,
        backedUp: input.backedUp,
      });
      switch (recorded.kind) {
        case 'recorded':
          return { opened: true, refusal: null };
        case 'gone':
          return { opened: false, refusal: null };
        case 'counter_regressed':
          return {
            opened: false,
            refusal: {
              type: 'passkey_counter_regressed',
              detail: { passkey_id: input.passkeyId, stored_counter: recorded.storedCounter, presented_counter: input.counter },
            },
          };
      }
    });
  }

  /**
   * Issues a registration challenge to a live session of the user: the Worker sends it in the
   * creation options, and only that session can spend it, before it expires (`addPasskey`).
   */
  async beginPasskeyRegistration(input: { userId: string; sessionId: string; challenge: string }): Promise<AuthorityResult<null>> {
    const refused = this.#transaction(() => {
      const user = this.#user(input.userId);
      const live = this.#liveSession(user, input.sessionId);
      if (live !== null) return live;
      const nowMs = now();
      this.#records.savePasskeyChallenge(
        input.challenge,
        input.sessionId,
        nowMs + PASSKEY_CHALLENGE_TTL_MS,
        nowMs,
        MAX_PENDING_REGISTRATIONS,
      );
      return null;
    });
    if (refused) return refused;
    await this.#keepPruning();
    return done;
  }

  /**
   * Stores a passkey whose registration the Worker verified, if the challenge it answers was
   * issued to this session and has not expired, and the session is still live here (whatever
   * D1's mirror told the strict check). The challenge is spent once D1 has answered, so a retry
   * after D1 failed can use it again and a replay after success cannot.
   */
  addPasskey(input: {
    userId: string;
    sessionId: string;
    challenge: string;
    passkey: NewPasskey;
  }): Promise<AuthorityResult<PasskeyRecord>> {
    return this.#exclusive(async () => {
      const user = this.#user(input.userId);
      const live = this.#liveSession(user, input.sessionId);
      if (live !== null) return live;
      if (!this.#records.holdsPasskeyChallenge(input.challenge, input.sessionId, now())) return failed('passkey_rejected');
      const at = this.#tick(user);
      this.#transaction(() => this.#records.saveUser(user));
      const stored = await this.#sendToDirectory(() => this.#directory.insertPasskey(user.userId, input.passkey, at));
      this.#transaction(() => {
        this.#records.deletePasskeyChallenge(input.challenge);
        if (stored) {
          this.#append({
            type: 'passkey_added',
            at,
            sessionId: input.sessionId,
            detail: { passkey_id: stored.id, name: stored.name },
          });
        }
      });
      return stored ? { ok: true, value: stored } : failed('passkey_rejected');
    });
  }

  /**
   * Deletes one of the user's passkeys, for a live session of theirs. Every account has a password
   * (registration requires one and nothing removes it), so no removal can leave the account
   * without a way to sign in. Sessions opened with the passkey stay: ending them is logout-all's.
   */
  removePasskey(input: { userId: string; sessionId: string; passkeyId: string }): Promise<AuthorityResult<null>> {
    return this.#exclusive(async () => {
      const user = this.#user(input.userId);
      const live = this.#liveSession(user, input.sessionId);
      if (live !== null) return live;
      const removed = await this.#sendToDirectory(() => this.#directory.deletePasskey(user.userId, input.passkeyId));
      if (!removed) return failed('not_found');
      this.#transaction(() => {
        // Loaded again: a renewal may have moved the user's state while D1 was awaited.
        const latest = this.#user(user.userId);
        const at = this.#tick(latest);
        this.#records.saveUser(latest);
        this.#append({ type: 'passkey_removed', at, sessionId: input.sessionId, detail: { passkey_id: input.passkeyId } });
      });
      return done;
    });
  }

  /**
   * PROTOCOL.md's renewal of a token whose signature and claims the Worker already verified.
   * `proof` is the proof of possession the Worker verified with the request, if any.
   */
  async renew(token: AccessTokenClaims, proof: ProofOfPossession | null = null): Promise<AuthorityResult<TokenGrant>> {
    const outcome = this.#decideAndPersist(token, proof, 'renew');
    switch (outcome.decision.kind) {
      case 'unproven':
        return failed('invalid_dpop_proof');
      case 'browser_renews':
      case 'rotate':
      case 'grace':
        return { ok: true, value: await this.#grant(outcome.session as SessionRecord, outcome.at, outcome.emailVerifiedAt) };
      case 'reuse':
        await this.#deliverSoon();
        return failed('token_reused');
      case 'mismatch':
        return failed('invalid_token');
      case 'inactive':
        return failed('session_inactive');
      case 'revoked':
        return failed('session_revoked');
      case 'expired':
        return failed('session_expired');
    }
  }

  /**
   * Ends the session of the presented token, following the decision table: the newest token, or
   * the previous one within the grace window, ends it as a logout; a superseded token beyond it is
   * reuse, recorded and answered as such. Idempotent for a session already ended.
   */
  logout(token: AccessTokenClaims, proof: ProofOfPossession | null = null): Promise<AuthorityResult<null>> {
    return this.#exclusive(async () => {
      const outcome = this.#decideAndPersist(token, proof, 'logout');
      await this.#deliver();
      switch (outcome.decision.kind) {
        case 'unproven':
          return failed('invalid_dpop_proof');
        case 'reuse':
          return failed('token_reused');
        case 'mismatch':
          return failed('invalid_token');
        case 'inactive':
          return failed('session_inactive');
        default:
          return done;
      }
    });
  }

  // ---- Device Bound Session Credentials (src/dbsc/) ---------------------------------------

  /**
   * The challenge a cookie-mode answer offers the browser for registering a DBSC key with the
   * session (`Secure-Session-Registration`). Only a live session not yet bound through DBSC is
   * offered one; `not_found` otherwise.
   */
  offerDbscRegistration(input: { userId: string; sessionId: string }): AuthorityResult<string> {
    return this.#transaction(() => {
      const user = this.#records.loadUser();
      const session = user?.userId === input.userId ? this.#records.loadSession(user.userId, input.sessionId) : null;
      if (!user || !session || session.dbscJkt !== null) return failed('not_found');
      if (sessionState(session, user, now(), renewalPolicy(this.#config)) !== 'live') return failed('not_found');
      return { ok: true, value: this.#issueDbscChallenge(session.id, 'registration') };
    });
  }

  /**
   * Binds the session of `token` (the cookie the registration came with, verified by the Worker)
   * to the DBSC key of a registration proof the Worker verified, once its challenge is found to be
   * one issued for this session, unused and unexpired; it is used up. Only the session's current
   * token may bind it, and a binding never changes. Answers the current token again (its cookie
   * now lives only as long as the token) and a challenge for the first refresh.
   */
  async registerDbsc(input: {
    token: AccessTokenClaims;
    proof: { jti: string; key: DbscPublicKey; jkt: string };
  }): Promise<AuthorityResult<{ grant: TokenGrant; challenge: string }>> {
    const bound = this.#transaction(() => {
      const user = this.#records.loadUser();
      const session = user?.userId === input.token.sub ? this.#records.loadSession(user.userId, input.token.sid) : null;
      if (!user || !session) return failed('session_revoked');
      const at = this.#tick(user);
      const state = sessionState(session, user, at, renewalPolicy(this.#config));
      if (state !== 'live') return failed(NOT_LIVE[state]);
      if (input.token.gen !== session.gen || session.dbscJkt !== null) return failed('invalid_dbsc_proof');
      if (judgeChallenge(this.#records.findDbscChallenge(input.proof.jti), session.id, at) !== 'ok') {
        return failed('invalid_dbsc_proof');
      }
      this.#records.bindDbscKey(session.id, input.proof.jkt, input.proof.key);
      // Whatever else was issued for the session was issued for its registration, now done.
      this.#records.forgetDbscChallenges(session.id);
      this.#records.saveUser(user);
      this.#append({ type: 'device_bound', at, sessionId: session.id, detail: { alg: input.proof.key.alg } });
      const challenge = this.#issueDbscChallenge(session.id, 'ahead');
      return { ok: true as const, value: { session: { ...session, dbscJkt: input.proof.jkt }, at, challenge } };
    });
    if (!bound.ok) return bound;
    return { ok: true, value: { grant: await this.#grant(bound.value.session, bound.value.at), challenge: bound.value.challenge } };
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
  async refreshDbsc(input: { userId: string; sessionId: string; proof: string | null }): Promise<DbscRefreshOutcome> {
    const found = this.#transaction((): { key: DbscPublicKey } | { ended: DbscEndCode } => {
      const user = this.#records.loadUser();
      const session = user?.userId === input.userId ? this.#records.loadSession(user.userId, input.sessionId) : null;
      const key = session?.dbscJkt ? this.#records.loadDbscKey(session.id) : null;
      if (!user || !session || !key) return { ended: 'session_revoked' as const };
      const state = sessionState(session, user, now(), renewalPolicy(this.#config));
      return state === 'live' ? { key } : { ended: NOT_LIVE[state] };
    });
    if ('ended' in found) return { kind: 'end', code: found.ended };
    const askAgain = (proofFailed: boolean): DbscRefreshOutcome =>
      this.#transaction(() => {
        if (proofFailed) {
          const user = this.#user(input.userId);
          this.#append({ type: 'proof_failed', at: this.#tick(user), sessionId: input.sessionId, detail: { via: 'dbsc' } });
          this.#records.saveUser(user);
        }
        return { kind: 'challenge', challenge: this.#issueDbscChallenge(input.sessionId, 'refresh') };
      });
    if (input.proof === null) return askAgain(false);
    const verified = await verifyDbscProof(input.proof, { use: 'refresh', key: found.key, nowMs: now() });
    if (!verified.ok) return askAgain(true);
    const outcome = this.#transaction(() => {
      const stored = this.#records.findDbscChallenge(verified.jti);
      if (judgeChallenge(stored, input.sessionId, now()) !== 'ok') return null;
      this.#records.deleteDbscChallenge(verified.jti);
      const user = this.#records.loadUser();
      const session = user ? this.#records.loadSession(user.userId, input.sessionId) : null;
      if (!user || !session) return { decision: { kind: 'revoked' } as const, session: null, at: now(), challenge: '' };
      const at = this.#tick(user);
      // The session's current token, as the browser would have shown it had it kept the cookie.
      const current = { gen: session.gen, iat: Math.floor(session.genMintedAt / 1000), exp: session.genExpiresAt };
      const decision = decideRenewal(current, session, user, at, renewalPolicy(this.#config), { kind: 'dbsc', jkt: verified.jkt });
      if (decision.kind !== 'rotate') {
        this.#records.saveUser(user);
        return { decision, session, at, challenge: '' };
      }
      const next = this.#rotate(user, session, decision.nextGen, at);
      return { decision, session: next, at, challenge: this.#issueDbscChallenge(session.id, 'ahead') };
    });
    if (outcome === null) return askAgain(false);
    if (outcome.decision.kind !== 'rotate' || outcome.session === null) {
      const { kind } = outcome.decision;
      return { kind: 'end', code: kind === 'expired' || kind === 'inactive' ? NOT_LIVE[kind] : 'session_revoked' };
    }
    return { kind: 'refreshed', grant: await this.#grant(outcome.session, outcome.at), challenge: outcome.challenge };
  }

  /** DELETE /auth/sessions/:id: ends one of the user's own sessions. */
  revokeSession(input: { userId: string; sessionId: string }): Promise<AuthorityResult<null>> {
    return this.#exclusive(async () => {
      const known = this.#transaction(() => {
        const user = this.#records.loadUser();
        const session = user ? this.#records.loadSession(user.userId, input.sessionId) : null;
        if (!user || user.userId !== input.userId || !session) return false;
        if (session.revokedAt === null) this.#endSession(user, session.id, 'logout', 'logout');
        return true;
      });
      await this.#deliver();
      return known ? done : failed('not_found');
    });
  }

  /** Every session of the user ends (`revoked_before = now`). */
  logoutAll(input: { userId: string; sessionId: string }): Promise<AuthorityResult<null>> {
    return this.#revokeAll(input.userId, 'logout_all', input.sessionId);
  }

  /** An operator's revocation of every session of the user. */
  adminRevoke(input: { userId: string }): Promise<AuthorityResult<null>> {
    return this.#revokeAll(input.userId, 'admin_revoked', null);
  }

  /**
   * Replaces the password, revokes every session, and opens a fresh one for the person who changed
   * it, labelled like the session they changed it from. The caller's session must still be live
   * here, whatever D1's mirror said to the strict check.
   */
  changePassword(input: {
    userId: string;
    sessionId: string;
    checkedPasswordHash: string;
    newPasswordHash: string;
    throttleKey: { email: string; clientIp: string };
  }): Promise<AuthorityResult<TokenGrant>> {
    return this.#exclusive(async () => {
      // Read before revoking anything: a hash that changed since the Worker checked it refuses
      // the change without signing anyone out.
      const hash = await this.#sendToDirectory(() => this.#directory.passwordHashOf(input.userId));
      if (hash !== input.checkedPasswordHash) return failed('invalid_credentials');
      // Judged after that await, not before: a reuse detected meanwhile ends the caller's session.
      const user = this.#user(input.userId);
      const current = this.#records.loadSession(user.userId, input.sessionId);
      const state = sessionState(current, user, now(), renewalPolicy(this.#config));
      if (!current || state !== 'live') return failed(NOT_LIVE[state === 'live' ? 'revoked' : state]);

      const grant = await this.#replacePassword({
        userId: user.userId,
        client: current.client,
        dpopJkt: current.dpopJkt,
        event: { type: 'password_changed', sessionId: input.sessionId },
        verifiesEmail: false,
        record: (pending, session) =>
          this.#directory.recordPasswordChange({
            pending,
            userId: user.userId,
            checkedPasswordHash: input.checkedPasswordHash,
            newPasswordHash: input.newPasswordHash,
            session,
            throttleKey: input.throttleKey,
          }),
      });
      // Only a write to D1 that bypassed this object can get here; its revocation stands.
      return grant ? { ok: true, value: grant } : failed('invalid_credentials');
    });
  }

  /**
   * POST /auth/password/reset: the password of the account whose reset link was followed is
   * replaced exactly as a change replaces it (every session revoked, a fresh one opened for the
   * person who followed the link), and the link is consumed in the same D1 transaction. Following
   * the link proves the mailbox, so the email counts as verified from then on.
   *
   * The link is read again here, inside this object's turn, before anything is revoked: two
   * requests with one link (a double click) are one at a time here, and the second finds the link
   * used and changes nothing, rather than signing out the session the first one opened.
   */
  resetPassword(input: {
    userId: string;
    tokenHash: string;
    newPasswordHash: string;
    client: string | null;
  }): Promise<AuthorityResult<TokenGrant>> {
    return this.#exclusive(async () => {
      const link = await this.#sendToDirectory(() => this.#directory.findLinkToken(input.tokenHash));
      if (!isUsableLink(link, 'reset', input.userId, now()) || link.passwordHashAtIssue === null) {
        return failed('invalid_reset_token');
      }
      const checkedPasswordHash = link.passwordHashAtIssue;
      const grant = await this.#replacePassword({
        userId: input.userId,
        client: input.client,
        dpopJkt: null,
        event: { type: 'password_reset', sessionId: null },
        verifiesEmail: true,
        record: (pending, session) =>
          this.#directory.recordPasswordChange({
            pending,
            userId: input.userId,
            checkedPasswordHash,
            newPasswordHash: input.newPasswordHash,
            session,
            throttleKey: null,
            resetLink: { tokenHash: input.tokenHash },
          }),
      });
      if (!grant) return failed('invalid_reset_token');
      await this.#keepPruning();
      return { ok: true, value: grant };
    });
  }

  /**
   * POST /auth/email/verify: D1 consumes the link and marks the email verified, guarded, in one
   * transaction; then this object records it, so the user's next tokens say `email_verified`.
   */
  markEmailVerified(input: { userId: string; tokenHash: string }): Promise<AuthorityResult<null>> {
    return this.#exclusive(async () => {
      const at = this.#transaction(() => {
        const user = this.#user(input.userId);
        const instant = this.#tick(user);
        this.#records.saveUser(user);
        return instant;
      });
      const pending = this.#records.pending();
      const verified = await this.#sendToDirectory(() =>
        this.#directory.recordEmailVerified({ pending: pending.writes, userId: input.userId, tokenHash: input.tokenHash, at }),
      );
      this.#transaction(() => {
        this.#records.delivered(pending.upToId);
        if (!verified) return;
        const user = this.#user(input.userId);
        this.#noteEmailVerified(user, at, 'link');
        this.#records.saveUser(user);
      });
      if (!verified) return failed('invalid_verification_token');
      await this.#keepPruning();
      return done;
    });
  }

  /** A failed password check for this user, coalesced with the ones before it. */
  recordLoginFailure(input: { userId: string }): void {
    this.#transaction(() => {
      const user = this.#user(input.userId);
      const at = this.#tick(user);
      this.#records.saveUser(user);
      this.#append({ type: 'login_failed', at, sessionId: null, detail: null });
    });
  }

  /**
   * A request presented a token of this session without a valid proof of the key the session is
   * bound to (rule 1b), found by the Worker before calling here. Coalesced per session: the user
   * learns that a copy of a token is out there, and a flood of them is one event.
   */
  recordProofFailure(input: { userId: string; sessionId: string }): void {
    this.#transaction(() => {
      const user = this.#records.loadUser();
      if (!user || user.userId !== input.userId || !this.#records.loadSession(user.userId, input.sessionId)) return;
      const at = this.#tick(user);
      this.#records.saveUser(user);
      this.#append({ type: 'proof_failed', at, sessionId: input.sessionId, detail: null });
    });
  }

  /** The user's live sessions, newest first, however many ended ones there are. */
  listSessions(input: { userId: string }): SessionSummary[] {
    const user = this.#records.loadUser();
    if (!user || user.userId !== input.userId) return [];
    const nowMs = now();
    const policy = renewalPolicy(this.#config);
    return this.#records
      .unrevokedSessions(user.userId)
      .filter((session) => sessionState(session, user, nowMs, policy) === 'live')
      .map((session) => ({
        id: session.id,
        client: session.client,
        createdAt: session.createdAt,
        lastRenewedAt: session.gen > 1 ? session.genMintedAt : null,
      }));
  }

  /** The user's security events, newest first, `limit` at a time, older than `before` if given. */
  listEvents(input: { userId: string; before: number | null; limit: number }): EventPage {
    const user = this.#records.loadUser();
    if (!user || user.userId !== input.userId) return { events: [], next: null };
    const page = this.#records.listEvents(input.before, input.limit + 1);
    const events = page.slice(0, input.limit);
    return { events, next: page.length > input.limit ? (events.at(-1)?.id ?? null) : null };
  }

  /**
   * Sends the writes owed to D1 (retrying with backoff until D1 has them), then deletes what can
   * no longer matter, and wakes again while anything is left to prune.
   */
  override async alarm(): Promise<void> {
    await this.#exclusive(async () => {
      await this.#deliver();
      return done;
    });
    if (this.#records.pending().writes.length > 0) return;
    const nowMs = now();
    const policy = renewalPolicy(this.#config);
    this.#transaction(() =>
      this.#records.prune({
        sessionsCreatedBefore: nowMs - policy.sessionMaxAgeMs,
        sessionsIdleBeforeSeconds: Math.floor((nowMs - policy.renewWindowMs) / 1000),
        eventsBefore: nowMs - this.#config.eventRetentionDays * 86_400_000,
        eventsKept: this.#config.eventRetentionCount,
        proofsBefore: nowMs,
        nowMs,
      }),
    );
    if (this.#records.holdsAnything()) await this.ctx.storage.setAlarm(nowMs + PRUNE_INTERVAL_MS);
  }

  /**
   * An operator clears the user's login lockout: D1 forgets the failed logins counted against the
   * user's email from every client address. Logged as `lockout_cleared` (with how many addresses
   * it freed) when there was anything to clear, so the user learns that guessing may resume.
   */
  clearLockout(input: { userId: string }): Promise<AuthorityResult<{ clearedAddresses: number }>> {
    return this.#exclusive(async () => {
      const cleared = await this.#sendToDirectory(() => this.#directory.clearLoginThrottle(input.userId));
      if (cleared > 0) {
        this.#transaction(() => {
          const user = this.#user(input.userId);
          const at = this.#tick(user);
          this.#records.saveUser(user);
          this.#append({ type: 'lockout_cleared', at, sessionId: null, detail: { addresses: cleared } });
        });
      }
      return { ok: true, value: { clearedAddresses: cleared } };
    });
  }

  /**
   * DELETE /auth/account: everything of the user goes, in D1 and here, for a live session of
   * theirs that proved the password or a passkey again.
   *
   * The order is what keeps an interrupted deletion safe (docs/SECURITY.md). First, in one
   * transaction here, every session is revoked (`revoked_before = now`: this object, which alone
   * decides renewals, renews none of them again) and the deletion of the user's D1 rows is queued
   * in the outbox. Then D1 deletes them in one transaction: the strict check, sign-ins, links and
   * passkeys find no user from then on. Only then does this object erase its storage and alarm.
   * A crash or a D1 failure between the steps leaves the deletion owed: the alarm (set before D1
   * is called) or the request's retry delivers it, and whichever operation delivers it erases the
   * records with it (user-records.ts, `delivered`). No step can leave a token able to renew.
   */
  deleteAccount(input: { userId: string; sessionId: string; proof: Reauthentication }): Promise<AuthorityResult<null>> {
    return this.#exclusive(async () => {
      // A retry of a deletion already under way finishes it: the caller proved the same things.
      if (!this.#deletionOwed(input.userId)) {
        const refused = await this.#reauthenticationRefused(input.userId, input.proof);
        if (refused !== null) return refused;
        // Judged after that await, not before: a reuse detected meanwhile ends the caller's session.
        const notLive = this.#transaction(() => {
          const user = this.#user(input.userId);
          const state = this.#liveSession(user, input.sessionId);
          if (state !== null) return state;
          const at = this.#tick(user);
          user.revokedBefore = at;
          this.#records.saveUser(user);
          this.#records.enqueue({ kind: 'delete_user', userId: user.userId, at });
          return null;
        });
        if (notLive !== null) return notLive;
        await this.#retryLater();
      }
      await this.#deliver();
      // The records are gone already (`delivered`); this drops the schema and the alarm too, then
      // lays the empty schema down again for any request that still reaches this instance.
      await this.ctx.blockConcurrencyWhile(async () => {
        await this.ctx.storage.deleteAlarm();
        await this.ctx.storage.deleteAll();
        this.#records.migrate();
      });
      return done;
    });
  }

  #deletionOwed(userId: string): boolean {
    return this.#records.pending().writes.some((write) => write.kind === 'delete_user' && write.userId === userId);
  }

  /**
   * Null when what the Worker verified still holds, read inside this object's turn, where every
   * change of the password hash and of the passkeys' counters is also made: the password hash is
   * still the one checked; the passkey is still the user's and its counter moved forward (as a
   * sign-in requires; a counter that did not is logged as a sign-in would log it).
   */
  async #reauthenticationRefused(userId: string, proof: Reauthentication): Promise<{ ok: false; code: ErrorCode } | null> {
    if (proof.kind === 'password') {
      const hash = await this.#sendToDirectory(() => this.#directory.passwordHashOf(userId));
      return hash === proof.checkedPasswordHash ? null : failed('invalid_credentials');
    }
    const stored = await this.#sendToDirectory(() => this.#directory.passkeyCounterOf(userId, proof.passkeyId));
    if (stored === null) return failed('invalid_credentials');
    if (stored < proof.counter || (stored === 0 && proof.counter === 0)) return null;
    this.#transaction(() => {
      const user = this.#user(userId);
      const at = this.#tick(user);
      this.#records.saveUser(user);
      this.#append({
        type: 'passkey_counter_regressed',
        at,
        sessionId: null,
        detail: { passkey_id: proof.passkeyId, stored_counter: stored, presented_counter: proof.counter },
      });
    });
    return failed('invalid_credentials');
  }

  // ---- opening a session -----------------------------------------------------------------

  /**
   * The one path of every sign-in. `record` writes the session's D1 mirror row, guarded by what
   * the Worker checked (the password hash, or the passkey and its counter), in one batch after the
   * writes this object owes D1; only if it was written does this object record the session (bound
   * to the login proof's key, if one came), move `last_login_at` (the user proved their
   * credentials: PROTOCOL.md rule 7) and log `login`. A refusal may name an event to log instead.
   */
  #openSession(
    input: {
      userId: string;
      client: string | null;
      detail: EventDetail | null;
      dpop: ProofOfPossession | null;
      emailVerified: boolean;
    },
    record: (
      pending: readonly DirectoryWrite[],
      session: SessionRecord,
    ) => Promise<{ opened: boolean; refusal: Pick<SecurityEvent, 'type' | 'detail'> | null }>,
  ): Promise<AuthorityResult<TokenGrant>> {
    return this.#exclusive(async () => {
      const user = this.#user(input.userId);
      const at = this.#tick(user);
      const fresh = this.#transaction(() => {
        this.#records.saveUser(user);
        return input.dpop === null || this.#records.useProofOnce(input.dpop.jti, input.dpop.usableUntilMs);
      });
      if (!fresh) return failed('invalid_dpop_proof');
      const session = this.#newSession(user.userId, input.client, at, input.dpop?.jkt ?? null);
      const pending = this.#records.pending();
      const { opened, refusal } = await this.#sendToDirectory(() => record(pending.writes, session));
      this.#transaction(() => {
        this.#records.delivered(pending.upToId);
        if (!opened) {
          if (refusal) this.#append({ ...refusal, at, sessionId: null });
          return;
        }
        this.#records.insertSession(session);
        // Loaded again: a renewal may have run while D1 was awaited (theft detected, the user's
        // revocation instant moved), and saving the copy from before would undo it.
        const latest = this.#user(user.userId);
        latest.lastLoginAt = at;
        if (input.emailVerified) this.#noteEmailVerified(latest, at, 'link');
        this.#records.saveUser(latest);
        this.#append({ type: 'login', at, sessionId: session.id, detail: input.detail });
      });
      if (!opened) return failed('invalid_credentials');
      await this.#keepPruning();
      return { ok: true, value: await this.#grant(session, at) };
    });
  }

  /** Null when `sessionId` is a live session of the user here; else the refusal to answer. */
  #liveSession(user: UserState, sessionId: string): { ok: false; code: ErrorCode } | null {
    const session = this.#records.loadSession(user.userId, sessionId);
    const state = sessionState(session, user, now(), renewalPolicy(this.#config));
    if (!session || state !== 'live') return failed(NOT_LIVE[state === 'live' ? 'revoked' : state]);
    return null;
  }

  // ---- load, decide, persist -------------------------------------------------------------

  /**
   * One synchronous transaction: load the session and the user's instants, decide with
   * `decideRenewal`, persist what the decision says. `purpose` is what the token was presented
   * for: a renewal mints, a logout ends the session instead.
   */
  #decideAndPersist(
    token: AccessTokenClaims,
    proof: ProofOfPossession | null,
    purpose: 'renew' | 'logout',
  ): { decision: RenewalDecision; session: SessionRecord | null; at: number; emailVerifiedAt: number | null } {
    // Read with the user, for the token a renewal signs after the transaction (#grant).
    let emailVerifiedAt: number | null = null;
    const outcome = this.#transaction(() => {
      const stored = this.#records.loadUserAndSession(token.sid);
      const user = stored?.user.userId === token.sub ? stored.user : null;
      const session = user ? (stored?.session ?? null) : null;
      emailVerifiedAt = user?.emailVerifiedAt ?? null;
      const at = user ? this.#tick(user) : now();
      // A proof counts once: a replayed one is no proof at all. Its jti is kept until the proof
      // is too old to be accepted anyway, in the same storage, so an eviction forgets nothing.
      const presented: PresentedProof | null =
        proof !== null && this.#records.useProofOnce(proof.jti, proof.usableUntilMs)
          ? { kind: proof.kind, jkt: proof.jkt }
          : null;
      const decision = decideRenewal(token, session, user, at, renewalPolicy(this.#config), presented);
      if (!user || !session) return { decision, session, at };
      switch (decision.kind) {
        case 'unproven':
          this.#records.saveUser(user);
          this.#append({ type: 'proof_failed', at, sessionId: session.id, detail: null });
          return { decision, session, at };
        case 'browser_renews':
        case 'rotate':
        case 'grace':
          if (purpose === 'logout') {
            this.#endSession(user, session.id, 'logout', 'logout');
            return { decision, session, at };
          }
          if (decision.kind !== 'rotate') return { decision, session, at };
          return { decision, session: this.#rotate(user, session, decision.nextGen, at), at };
        case 'expired':
          if (purpose === 'logout') this.#endSession(user, session.id, 'logout', 'logout');
          return { decision, session, at };
        case 'reuse':
          this.#recordReuse(user, session.id, decision.scope, at);
          return { decision, session, at };
        case 'mismatch':
          this.#records.saveUser(user);
          this.#append({
            type: 'generation_mismatch',
            at,
            sessionId: session.id,
            detail: { presented_gen: token.gen, stored_gen: session.gen },
          });
          return { decision, session, at };
        default:
          return { decision, session, at };
      }
    });
    return { ...outcome, emailVerifiedAt };
  }

  #rotate(user: UserState, session: SessionRecord, nextGen: number, at: number): SessionRecord {
    const next: SessionRecord = {
      ...session,
      gen: nextGen,
      genMintedAt: at,
      genExpiresAt: Math.floor(at / 1000) + this.#config.accessTokenTtlSeconds,
    };
    this.#records.advanceGeneration(next, session.gen);
    this.#records.saveClock(user);
    return next;
  }

  /** Rule 7: the session ends, and with scope "user" every session of the user; logged. */
  #recordReuse(user: UserState, sessionId: string, scope: 'session' | 'user', at: number): void {
    this.#records.revokeSession(sessionId, at, 'reuse');
    this.#records.enqueue({ kind: 'revoke_session', userId: user.userId, sessionId, at });
    if (scope === 'user') {
      user.revokedBefore = Math.max(user.revokedBefore, at);
      this.#records.enqueue({ kind: 'revoke_user', userId: user.userId, at });
    }
    this.#records.saveUser(user);
    this.#append({ type: 'reuse_detected', at, sessionId, detail: { scope } });
  }

  /** Marks one session revoked, owes D1 the same, logs `event`. Inside a transaction. */
  #endSession(user: UserState, sessionId: string, reason: string, event: 'logout'): void {
    const at = this.#tick(user);
    if (!this.#records.revokeSession(sessionId, at, reason)) return;
    this.#records.enqueue({ kind: 'revoke_session', userId: user.userId, sessionId, at });
    this.#records.saveUser(user);
    this.#append({ type: event, at, sessionId, detail: null });
  }

  #revokeAll(
    userId: string,
    event: 'logout_all' | 'admin_revoked',
    sessionId: string | null,
  ): Promise<AuthorityResult<null>> {
    return this.#exclusive(async () => {
      this.#transaction(() => {
        const user = this.#user(userId);
        const at = this.#tick(user);
        user.revokedBefore = at;
        this.#records.saveUser(user);
        this.#records.enqueue({ kind: 'revoke_user', userId, at });
        this.#append({ type: event, at, sessionId, detail: null });
      });
      await this.#deliver();
      return done;
    });
  }

  /**
   * What a password change and a reset share. Every session of the user is revoked here first,
   * with its D1 write owed, so that whatever happens to D1 below, this object renews none of them
   * again; then `record` sends D1 the pending writes, the new hash (guarded) and the fresh
   * session's mirror row in one batch; only if D1 took the new hash is the fresh session recorded
   * here and logged. Null when D1 refused it: the revocation stands.
   */
  async #replacePassword(input: {
    userId: string;
    client: string | null;
    /** The key the fresh session is bound to: the changing session's, so its holder keeps it. */
    dpopJkt: string | null;
    event: { type: 'password_changed' | 'password_reset'; sessionId: string | null };
    verifiesEmail: boolean;
    record: (pending: readonly DirectoryWrite[], session: { id: string; createdAt: number }) => Promise<boolean>;
  }): Promise<TokenGrant | null> {
    const { revokedBefore, at } = this.#transaction(() => {
      const user = this.#user(input.userId);
      const instants = { revokedBefore: this.#tick(user), at: this.#tick(user) };
      user.revokedBefore = instants.revokedBefore;
      this.#records.saveUser(user);
      this.#records.enqueue({ kind: 'revoke_user', userId: user.userId, at: instants.revokedBefore });
      return instants;
    });
    const session = this.#newSession(input.userId, input.client, at, input.dpopJkt);
    const pending = this.#records.pending();
    const changed = await this.#sendToDirectory(() => input.record(pending.writes, { id: session.id, createdAt: at }));
    this.#transaction(() => {
      this.#records.delivered(pending.upToId);
      if (!changed) return;
      this.#records.insertSession(session);
      // Loaded again, not kept across the await: a renewal may have moved the user's state since.
      const user = this.#user(input.userId);
      user.lastLoginAt = at;
      if (input.verifiesEmail) this.#noteEmailVerified(user, revokedBefore, 'password_reset');
      this.#records.saveUser(user);
      this.#append({ type: input.event.type, at: revokedBefore, sessionId: input.event.sessionId ?? session.id, detail: null });
    });
    return changed ? this.#grant(session, at) : null;
  }

  /**
   * The email is verified from `at` on (once: a later proof changes nothing), logged with how it
   * was proved. Inside a transaction; the caller saves `user`.
   */
  #noteEmailVerified(user: UserState, at: number, via: 'link' | 'password_reset'): void {
    if (user.emailVerifiedAt !== null) return;
    user.emailVerifiedAt = at;
    this.#append({ type: 'email_verified', at, sessionId: null, detail: { via } });
  }

  // ---- D1, the outbox and the alarm ------------------------------------------------------

  /** Runs a D1 call; on failure, the writes owed stay owed and the alarm will retry them. */
  async #sendToDirectory<T>(send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      if (this.#records.pending().writes.length > 0) {
        this.#transaction(() => this.#records.failedAttempt());
        await this.#retryLater();
      }
      throw error;
    }
  }

  /** Sends every write owed to D1; throws `StorageUnavailableError` if D1 does not take them. */
  async #deliver(): Promise<void> {
    const pending = this.#records.pending();
    if (pending.writes.length === 0) return;
    await this.#sendToDirectory(() => this.#directory.applyWrites(pending.writes));
    this.#transaction(() => this.#records.delivered(pending.upToId));
  }

  /**
   * After a revocation nobody waits for (reuse detected during a renewal): try to deliver now,
   * and leave it to the alarm if D1 is down; the renewal's own answer does not depend on it.
   */
  async #deliverSoon(): Promise<void> {
    await this.#retryLater();
    await this.#exclusive(async () => {
      await this.#deliver();
      return done;
    });
  }

  async #retryLater(): Promise<void> {
    const attempts = this.#records.pending().attempts;
    const at = now() + Math.min(1000 * 2 ** attempts, MAX_RETRY_DELAY_MS);
    const scheduled = await this.ctx.storage.getAlarm();
    if (scheduled === null || scheduled > at) await this.ctx.storage.setAlarm(at);
  }

  /** Makes sure the alarm will come back to prune what this object now holds. */
  async #keepPruning(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now() + PRUNE_INTERVAL_MS);
  }

  /** Issues and stores a DBSC challenge for `sessionId`; inside a transaction. */
  #issueDbscChallenge(sessionId: string, purpose: ChallengePurpose): string {
    const nowMs = now();
    const challenge = newChallenge(sessionId, nowMs, challengeLifetimeMs(purpose, this.#config.accessTokenTtlSeconds));
    this.#records.saveDbscChallenge(challenge, nowMs, MAX_LIVE_CHALLENGES_PER_SESSION);
    return challenge.value;
  }

  // ---- small pieces ----------------------------------------------------------------------

  /** Runs `work` once every call before it has finished; D1 failures become 503 results. */
  #exclusive<T>(work: () => Promise<AuthorityResult<T>>): Promise<AuthorityResult<T>> {
    const guarded = async (): Promise<AuthorityResult<T>> => {
      try {
        return await work();
      } catch (error) {
        if (error instanceof StorageUnavailableError) {
          console.error('latchkey: D1 unavailable', String(error.cause));
          return failed('temporarily_unavailable');
        }
        throw error;
      }
    };
    const run = this.#tail.then(guarded, guarded);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #transaction<T>(work: () => T): T {
    return this.ctx.storage.transactionSync(work);
  }

  /** The user's state, or a fresh one for a user this object has not seen yet. */
  #user(userId: string): UserState {
    return this.#records.loadUser() ?? { userId, revokedBefore: 0, lastLoginAt: 0, clock: 0, emailVerifiedAt: null };
  }

  /** The next instant of the user's clock: after now and after every instant handed out before. */
  #tick(user: UserState): number {
    user.clock = Math.max(now(), user.clock + 1);
    return user.clock;
  }

  #append(event: SecurityEvent): void {
    this.#records.appendEvent(event, COALESCE_WINDOW_MS);
  }

  #newSession(userId: string, client: string | null, at: number, dpopJkt: string | null): SessionRecord {
    return {
      id: crypto.randomUUID(),
      userId,
      client,
      createdAt: at,
      gen: 1,
      genMintedAt: at,
      genExpiresAt: Math.floor(at / 1000) + this.#config.accessTokenTtlSeconds,
      revokedAt: null,
      dpopJkt,
      dbscJkt: null,
    };
  }

  /**
   * The token of the session's current generation: the same every time it is asked for. Its
   * `email_verified` says whether the email was verified when the generation was minted, so a
   * grace answer after a verification is still the very same token. `verifiedAt` is the user's
   * `email_verified_at`, read here unless the caller read it in the same transaction (a renewal).
   */
  async #grant(
    session: SessionRecord,
    at: number,
    verifiedAt: number | null = this.#records.loadUser()?.emailVerifiedAt ?? null,
  ): Promise<TokenGrant> {
    const claims = accessTokenClaims({
      config: this.#config,
      session,
      jkt: session.dpopJkt,
      emailVerified: verifiedAt !== null && verifiedAt <= session.genMintedAt,
    });
    const keyring = await keyringFor(this.#config.signingKeysJson);
    return {
      accessToken: await signAccessToken(claims, keyring),
      tokenType: session.dpopJkt === null ? 'Bearer' : 'DPoP',
      expiresIn: Math.max(0, claims.exp - Math.floor(at / 1000)),
      expiresAtSeconds: claims.exp,
      userId: session.userId,
      sessionId: session.id,
      sessionEndsAt: session.createdAt + this.#config.sessionMaxAgeSeconds * 1000,
      deviceBound: session.dbscJkt !== null,
    };
  }
}
