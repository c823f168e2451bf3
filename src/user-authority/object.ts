import { DurableObject } from 'cloudflare:workers';
import { configFrom } from '../config';
import type { DbscPublicKey } from '../dbsc/proof';
import { logStorageUnavailable, StorageUnavailableError } from '../errors';
import type { NewPasskey, PasskeyRecord } from '../storage/records';
import { storeFor } from '../storage/store';
import { UserRecords } from '../storage/user-records';
import type { AccessTokenClaims } from '../tokens/claims';
import * as account from './account';
import { type AuthorityContext, loadOwnSession, logEvent } from './context';
import * as dbsc from './dbsc';
import { deliver, keepPruning, prune, retryLater } from './delivery';
import { grant } from './grant';
import * as passkeys from './passkeys';
import {
  type AuthorityResult,
  type DbscRefreshOutcome,
  done,
  type EventPage,
  failed,
  type ProofOfPossession,
  type Reauthentication,
  type SessionSummary,
  type TokenGrant,
} from './results';
import * as sessions from './sessions';
import { type PasskeyLogin, type PasswordLogin, signInWithPasskey, signInWithPassword } from './sign-in';

/**
 * The per-user authority: one instance per user (`idFromName(userId)`). It owns that user's hot
 * state in its own SQLite storage (user-records.ts): the user's instants, sessions, generations,
 * security events, and an outbox of writes owed to D1. Every write concerning the user passes
 * through it: login (by password or passkey), renewal, logout, logout-all, password change and
 * reset, email verification, admin revocation, clearing a login lockout, deleting the account,
 * adding and removing passkeys, and binding and refreshing a session through DBSC.
 *
 * This class is a shell: each method loads, decides (src/sessions/), persists and answers through
 * the functions of this folder, one module per concern (sessions, sign-in, account, passkeys,
 * dbsc, delivery to D1), which receive an `AuthorityContext` and never see the class.
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
 * - The single-writer rule lives here: storage is written only through `transaction`
 *   (`transactionSync`, handed to the modules in the context), and every operation that awaits
 *   D1 runs inside `#exclusive`, one at a time: awaiting outgoing I/O lets the next request in,
 *   and no decision is held across such an await.
 * - The user's clock: instants in milliseconds, strictly increasing, persisted with the state.
 *
 * Only the methods below without `#` are reachable over RPC: its public API. Everything else is
 * `#private` or a module function, because TypeScript's `private` is still callable through a stub.
 */
export class UserAuthority extends DurableObject<Env> {
  readonly #authority: AuthorityContext;
  #tail: Promise<unknown> = Promise.resolve();

  /** Every dependency comes from `ctx` and `env`: tests give the object another D1 through `env.DB`. */
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const records = new UserRecords(ctx.storage.sql);
    this.#authority = {
      records,
      directory: storeFor(env.DB),
      config: configFrom(env),
      state: ctx,
      transaction: (work) => ctx.storage.transactionSync(work),
    };
    void ctx.blockConcurrencyWhile(async () => records.migrate());
  }

  // ---- signing in --------------------------------------------------------------------------

  /**
   * Opens a session after the Worker checked the password. D1 records the session's mirror row
   * first, and only if the hash it checked is still the user's (a password change in between
   * refuses the login); then this object records the session.
   */
  login(input: PasswordLogin): Promise<AuthorityResult<TokenGrant>> {
    return this.#exclusive(() => signInWithPassword(this.#authority, input));
  }

  /**
   * Opens a session after the Worker verified a passkey's signature over a challenge it spent: a
   * sign-in like a password login in every respect (renewal rules, events, and `last_login_at`).
   * D1 records the mirror row first, only if the passkey is still the user's and the counter
   * presented is above the stored one; one that is not is logged as `passkey_counter_regressed`.
   */
  loginWithPasskey(input: PasskeyLogin): Promise<AuthorityResult<TokenGrant>> {
    return this.#exclusive(() => signInWithPasskey(this.#authority, input));
  }

  // ---- passkeys ----------------------------------------------------------------------------

  /**
   * Issues a registration challenge to a live session of the user: the Worker sends it in the
   * creation options, and only that session can spend it, before it expires (`addPasskey`).
   */
  async beginPasskeyRegistration(input: { userId: string; sessionId: string; challenge: string }): Promise<AuthorityResult<null>> {
    const refused = this.#authority.transaction(() => passkeys.beginRegistration(this.#authority, input));
    if (refused) return refused;
    await keepPruning(this.#authority);
    return done;
  }

  /** Stores a passkey whose registration the Worker verified (passkeys.ts, `addPasskey`). */
  addPasskey(input: { userId: string; sessionId: string; challenge: string; passkey: NewPasskey }): Promise<AuthorityResult<PasskeyRecord>> {
    return this.#exclusive(() => passkeys.addPasskey(this.#authority, input));
  }

  /** Deletes one of the user's passkeys, for a live session of theirs (passkeys.ts, `removePasskey`). */
  removePasskey(input: { userId: string; sessionId: string; passkeyId: string }): Promise<AuthorityResult<null>> {
    return this.#exclusive(() => passkeys.removePasskey(this.#authority, input));
  }

  // ---- sessions ----------------------------------------------------------------------------

  /**
   * PROTOCOL.md's renewal of a token whose signature and claims the Worker already verified.
   * `proof` is the proof of possession the Worker verified with the request, if any.
   */
  async renew(token: AccessTokenClaims, proof: ProofOfPossession | null = null): Promise<AuthorityResult<TokenGrant>> {
    const renewal = this.#authority.transaction(() => sessions.renewSession(this.#authority, token, proof));
    if (renewal.ok) return { ok: true, value: await grant(this.#authority, renewal.session, renewal.at, renewal.emailVerifiedAt) };
    // A reuse revoked sessions nobody waits for: delivered now if D1 takes it, else by the alarm.
    if (renewal.code === 'token_reused') await this.#deliverSoon();
    return renewal;
  }

  /**
   * Ends one session of the user, and answers once D1 has the revocation.
   * - `{ token, proof }` (POST /auth/logout): the session of the presented token, judged by the
   *   decision table (sessions.ts, `logOut`): reuse and a failed proof are answered as such.
   * - `{ userId, sessionId }` (DELETE /auth/sessions/:id): one of the user's own sessions by id,
   *   for a caller the strict check let in; `not_found` if the user has no such session.
   * Idempotent for a session already ended.
   */
  endSession(
    which: { token: AccessTokenClaims; proof: ProofOfPossession | null } | { userId: string; sessionId: string },
  ): Promise<AuthorityResult<null>> {
    return this.#exclusive(async () => {
      const ended = this.#authority.transaction(() =>
        'token' in which ? sessions.logOut(this.#authority, which.token, which.proof) : sessions.endSessionById(this.#authority, which),
      );
      await deliver(this.#authority);
      return ended;
    });
  }

  /** Every session of the user ends (`revoked_before = now`). */
  logoutAll(input: { userId: string; sessionId: string }): Promise<AuthorityResult<null>> {
    return this.#revokeAll({ userId: input.userId, event: 'logout_all', sessionId: input.sessionId });
  }

  /** An operator's revocation of every session of the user. */
  adminRevoke(input: { userId: string }): Promise<AuthorityResult<null>> {
    return this.#revokeAll({ userId: input.userId, event: 'admin_revoked', sessionId: null });
  }

  /** The user's live sessions, newest first, however many ended ones there are. */
  listSessions(input: { userId: string }): SessionSummary[] {
    return sessions.liveSessions(this.#authority, input.userId);
  }

  // ---- Device Bound Session Credentials (src/dbsc/) ---------------------------------------

  /**
   * The challenge a cookie-mode answer offers the browser for registering a DBSC key with the
   * session (`Secure-Session-Registration`). Only a live session not yet bound through DBSC is
   * offered one; `not_found` otherwise.
   */
  offerDbscRegistration(input: { userId: string; sessionId: string }): AuthorityResult<string> {
    return this.#authority.transaction(() => dbsc.offerRegistration(this.#authority, input));
  }

  /** Binds the token's session to a DBSC key the Worker verified, once (dbsc.ts, `register`). */
  registerDbsc(input: {
    token: AccessTokenClaims;
    proof: { jti: string; key: DbscPublicKey; jkt: string };
  }): Promise<AuthorityResult<{ grant: TokenGrant; challenge: string }>> {
    return dbsc.register(this.#authority, input);
  }

  /** The browser's refresh of a DBSC-bound session: `end`, `challenge` or `refreshed` (dbsc.ts). */
  refreshDbsc(input: { userId: string; sessionId: string; proof: string | null }): Promise<DbscRefreshOutcome> {
    return dbsc.refresh(this.#authority, input);
  }

  // ---- the account -------------------------------------------------------------------------

  /** A new password and a fresh session; every other session revoked (account.ts). */
  changePassword(input: account.PasswordChange): Promise<AuthorityResult<TokenGrant>> {
    return this.#exclusive(() => account.changePassword(this.#authority, input));
  }

  /** POST /auth/password/reset: a password change by emailed link (account.ts). */
  resetPassword(input: { userId: string; tokenHash: string; newPasswordHash: string; client: string | null }): Promise<AuthorityResult<TokenGrant>> {
    return this.#exclusive(() => account.resetPassword(this.#authority, input));
  }

  /** POST /auth/email/verify (account.ts). */
  markEmailVerified(input: { userId: string; tokenHash: string }): Promise<AuthorityResult<null>> {
    return this.#exclusive(() => account.markEmailVerified(this.#authority, input));
  }

  /** An operator clears the user's login lockout (account.ts). */
  clearLockout(input: { userId: string }): Promise<AuthorityResult<{ clearedAddresses: number }>> {
    return this.#exclusive(() => account.clearLockout(this.#authority, input));
  }

  /** DELETE /auth/account, in the order that keeps an interrupted deletion safe (account.ts). */
  deleteAccount(input: { userId: string; sessionId: string; proof: Reauthentication }): Promise<AuthorityResult<null>> {
    return this.#exclusive(() => account.deleteAccount(this.#authority, input));
  }

  // ---- events ------------------------------------------------------------------------------

  /** A failed password check for this user, coalesced with the ones before it. */
  recordLoginFailure(input: { userId: string }): void {
    this.#authority.transaction(() => logEvent(this.#authority, input.userId, { type: 'login_failed', sessionId: null, detail: null }));
  }

  /**
   * A request presented a token of this session without a valid proof of the key the session is
   * bound to (rule 1b), found by the Worker before calling here. Coalesced per session: the user
   * learns that a copy of a token is out there, and a flood of them is one event.
   */
  recordProofFailure(input: { userId: string; sessionId: string }): void {
    this.#authority.transaction(() => {
      if (loadOwnSession(this.#authority, input.userId, input.sessionId) === null) return;
      logEvent(this.#authority, input.userId, { type: 'proof_failed', sessionId: input.sessionId, detail: null });
    });
  }

  /** The user's security events, newest first, `limit` at a time, older than `before` if given. */
  listEvents(input: { userId: string; before: number | null; limit: number }): EventPage {
    const user = this.#authority.records.loadUser();
    if (!user || user.userId !== input.userId) return { events: [], next: null };
    const page = this.#authority.records.events.list(input.before, input.limit + 1);
    const events = page.slice(0, input.limit);
    return { events, next: page.length > input.limit ? (events.at(-1)?.id ?? null) : null };
  }

  // ---- the alarm: writes owed to D1, then pruning -----------------------------------------

  /**
   * Sends the writes owed to D1 (retrying with backoff until D1 has them), then deletes what can
   * no longer matter, and wakes again while anything is left to prune.
   */
  override async alarm(): Promise<void> {
    await this.#exclusive(async () => {
      await deliver(this.#authority);
      return done;
    });
    await prune(this.#authority);
  }

  // ---- the single-writer rule --------------------------------------------------------------

  #revokeAll(input: { userId: string; event: 'logout_all' | 'admin_revoked'; sessionId: string | null }): Promise<AuthorityResult<null>> {
    return this.#exclusive(async () => {
      this.#authority.transaction(() => sessions.revokeAll(this.#authority, input));
      await deliver(this.#authority);
      return done;
    });
  }

  /**
   * After a revocation nobody waits for (reuse detected during a renewal): try to deliver now,
   * and leave it to the alarm if D1 is down; the renewal's own answer does not depend on it.
   */
  async #deliverSoon(): Promise<void> {
    await retryLater(this.#authority);
    await this.#exclusive(async () => {
      await deliver(this.#authority);
      return done;
    });
  }

  /** Runs `work` once every call before it has finished; D1 failures become 503 results. */
  #exclusive<T>(work: () => Promise<AuthorityResult<T>>): Promise<AuthorityResult<T>> {
    const guarded = async (): Promise<AuthorityResult<T>> => {
      try {
        return await work();
      } catch (error) {
        if (error instanceof StorageUnavailableError) {
          logStorageUnavailable(error);
          return failed('temporarily_unavailable');
        }
        throw error;
      }
    };
    const run = this.#tail.then(guarded, guarded);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}
