import { StorageUnavailableError } from '../errors';
import type { DirectoryWrite, SessionMirror } from './records';

/**
 * Every D1 statement latchkey runs, as prepared statements with `?N` binds, and the mapping of
 * rows to domain records. D1 holds the directory of users, the login throttle and the mirror of
 * each user's revocations that strict checks read (migrations/); the user's Durable Object owns
 * the rest (user-records.ts). Any D1 failure surfaces as `StorageUnavailableError` (503), never as
 * a raw driver message.
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

  /** The user's current password hash, or null for an unknown user. */
  async passwordHashOf(userId: string): Promise<string | null> {
    const row = await this.guard(() =>
      this.db.prepare('SELECT password_hash FROM users WHERE id = ?1').bind(userId).first<{ password_hash: string }>(),
    );
    return row?.password_hash ?? null;
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

  // ---- the mirror of revocations --------------------------------------------------------

  /**
   * The strict check's one read: D1's mirror of the session, the user's revocation instant and
   * email. Null when the session is unknown or another user's.
   */
  async readSessionMirror(sessionId: string, userId: string): Promise<SessionMirror | null> {
    const row = await this.guard(() =>
      this.db
        .prepare(
          `SELECT s.created_at, s.revoked_at, u.revoked_before, u.email
             FROM sessions s JOIN users u ON u.id = s.user_id
            WHERE s.id = ?1 AND s.user_id = ?2`,
        )
        .bind(sessionId, userId)
        .first<{ created_at: number; revoked_at: number | null; revoked_before: number; email: string }>(),
    );
    if (!row) return null;
    return {
      session: { createdAt: row.created_at, revokedAt: row.revoked_at },
      user: { revokedBefore: row.revoked_before, email: row.email },
    };
  }

  /** The statement of one pending write of the user's object. Each is idempotent: resent, it changes nothing more. */
  private writeStatement(write: DirectoryWrite): D1PreparedStatement {
    switch (write.kind) {
      case 'revoke_user':
        return this.db
          .prepare('UPDATE users SET revoked_before = MAX(revoked_before, ?2) WHERE id = ?1')
          .bind(write.userId, write.at);
      case 'revoke_session':
        return this.db
          .prepare('UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND user_id = ?2')
          .bind(write.sessionId, write.userId, write.at);
    }
  }

  /** Applies the pending writes of a user's object, in order, in one transaction. */
  async applyWrites(writes: readonly DirectoryWrite[]): Promise<void> {
    if (writes.length > 0) await this.batch(writes.map((write) => this.writeStatement(write)));
  }

  /**
   * A login's D1 part, in one transaction after the object's pending writes: the session's mirror
   * row, only if the password hash is still the one that was checked (a password change in
   * between refuses the login); an upgraded hash; and the reset of the failure counter. True if
   * the session was recorded.
   */
  async recordLogin(input: {
    pending: readonly DirectoryWrite[];
    session: { id: string; userId: string; createdAt: number };
    checkedPasswordHash: string;
    upgradedPasswordHash: string | null;
    throttleKey: { email: string; clientIp: string };
  }): Promise<boolean> {
    const { pending, session, checkedPasswordHash, upgradedPasswordHash, throttleKey } = input;
    const results = await this.batch([
      ...pending.map((write) => this.writeStatement(write)),
      this.db
        .prepare(
          `INSERT INTO sessions (id, user_id, created_at)
           SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?2 AND password_hash = ?4)`,
        )
        .bind(session.id, session.userId, session.createdAt, checkedPasswordHash),
      this.db
        .prepare('UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2 AND ?3 IS NOT NULL')
        .bind(session.userId, checkedPasswordHash, upgradedPasswordHash),
      this.db
        .prepare(
          'DELETE FROM login_attempts WHERE email = ?1 AND client_ip = ?2 AND EXISTS (SELECT 1 FROM sessions WHERE id = ?3)',
        )
        .bind(throttleKey.email, throttleKey.clientIp, session.id),
    ]);
    return results[pending.length]?.meta.changes === 1;
  }

  /**
   * A password change's D1 part, in one transaction after the object's pending writes (which
   * include the revocation of every older session): the new hash, only if the old one is still
   * what was checked; the fresh session's mirror row and the reset of the failure counter, only if
   * the hash changed. False if the hash had changed in between.
   */
  async recordPasswordChange(input: {
    pending: readonly DirectoryWrite[];
    userId: string;
    checkedPasswordHash: string;
    newPasswordHash: string;
    session: { id: string; createdAt: number };
    throttleKey: { email: string; clientIp: string } | null;
  }): Promise<boolean> {
    const { pending, userId, checkedPasswordHash, newPasswordHash, session, throttleKey } = input;
    // The new hash carries a fresh random salt, so "the hash is now the new one" is true exactly
    // when the guarded UPDATE happened: the statements after it follow it or, like it, do nothing.
    const statements = [
      ...pending.map((write) => this.writeStatement(write)),
      this.db
        .prepare('UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2')
        .bind(userId, checkedPasswordHash, newPasswordHash),
      this.db
        .prepare(
          `INSERT INTO sessions (id, user_id, created_at)
           SELECT ?3, ?1, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1 AND password_hash = ?2)`,
        )
        .bind(userId, newPasswordHash, session.id, session.createdAt),
    ];
    if (throttleKey) {
      statements.push(
        this.db
          .prepare(
            `DELETE FROM login_attempts WHERE email = ?1 AND client_ip = ?2
               AND EXISTS (SELECT 1 FROM users WHERE id = ?3 AND password_hash = ?4)`,
          )
          .bind(throttleKey.email, throttleKey.clientIp, userId, newPasswordHash),
      );
    }
    const results = await this.batch(statements);
    return results[pending.length]?.meta.changes === 1;
  }

  // ---- pruning -----------------------------------------------------------------------------

  /**
   * Deletes what can no longer matter (the Cron Trigger, daily): mirror rows of sessions past
   * SESSION_MAX_AGE, which no strict check can find live, and login-throttle rows whose failures
   * and lockout have run out. Returns how many rows of each went.
   */
  async prune(input: { sessionsCreatedBefore: number; attemptsStaleBefore: number; nowMs: number }): Promise<{
    sessions: number;
    attempts: number;
  }> {
    const [sessions, attempts] = await this.batch([
      this.db.prepare('DELETE FROM sessions WHERE created_at < ?1').bind(input.sessionsCreatedBefore),
      this.db
        .prepare('DELETE FROM login_attempts WHERE last_failure_at < ?1 AND locked_until <= ?2')
        .bind(input.attemptsStaleBefore, input.nowMs),
    ]);
    return { sessions: sessions?.meta.changes ?? 0, attempts: attempts?.meta.changes ?? 0 };
  }
}
