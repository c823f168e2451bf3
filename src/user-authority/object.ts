import { DurableObject } from 'cloudflare:workers';
import { now } from '../clock';
import { type Config, configFrom } from '../config';
import { StorageUnavailableError } from '../errors';
import { decideRenewal, type RenewalDecision, renewalPolicy, type SessionRecord, sessionState } from '../renewal/decide';
import { NOT_LIVE } from '../storage/liveness';
import type { SecurityEvent, StoredEvent, UserState } from '../storage/records';
import { Store } from '../storage/store';
import { UserRecords } from '../storage/user-records';
import { type AccessTokenClaims, generationJti } from '../tokens/claims';
import { keyringFor } from '../tokens/keys';
import { signAccessToken } from '../tokens/sign';
import { type AuthorityResult, done, failed, type TokenGrant } from './results';

/** Repeats of a coalesced event type within this window add to one event's count. */
const COALESCE_WINDOW_MS = 60 * 60 * 1000;
/** How often the object looks for sessions and events it may delete, while it holds any. */
const PRUNE_INTERVAL_MS = 24 * 60 * 60 * 1000;
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
 * through it: login, renewal, logout, logout-all, password change, admin revocation.
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
  }): Promise<AuthorityResult<TokenGrant>> {
    return this.#exclusive(async () => {
      const user = this.#user(input.userId);
      const at = this.#tick(user);
      this.#transaction(() => this.#records.saveUser(user));
      const session = this.#newSession(user.userId, input.client, at);
      const pending = this.#records.pending();
      const recorded = await this.#sendToDirectory(() =>
        this.#directory.recordLogin({
          pending: pending.writes,
          session,
          checkedPasswordHash: input.checkedPasswordHash,
          upgradedPasswordHash: input.upgradedPasswordHash,
          throttleKey: input.throttleKey,
        }),
      );
      this.#transaction(() => {
        this.#records.delivered(pending.upToId);
        if (!recorded) return;
        this.#records.insertSession(session);
        // Loaded again: a renewal may have revoked sessions or moved the clock while D1 answered.
        const latest = this.#user(input.userId);
        latest.lastLoginAt = at;
        this.#records.saveUser(latest);
        this.#append({
          type: 'login',
          at,
          sessionId: session.id,
          detail: session.client === null ? null : { client: session.client },
        });
      });
      if (!recorded) return failed('invalid_credentials');
      await this.#keepPruning();
      return { ok: true, value: await this.#grant(session, at) };
    });
  }

  /** PROTOCOL.md's renewal of a token whose signature and claims the Worker already verified. */
  async renew(token: AccessTokenClaims): Promise<AuthorityResult<TokenGrant>> {
    const outcome = this.#decideAndPersist(token, 'renew');
    switch (outcome.decision.kind) {
      case 'rotate':
      case 'grace':
        return { ok: true, value: await this.#grant(outcome.session as SessionRecord, outcome.at) };
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
  logout(token: AccessTokenClaims): Promise<AuthorityResult<null>> {
    return this.#exclusive(async () => {
      const outcome = this.#decideAndPersist(token, 'logout');
      await this.#deliver();
      switch (outcome.decision.kind) {
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

      // Every older session is revoked here first (with its D1 write owed), so that whatever
      // happens to D1 below, this object renews none of them again.
      const revokedBefore = this.#tick(user);
      const at = this.#tick(user);
      this.#transaction(() => {
        user.revokedBefore = revokedBefore;
        this.#records.saveUser(user);
        this.#records.enqueue({ kind: 'revoke_user', userId: user.userId, at: revokedBefore });
      });
      const session = this.#newSession(user.userId, current.client, at);
      const pending = this.#records.pending();
      const changed = await this.#sendToDirectory(() =>
        this.#directory.recordPasswordChange({
          pending: pending.writes,
          userId: user.userId,
          checkedPasswordHash: input.checkedPasswordHash,
          newPasswordHash: input.newPasswordHash,
          session: { id: session.id, createdAt: at },
          throttleKey: input.throttleKey,
        }),
      );
      this.#transaction(() => {
        this.#records.delivered(pending.upToId);
        if (!changed) return;
        this.#records.insertSession(session);
        const latest = this.#user(input.userId);
        latest.lastLoginAt = at;
        this.#records.saveUser(latest);
        this.#append({ type: 'password_changed', at: revokedBefore, sessionId: input.sessionId, detail: null });
      });
      // Only a write to D1 that bypassed this object can get here; its revocation stands.
      if (!changed) return failed('invalid_credentials');
      return { ok: true, value: await this.#grant(session, at) };
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
      }),
    );
    if (this.#records.holdsAnything()) await this.ctx.storage.setAlarm(nowMs + PRUNE_INTERVAL_MS);
  }

  // ---- load, decide, persist -------------------------------------------------------------

  /**
   * One synchronous transaction: load the session and the user's instants, decide with
   * `decideRenewal`, persist what the decision says. `purpose` is what the token was presented
   * for: a renewal mints, a logout ends the session instead.
   */
  #decideAndPersist(
    token: AccessTokenClaims,
    purpose: 'renew' | 'logout',
  ): { decision: RenewalDecision; session: SessionRecord | null; at: number } {
    return this.#transaction(() => {
      const stored = this.#records.loadUser();
      const user = stored?.userId === token.sub ? stored : null;
      const session = user ? this.#records.loadSession(user.userId, token.sid) : null;
      const at = user ? this.#tick(user) : now();
      const decision = decideRenewal(token, session, user, at, renewalPolicy(this.#config));
      if (!user || !session) return { decision, session, at };
      switch (decision.kind) {
        case 'rotate':
        case 'grace':
          if (purpose === 'logout') {
            this.#endSession(user, session.id, 'logout', 'logout');
            return { decision, session, at };
          }
          if (decision.kind === 'grace') return { decision, session, at };
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
  }

  #rotate(user: UserState, session: SessionRecord, nextGen: number, at: number): SessionRecord {
    const next: SessionRecord = {
      ...session,
      gen: nextGen,
      genMintedAt: at,
      genExpiresAt: Math.floor(at / 1000) + this.#config.accessTokenTtlSeconds,
    };
    this.#records.advanceGeneration(next, session.gen);
    this.#records.saveUser(user);
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
    return this.#records.loadUser() ?? { userId, revokedBefore: 0, lastLoginAt: 0, clock: 0 };
  }

  /** The next instant of the user's clock: after now and after every instant handed out before. */
  #tick(user: UserState): number {
    user.clock = Math.max(now(), user.clock + 1);
    return user.clock;
  }

  #append(event: SecurityEvent): void {
    this.#records.appendEvent(event, COALESCE_WINDOW_MS);
  }

  #newSession(userId: string, client: string | null, at: number): SessionRecord {
    return {
      id: crypto.randomUUID(),
      userId,
      client,
      createdAt: at,
      gen: 1,
      genMintedAt: at,
      genExpiresAt: Math.floor(at / 1000) + this.#config.accessTokenTtlSeconds,
      revokedAt: null,
    };
  }

  /** The token of the session's current generation: the same every time it is asked for. */
  async #grant(session: SessionRecord, at: number): Promise<TokenGrant> {
    const claims: AccessTokenClaims = {
      iss: this.#config.issuer,
      aud: this.#config.audience,
      sub: session.userId,
      sid: session.id,
      gen: session.gen,
      iat: Math.floor(session.genMintedAt / 1000),
      exp: session.genExpiresAt,
      jti: generationJti(session.id, session.gen),
    };
    const keyring = await keyringFor(this.#config.signingKeysJson);
    return {
      accessToken: await signAccessToken(claims, keyring),
      expiresIn: Math.max(0, claims.exp - Math.floor(at / 1000)),
      sessionId: session.id,
      sessionEndsAt: session.createdAt + this.#config.sessionMaxAgeSeconds * 1000,
    };
  }
}
