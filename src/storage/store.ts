import { StorageUnavailableError } from '../errors';
import type { SessionRecord, UserInstants } from '../renewal/decide';
import {
  type SecurityEvent,
  type SecurityEventType,
  type SessionRow,
  type SessionWithUser,
  toSession,
  type UserRecord,
} from './records';

/**
 * Every SQL statement latchkey runs, as prepared statements with `?N` binds, and the mapping of
 * rows to domain records. Any D1 failure surfaces as `StorageUnavailableError` (503), never as a
 * raw driver message.
 */
export class Store {
  constructor(readonly db: D1Database) {}

  private async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw new StorageUnavailableError(error);
    }
  }

  private batch(statements: D1PreparedStatement[]): Promise<D1Result[]> {
    return this.guard(() => this.db.batch(statements));
  }

  // ---- users -------------------------------------------------------------------------------

  /** Inserts a user; false when the email is taken. */
  async insertUser(user: { id: string; email: string; passwordHash: string; createdAt: number }): Promise<boolean> {
    const result = await this.guard(() =>
      this.db
        .prepare(
          'INSERT INTO users (id, email, password_hash, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (email) DO NOTHING',
        )
        .bind(user.id, user.email, user.passwordHash, user.createdAt)
        .run(),
    );
    return result.meta.changes === 1;
  }

  async userExists(userId: string): Promise<boolean> {
    const row = await this.guard(() => this.db.prepare('SELECT 1 AS one FROM users WHERE id = ?1').bind(userId).first());
    return row !== null;
  }

  /** The user with everything the Durable Object's clock must stay ahead of. */
  async loadUser(userId: string): Promise<UserRecord | null> {
    const row = await this.guard(() =>
      this.db
        .prepare(
          `SELECT id, email, password_hash, revoked_before, last_login_at,
                  COALESCE((SELECT MAX(created_at) FROM sessions WHERE user_id = ?1), 0) AS newest_session_at
             FROM users WHERE id = ?1`,
        )
        .bind(userId)
        .first<{
          id: string;
          email: string;
          password_hash: string;
          revoked_before: number;
          last_login_at: number;
          newest_session_at: number;
        }>(),
    );
    if (!row) return null;
    return {
      id: row.id,
      email: row.email,
      passwordHash: row.password_hash,
      revokedBefore: row.revoked_before,
      lastLoginAt: row.last_login_at,
      newestSessionAt: row.newest_session_at,
    };
  }

  // ---- login throttling --------------------------------------------------------------------

  /**
   * Charges one attempt to (email, client address) before any hashing and, in the same round
   * trip, looks the email up. Charging first, atomically, means a burst of parallel guesses
   * cannot all read "4 failures" and all get hashed: each one takes its own number. A success
   * deletes the row. Failures older than the lockout, or a lockout that has run out, start over.
   */
  async chargeLoginAttempt(input: {
    email: string;
    clientIp: string;
    nowMs: number;
    maxFailures: number;
    lockoutMs: number;
  }): Promise<{ failures: number; lockedUntil: number; user: { id: string; passwordHash: string } | null }> {
    const { email, clientIp, nowMs, maxFailures, lockoutMs } = input;
    const stale = '(locked_until <> 0 AND locked_until <= ?3) OR (locked_until = 0 AND last_failure_at + ?5 <= ?3)';
    const [charged, found] = await this.batch([
      this.db
        .prepare(
          `INSERT INTO login_attempts (email, client_ip, failures, last_failure_at, locked_until)
           VALUES (?1, ?2, 1, ?3, CASE WHEN ?4 <= 1 THEN ?3 + ?5 ELSE 0 END)
           ON CONFLICT (email, client_ip) DO UPDATE SET
             failures = CASE WHEN ${stale} THEN 1 ELSE failures + 1 END,
             locked_until = CASE
               WHEN ${stale} THEN CASE WHEN ?4 <= 1 THEN ?3 + ?5 ELSE 0 END
               WHEN failures + 1 = ?4 THEN ?3 + ?5
               ELSE locked_until END,
             last_failure_at = ?3
           RETURNING failures, locked_until`,
        )
        .bind(email, clientIp, nowMs, maxFailures, lockoutMs),
      this.db.prepare('SELECT id, password_hash FROM users WHERE email = ?1').bind(email),
    ]);
    const attempt = charged?.results[0] as { failures: number; locked_until: number } | undefined;
    const user = found?.results[0] as { id: string; password_hash: string } | undefined;
    if (!attempt) throw new StorageUnavailableError(new Error('login attempt upsert returned no row'));
    return {
      failures: attempt.failures,
      lockedUntil: attempt.locked_until,
      user: user ? { id: user.id, passwordHash: user.password_hash } : null,
    };
  }

  // ---- sessions ----------------------------------------------------------------------------

  private static readonly SESSION_WITH_USER = `
    SELECT s.id, s.user_id, s.client, s.created_at, s.gen, s.gen_minted_at, s.gen_expires_at, s.revoked_at,
           u.email, u.revoked_before, u.last_login_at
      FROM sessions s JOIN users u ON u.id = s.user_id
     WHERE s.id = ?1 AND s.user_id = ?2`;

  /** A session of this user together with the user's instants; null if unknown or another user's. */
  async loadSession(sessionId: string, userId: string): Promise<SessionWithUser | null> {
    const row = await this.guard(() =>
      this.db
        .prepare(Store.SESSION_WITH_USER)
        .bind(sessionId, userId)
        .first<SessionRow & { email: string; revoked_before: number; last_login_at: number }>(),
    );
    if (!row) return null;
    return {
      session: toSession(row),
      user: { email: row.email, revokedBefore: row.revoked_before, lastLoginAt: row.last_login_at },
    };
  }

  /** The user's sessions not marked revoked, newest first, with the user's instants. */
  async listUnrevokedSessions(userId: string): Promise<{ user: UserInstants | null; sessions: SessionRecord[] }> {
    const [userResult, sessionResult] = await this.batch([
      this.db.prepare('SELECT revoked_before, last_login_at FROM users WHERE id = ?1').bind(userId),
      this.db
        .prepare(
          `SELECT id, user_id, client, created_at, gen, gen_minted_at, gen_expires_at, revoked_at
             FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL
            ORDER BY created_at DESC LIMIT 200`,
        )
        .bind(userId),
    ]);
    const userRow = userResult?.results[0] as { revoked_before: number; last_login_at: number } | undefined;
    return {
      user: userRow ? { revokedBefore: userRow.revoked_before, lastLoginAt: userRow.last_login_at } : null,
      sessions: ((sessionResult?.results ?? []) as SessionRow[]).map(toSession),
    };
  }

  private insertSessionStatement(session: SessionRecord): D1PreparedStatement {
    return this.db
      .prepare(
        `INSERT INTO sessions (id, user_id, client, created_at, gen, gen_minted_at, gen_expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)`,
      )
      .bind(
        session.id,
        session.userId,
        session.client,
        session.createdAt,
        session.gen,
        session.genMintedAt,
        session.genExpiresAt,
      );
  }

  private eventStatement(userId: string, event: SecurityEvent): D1PreparedStatement {
    return this.db
      .prepare('INSERT INTO security_events (user_id, type, at, session_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)')
      .bind(userId, event.type, event.at, event.sessionId, event.detail === null ? null : JSON.stringify(event.detail));
  }

  /**
   * A login, atomically: the new session, the user's `last_login_at` (and an upgraded password
   * hash, only if the hash is still the one that was checked), the event, and the reset of the
   * failure counter for this (email, client address).
   */
  async recordLogin(input: {
    session: SessionRecord;
    checkedPasswordHash: string;
    upgradedPasswordHash: string | null;
    throttleKey: { email: string; clientIp: string };
  }): Promise<void> {
    const { session, checkedPasswordHash, upgradedPasswordHash, throttleKey } = input;
    await this.batch([
      this.insertSessionStatement(session),
      this.db
        .prepare(
          `UPDATE users SET last_login_at = ?2,
                  password_hash = CASE WHEN ?3 IS NOT NULL AND password_hash = ?4 THEN ?3 ELSE password_hash END
            WHERE id = ?1`,
        )
        .bind(session.userId, session.createdAt, upgradedPasswordHash, checkedPasswordHash),
      this.eventStatement(session.userId, {
        type: 'login',
        at: session.createdAt,
        sessionId: session.id,
        detail: session.client === null ? null : { client: session.client },
      }),
      this.db
        .prepare('DELETE FROM login_attempts WHERE email = ?1 AND client_ip = ?2')
        .bind(throttleKey.email, throttleKey.clientIp),
    ]);
  }

  /**
   * Advances a session's generation by compare-and-swap (PROTOCOL.md invariant 5): the row
   * changes only if it still holds `fromGen`, is not revoked, and its login is still after the
   * user's `revoked_before`. So even two live instances of the user's object could not both
   * mint the same generation, nor mint one for a session revoked in between. True if it advanced.
   */
  async advanceGeneration(input: {
    sessionId: string;
    fromGen: number;
    mintedAt: number;
    expiresAt: number;
  }): Promise<boolean> {
    const result = await this.guard(() =>
      this.db
        .prepare(
          `UPDATE sessions SET gen = ?2 + 1, gen_minted_at = ?3, gen_expires_at = ?4
            WHERE id = ?1 AND gen = ?2 AND revoked_at IS NULL
              AND created_at > (SELECT revoked_before FROM users WHERE users.id = sessions.user_id)`,
        )
        .bind(input.sessionId, input.fromGen, input.mintedAt, input.expiresAt)
        .run(),
    );
    return result.meta.changes === 1;
  }

  /**
   * Rule 5, the common case of a renewal, in one statement: advances the session's generation if,
   * and only if, the decision table says "rotate" for the records as they stand at `at`
   * (PROTOCOL.md rules 3 to 5, as `decideRenewal` checks them): the session is this user's, not
   * revoked, logged in after the user's `revoked_before`, not older than the absolute limit, still
   * at the presented generation, and the token's `iat` second is after `revoked_before`. It also
   * requires `at` to be after every instant the records hold, as the user's clock would have made
   * it. Rule 2 (idle) depends on the token alone: the caller checks it first. Like
   * `advanceGeneration` it is a compare-and-swap (invariant 5). Returns the advanced session, or
   * null when anything else applies and the caller must read and decide.
   * test/one-trip-renewal.test.ts checks this guard against `decideRenewal`.
   */
  async rotateIfCurrent(input: {
    sessionId: string;
    userId: string;
    fromGen: number;
    /** The presented token's `iat`, seconds. */
    tokenIat: number;
    mintedAt: number;
    expiresAt: number;
    sessionMaxAgeMs: number;
  }): Promise<SessionRecord | null> {
    const { sessionId, userId, fromGen, tokenIat, mintedAt, expiresAt, sessionMaxAgeMs } = input;
    const row = await this.guard(() =>
      this.db
        .prepare(
          `UPDATE sessions SET gen = ?3 + 1, gen_minted_at = ?4, gen_expires_at = ?5
            WHERE id = ?1 AND user_id = ?2 AND gen = ?3 AND revoked_at IS NULL
              AND created_at < ?4 AND gen_minted_at < ?4 AND created_at >= ?4 - ?6
              AND EXISTS (SELECT 1 FROM users
                           WHERE users.id = sessions.user_id
                             AND users.revoked_before < sessions.created_at
                             AND users.revoked_before < ?7
                             AND users.last_login_at < ?4)
          RETURNING id, user_id, client, created_at, gen, gen_minted_at, gen_expires_at, revoked_at`,
        )
        .bind(sessionId, userId, fromGen, mintedAt, expiresAt, sessionMaxAgeMs, tokenIat * 1000 + 999)
        .first<SessionRow>(),
    );
    return row ? toSession(row) : null;
  }

  private revokeSessionStatement(sessionId: string, userId: string, at: number, reason: string): D1PreparedStatement {
    return this.db
      .prepare('UPDATE sessions SET revoked_at = ?3, revoked_reason = ?4 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL')
      .bind(sessionId, userId, at, reason);
  }

  private revokeUserStatement(userId: string, at: number): D1PreparedStatement {
    return this.db.prepare('UPDATE users SET revoked_before = MAX(revoked_before, ?2) WHERE id = ?1').bind(userId, at);
  }

  /** Rule 7: revoke the session (and with scope "user", every session of the user), logged. */
  async recordReuse(input: { userId: string; sessionId: string; at: number; scope: 'session' | 'user' }): Promise<void> {
    const { userId, sessionId, at, scope } = input;
    const statements = [this.revokeSessionStatement(sessionId, userId, at, 'reuse')];
    if (scope === 'user') statements.push(this.revokeUserStatement(userId, at));
    statements.push(this.eventStatement(userId, { type: 'reuse_detected', at, sessionId, detail: { scope } }));
    await this.batch(statements);
  }

  /** Revokes one session of the user (if not already), logged as `event`. */
  async revokeSession(input: {
    userId: string;
    sessionId: string;
    at: number;
    reason: string;
    event: SecurityEventType;
  }): Promise<void> {
    const { userId, sessionId, at, reason, event } = input;
    await this.batch([
      this.revokeSessionStatement(sessionId, userId, at, reason),
      this.eventStatement(userId, { type: event, at, sessionId, detail: null }),
    ]);
  }

  /** Every session of the user logged in at or before `at` is revoked; logged as `event`. */
  async revokeAllSessions(input: {
    userId: string;
    at: number;
    event: SecurityEventType;
    sessionId: string | null;
  }): Promise<void> {
    const { userId, at, event, sessionId } = input;
    await this.batch([
      this.revokeUserStatement(userId, at),
      this.eventStatement(userId, { type: event, at, sessionId, detail: null }),
    ]);
  }

  /**
   * A password change, atomically: the new hash (only if the old one is still what was checked),
   * every older session revoked, the fresh session of the person who changed it, and the event.
   * False if the hash changed in between, in which case nothing was written.
   */
  async recordPasswordChange(input: {
    userId: string;
    checkedPasswordHash: string;
    newPasswordHash: string;
    revokedBefore: number;
    session: SessionRecord;
    previousSessionId: string;
    throttleKey: { email: string; clientIp: string };
  }): Promise<boolean> {
    const { userId, checkedPasswordHash, newPasswordHash, revokedBefore, session, previousSessionId, throttleKey } =
      input;
    // The new hash carries a fresh random salt, so "the hash is now the new one" is true exactly
    // when the guarded UPDATE happened: the two inserts follow it or, like it, do nothing.
    const results = await this.batch([
      this.db
        .prepare(
          `UPDATE users SET password_hash = ?3, revoked_before = MAX(revoked_before, ?4), last_login_at = ?5
            WHERE id = ?1 AND password_hash = ?2`,
        )
        .bind(userId, checkedPasswordHash, newPasswordHash, revokedBefore, session.createdAt),
      this.db
        .prepare(
          `INSERT INTO sessions (id, user_id, client, created_at, gen, gen_minted_at, gen_expires_at)
           SELECT ?3, ?1, ?4, ?5, 1, ?5, ?6 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1 AND password_hash = ?2)`,
        )
        .bind(userId, newPasswordHash, session.id, session.client, session.createdAt, session.genExpiresAt),
      this.db
        .prepare(
          `INSERT INTO security_events (user_id, type, at, session_id, detail)
           SELECT ?1, 'password_changed', ?3, ?4, NULL WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1 AND password_hash = ?2)`,
        )
        .bind(userId, newPasswordHash, revokedBefore, previousSessionId),
      this.db
        .prepare(
          `DELETE FROM login_attempts WHERE email = ?1 AND client_ip = ?2
             AND EXISTS (SELECT 1 FROM users WHERE id = ?3 AND password_hash = ?4)`,
        )
        .bind(throttleKey.email, throttleKey.clientIp, userId, newPasswordHash),
    ]);
    return results[0]?.meta.changes === 1;
  }

  // ---- events ------------------------------------------------------------------------------

  /** A `login_failed` event for the account with this email, if there is one. */
  async recordFailedLogin(email: string, at: number): Promise<void> {
    await this.guard(() =>
      this.db
        .prepare(
          `INSERT INTO security_events (user_id, type, at, session_id, detail)
           SELECT id, 'login_failed', ?2, NULL, NULL FROM users WHERE email = ?1`,
        )
        .bind(email, at)
        .run(),
    );
  }

  async insertEvent(userId: string, event: SecurityEvent): Promise<void> {
    await this.guard(() => this.eventStatement(userId, event).run());
  }

  async listEvents(userId: string, limit: number): Promise<SecurityEvent[]> {
    const { results } = await this.guard(() =>
      this.db
        .prepare('SELECT type, at, session_id, detail FROM security_events WHERE user_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2')
        .bind(userId, limit)
        .all<{ type: SecurityEventType; at: number; session_id: string | null; detail: string | null }>(),
    );
    return results.map((row) => ({
      type: row.type,
      at: row.at,
      sessionId: row.session_id,
      detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>),
    }));
  }
}
