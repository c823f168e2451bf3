import { DurableObject } from 'cloudflare:workers';
import { now } from '../clock';
import { type Config, configFrom } from '../config';
import { StorageUnavailableError } from '../errors';
import { decideRenewal, isInactive, renewalPolicy, type SessionRecord } from '../renewal/decide';
import { Store } from '../storage/store';
import { type AccessTokenClaims, generationJti } from '../tokens/claims';
import { keyringFor } from '../tokens/keys';
import { signAccessToken } from '../tokens/sign';
import { type AuthorityResult, done, failed, type TokenGrant } from './results';

/** How often a generation compare-and-swap that lost a race is re-decided before answering 503. */
const MAX_RENEW_ATTEMPTS = 3;


/**
 * The per-user authority: one instance per user (`idFromName(userId)`), through which every write
 * concerning that user passes: login issuance, renewal, logout, logout-all, password change,
 * admin revocation.
 *
 * - Serialized explicitly. Input gates stop other events only while storage of the object itself
 *   is awaited; awaiting D1 is outgoing I/O and lets the next request in. So each call queues
 *   behind the previous one (`exclusive`), and a read-decide-write never interleaves with another.
 * - The user's clock. Instants come from `instant()`: milliseconds, strictly increasing, and
 *   always after every instant read from D1 for that user, so "revoked, then logged in, in the
 *   same second" is ordered correctly even after the object restarts on another machine.
 * - Not the source of truth. It keeps no state of its own beyond the clock's high-water mark; D1
 *   holds everything, and generations advance only by compare-and-swap in D1 (invariant 5).
 *   Evicting or restarting it loses nothing.
 */
export class UserAuthority extends DurableObject<Env> {
  /** Replaceable by tests to inject D1 faults. */
  protected store: Store;
  private tail: Promise<unknown> = Promise.resolve();
  private highWater = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new Store(env.DB);
  }

  private get config(): Config {
    return configFrom(this.env);
  }

  /** Runs `work` once every call before it has finished; D1 failures become 503 results. */
  private exclusive<T>(work: () => Promise<AuthorityResult<T>>): Promise<AuthorityResult<T>> {
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
    const run = this.tail.then(guarded, guarded);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** The next instant of this user's clock: after now, after the last one, after every `floor`. */
  private instant(...floors: number[]): number {
    this.highWater = Math.max(now(), this.highWater + 1, ...floors.map((floor) => floor + 1));
    return this.highWater;
  }

  private async grant(session: SessionRecord, claims: AccessTokenClaims, at: number): Promise<TokenGrant> {
    const keyring = await keyringFor(this.config.signingKeysJson);
    return {
      accessToken: await signAccessToken(claims, keyring),
      expiresIn: Math.max(0, claims.exp - Math.floor(at / 1000)),
      sessionId: session.id,
      sessionEndsAt: session.createdAt + this.config.sessionMaxAgeSeconds * 1000,
    };
  }

  /** The claims of the session's current generation: the same every time they are asked for. */
  private currentClaims(session: SessionRecord): AccessTokenClaims {
    return {
      iss: this.config.issuer,
      aud: this.config.audience,
      sub: session.userId,
      sid: session.id,
      gen: session.gen,
      iat: Math.floor(session.genMintedAt / 1000),
      exp: session.genExpiresAt,
      jti: generationJti(session.id, session.gen),
    };
  }

  private newSession(userId: string, client: string | null, at: number): SessionRecord {
    return {
      id: crypto.randomUUID(),
      userId,
      client,
      createdAt: at,
      gen: 1,
      genMintedAt: at,
      genExpiresAt: Math.floor(at / 1000) + this.config.accessTokenTtlSeconds,
      revokedAt: null,
    };
  }

  /**
   * Opens a session after the Worker checked the password. The hash it checked must still be
   * the user's, or a password change slipped in between and the login is refused.
   */
  login(input: {
    userId: string;
    checkedPasswordHash: string;
    upgradedPasswordHash: string | null;
    client: string | null;
    throttleKey: { email: string; clientIp: string };
  }): Promise<AuthorityResult<TokenGrant>> {
    return this.exclusive(async () => {
      const user = await this.store.loadUser(input.userId);
      if (!user || user.passwordHash !== input.checkedPasswordHash) return failed('invalid_credentials');
      const at = this.instant(user.revokedBefore, user.lastLoginAt, user.newestSessionAt);
      const session = this.newSession(user.id, input.client, at);
      await this.store.recordLogin({
        session,
        checkedPasswordHash: input.checkedPasswordHash,
        upgradedPasswordHash: input.upgradedPasswordHash,
        throttleKey: input.throttleKey,
      });
      return { ok: true, value: await this.grant(session, this.currentClaims(session), at) };
    });
  }

  /**
   * Rule 5 in one D1 statement: advance the generation exactly when rotating is the decision for
   * the records as they stand (Store.rotateIfCurrent). A renewal is the most frequent write of the
   * service and a D1 round trip its largest cost; a superseded, revoked or unknown token falls
   * through to reading the records and deciding. Undefined when it did not rotate.
   */
  private async rotateInOneStatement(token: AccessTokenClaims): Promise<TokenGrant | undefined> {
    const at = this.instant();
    const policy = renewalPolicy(this.config);
    if (isInactive(token, at, policy)) return undefined;
    const next = await this.store.rotateIfCurrent({
      sessionId: token.sid,
      userId: token.sub,
      fromGen: token.gen,
      tokenIat: token.iat,
      mintedAt: at,
      expiresAt: Math.floor(at / 1000) + this.config.accessTokenTtlSeconds,
      sessionMaxAgeMs: policy.sessionMaxAgeMs,
    });
    return next ? this.grant(next, this.currentClaims(next), at) : undefined;
  }

  /** PROTOCOL.md's renewal of a token whose signature and claims the Worker already verified. */
  renew(token: AccessTokenClaims): Promise<AuthorityResult<TokenGrant>> {
    return this.exclusive(async () => {
      const rotated = await this.rotateInOneStatement(token);
      if (rotated) return { ok: true, value: rotated };
      for (let attempt = 0; attempt < MAX_RENEW_ATTEMPTS; attempt++) {
        const loaded = await this.store.loadSession(token.sid, token.sub);
        const at = loaded
          ? this.instant(
              loaded.session.createdAt,
              loaded.session.genMintedAt,
              loaded.user.revokedBefore,
              loaded.user.lastLoginAt,
            )
          : this.instant();
        const session = loaded?.session ?? null;
        const decision = decideRenewal(token, session, loaded?.user ?? null, at, renewalPolicy(this.config));
        switch (decision.kind) {
          case 'inactive':
            return failed('session_inactive');
          case 'revoked':
            return failed('session_revoked');
          case 'expired':
            return failed('session_expired');
          case 'grace':
            return { ok: true, value: await this.grant(session!, this.currentClaims(session!), at) };
          case 'mismatch':
            await this.store.insertEvent(token.sub, {
              type: 'generation_mismatch',
              at,
              sessionId: token.sid,
              detail: { presented_gen: token.gen, stored_gen: session!.gen },
            });
            return failed('invalid_token');
          case 'reuse':
            await this.store.recordReuse({ userId: token.sub, sessionId: token.sid, at, scope: decision.scope });
            return failed('token_reused');
          case 'rotate': {
            const next: SessionRecord = {
              ...session!,
              gen: decision.nextGen,
              genMintedAt: at,
              genExpiresAt: Math.floor(at / 1000) + this.config.accessTokenTtlSeconds,
            };
            const advanced = await this.store.advanceGeneration({
              sessionId: next.id,
              fromGen: session!.gen,
              mintedAt: next.genMintedAt,
              expiresAt: next.genExpiresAt,
            });
            // Only reachable if another writer changed the row since it was read (two live
            // instances, or a revocation): decide again on fresh records.
            if (!advanced) continue;
            return { ok: true, value: await this.grant(next, this.currentClaims(next), at) };
          }
        }
      }
      return failed('temporarily_unavailable');
    });
  }

  /** Revokes the session the token belongs to. Idempotent. */
  logout(input: { userId: string; sessionId: string }): Promise<AuthorityResult<null>> {
    return this.exclusive(async () => {
      const loaded = await this.store.loadSession(input.sessionId, input.userId);
      if (loaded && loaded.session.revokedAt === null) {
        const at = this.instant(loaded.session.createdAt, loaded.session.genMintedAt);
        await this.store.revokeSession({ ...input, at, reason: 'logout', event: 'logout' });
      }
      return done;
    });
  }

  /** DELETE /auth/sessions/:id: revokes one of the user's own sessions. */
  revokeSession(input: { userId: string; sessionId: string }): Promise<AuthorityResult<null>> {
    return this.exclusive(async () => {
      const loaded = await this.store.loadSession(input.sessionId, input.userId);
      if (!loaded) return failed('not_found');
      if (loaded.session.revokedAt === null) {
        const at = this.instant(loaded.session.createdAt, loaded.session.genMintedAt);
        await this.store.revokeSession({ ...input, at, reason: 'logout', event: 'logout' });
      }
      return done;
    });
  }

  private revokeAll(userId: string, event: 'logout_all' | 'admin_revoked', sessionId: string | null) {
    return this.exclusive(async () => {
      const user = await this.store.loadUser(userId);
      if (!user) return failed('not_found');
      const at = this.instant(user.revokedBefore, user.lastLoginAt, user.newestSessionAt);
      await this.store.revokeAllSessions({ userId, at, event, sessionId });
      return done;
    });
  }

  /** Every session of the user ends (`revoked_before = now`). */
  logoutAll(input: { userId: string; sessionId: string }): Promise<AuthorityResult<null>> {
    return this.revokeAll(input.userId, 'logout_all', input.sessionId);
  }

  /** An operator's revocation of every session of the user. */
  adminRevoke(input: { userId: string }): Promise<AuthorityResult<null>> {
    return this.revokeAll(input.userId, 'admin_revoked', null);
  }

  /**
   * Replaces the password, revokes every session, and opens a fresh one for the person who changed
   * it, labelled like the session they changed it from.
   */
  changePassword(input: {
    userId: string;
    sessionId: string;
    checkedPasswordHash: string;
    newPasswordHash: string;
    throttleKey: { email: string; clientIp: string };
  }): Promise<AuthorityResult<TokenGrant>> {
    return this.exclusive(async () => {
      const user = await this.store.loadUser(input.userId);
      if (!user || user.passwordHash !== input.checkedPasswordHash) return failed('invalid_credentials');
      const current = await this.store.loadSession(input.sessionId, input.userId);
      const revokedBefore = this.instant(user.revokedBefore, user.lastLoginAt, user.newestSessionAt);
      const at = this.instant();
      const session = this.newSession(user.id, current?.session.client ?? null, at);
      const changed = await this.store.recordPasswordChange({
        userId: user.id,
        checkedPasswordHash: input.checkedPasswordHash,
        newPasswordHash: input.newPasswordHash,
        revokedBefore,
        session,
        previousSessionId: input.sessionId,
        throttleKey: input.throttleKey,
      });
      if (!changed) return failed('invalid_credentials');
      return { ok: true, value: await this.grant(session, this.currentClaims(session), at) };
    });
  }
}
