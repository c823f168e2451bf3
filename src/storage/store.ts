import type { LinkPurpose, LinkTokenRecord } from '../email/tokens';
import { StorageUnavailableError } from '../errors';
import type {
  DirectoryWrite,
  NewPasskey,
  PasskeyCredential,
  PasskeyDeviceType,
  PasskeyLoginRecord,
  PasskeyRecord,
  SessionMirror,
} from './records';

interface PasskeyRow {
  credential_id: string;
  user_id: string;
  name: string | null;
  counter: number;
  backed_up: number;
  device_type: PasskeyDeviceType;
  transports: string;
  created_at: number;
  last_used_at: number | null;
}

const PASSKEY_COLUMNS = 'credential_id, user_id, name, counter, backed_up, device_type, transports, created_at, last_used_at';

function toPasskey(row: PasskeyRow): PasskeyRecord {
  return {
    id: row.credential_id,
    userId: row.user_id,
    name: row.name,
    counter: row.counter,
    deviceType: row.device_type,
    backedUp: row.backed_up === 1,
    transports: JSON.parse(row.transports) as string[],
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

/** A fixed-window count of messages per key (table email_sends). */
export interface SendAllowance {
  /** e.g. `reset:<email>`, `verify:<user id>`. */
  key: string;
  /** Messages allowed per window. */
  max: number;
  windowMs: number;
}

/** What became of a request to issue a link. */
export type IssuedLink =
  | { kind: 'issued'; email: string }
  | { kind: 'throttled'; retryAfterMs: number }
  /** No account with that email (reset), or an unknown user or an email already verified (verify). */
  | { kind: 'not_issued' };

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

  /** Whether the user's email address is verified; false for an unknown user. */
  async emailVerifiedOf(userId: string): Promise<boolean> {
    const row = await this.guard(() =>
      this.db.prepare('SELECT email_verified_at FROM users WHERE id = ?1').bind(userId).first<{ email_verified_at: number | null }>(),
    );
    return row !== null && row.email_verified_at !== null;
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
  }): Promise<{
    failures: number;
    lockedUntil: number;
    user: { id: string; passwordHash: string; emailVerified: boolean } | null;
  }> {
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
      this.db.prepare('SELECT id, password_hash, email_verified_at FROM users WHERE email = ?1').bind(email),
    ]);
    const attempt = charged?.results[0] as { failures: number; locked_until: number } | undefined;
    const user = found?.results[0] as { id: string; password_hash: string; email_verified_at: number | null } | undefined;
    if (!attempt) throw new StorageUnavailableError(new Error('login attempt upsert returned no row'));
    return {
      failures: attempt.failures,
      lockedUntil: attempt.locked_until,
      user: user ? { id: user.id, passwordHash: user.password_hash, emailVerified: user.email_verified_at !== null } : null,
    };
  }

  /** Forgets the failed logins of (email, client address): the password was right. */
  async clearLoginAttempts(throttleKey: { email: string; clientIp: string }): Promise<void> {
    await this.guard(() =>
      this.db
        .prepare('DELETE FROM login_attempts WHERE email = ?1 AND client_ip = ?2')
        .bind(throttleKey.email, throttleKey.clientIp)
        .run(),
    );
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
          `SELECT s.created_at, s.revoked_at, u.revoked_before, u.email, u.email_verified_at
             FROM sessions s JOIN users u ON u.id = s.user_id
            WHERE s.id = ?1 AND s.user_id = ?2`,
        )
        .bind(sessionId, userId)
        .first<{
          created_at: number;
          revoked_at: number | null;
          revoked_before: number;
          email: string;
          email_verified_at: number | null;
        }>(),
    );
    if (!row) return null;
    return {
      session: { createdAt: row.created_at, revokedAt: row.revoked_at },
      user: { revokedBefore: row.revoked_before, email: row.email, emailVerified: row.email_verified_at !== null },
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
   *
   * A reset (`resetLink`) also consumes its link, guarded (unused, unexpired, this user's reset
   * link), and the new hash goes in only if this batch consumed it, so a link works once whatever
   * runs at the same time; following the link proves the mailbox, so the email counts as verified.
   */
  async recordPasswordChange(input: {
    pending: readonly DirectoryWrite[];
    userId: string;
    checkedPasswordHash: string;
    newPasswordHash: string;
    session: { id: string; createdAt: number };
    throttleKey: { email: string; clientIp: string } | null;
    resetLink?: { tokenHash: string };
  }): Promise<boolean> {
    const { pending, userId, checkedPasswordHash, newPasswordHash, session, throttleKey, resetLink } = input;
    const statements = pending.map((write) => this.writeStatement(write));
    if (resetLink) {
      statements.push(
        this.db
          .prepare(
            `UPDATE email_tokens SET used_at = ?3
              WHERE token_hash = ?1 AND user_id = ?2 AND purpose = 'reset' AND used_at IS NULL AND expires_at > ?3`,
          )
          .bind(resetLink.tokenHash, userId, session.createdAt),
      );
    }
    // The new hash carries a fresh random salt, so "the hash is now the new one" is true exactly
    // when the guarded UPDATE happened: the statements after it follow it or, like it, do nothing.
    const changeAt = statements.length;
    statements.push(
      resetLink
        ? this.db
            .prepare(
              `UPDATE users SET password_hash = ?3, email_verified_at = COALESCE(email_verified_at, ?5)
                WHERE id = ?1 AND password_hash = ?2
                  AND EXISTS (SELECT 1 FROM email_tokens WHERE token_hash = ?4 AND user_id = ?1 AND used_at = ?5)`,
            )
            .bind(userId, checkedPasswordHash, newPasswordHash, resetLink.tokenHash, session.createdAt)
        : this.db
            .prepare('UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2')
            .bind(userId, checkedPasswordHash, newPasswordHash),
      this.db
        .prepare(
          `INSERT INTO sessions (id, user_id, created_at)
           SELECT ?3, ?1, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1 AND password_hash = ?2)`,
        )
        .bind(userId, newPasswordHash, session.id, session.createdAt),
    );
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
    return results[changeAt]?.meta.changes === 1;
  }

  // ---- emailed links -----------------------------------------------------------------------

  /** The count of messages for `allowance.key`, charged one more (a window that ran out starts over). */
  private chargeSend(allowance: SendAllowance, nowMs: number): D1PreparedStatement {
    return this.db
      .prepare(
        `INSERT INTO email_sends (key, window_started_at, sent) VALUES (?1, ?2, 1)
         ON CONFLICT (key) DO UPDATE SET
           sent = CASE WHEN window_started_at + ?3 <= ?2 THEN 1 ELSE sent + 1 END,
           window_started_at = CASE WHEN window_started_at + ?3 <= ?2 THEN ?2 ELSE window_started_at END
         RETURNING sent, window_started_at`,
      )
      .bind(allowance.key, nowMs, allowance.windowMs);
  }

  private issued(
    charge: D1Result | undefined,
    inserted: D1Result | undefined,
    allowance: SendAllowance,
    nowMs: number,
    email: string | undefined,
  ): IssuedLink {
    const count = charge?.results[0] as { sent: number; window_started_at: number } | undefined;
    if (!count) throw new StorageUnavailableError(new Error('email_sends upsert returned no row'));
    if (count.sent > allowance.max) return { kind: 'throttled', retryAfterMs: count.window_started_at + allowance.windowMs - nowMs };
    return inserted?.meta.changes === 1 && email !== undefined ? { kind: 'issued', email } : { kind: 'not_issued' };
  }

  /**
   * Charges one message to `allowance` and, within it, records a reset link for the account with
   * this email, bound to the account's password hash at this moment. One round trip; the charge
   * counts whether or not the account exists.
   */
  async issueResetLink(input: {
    email: string;
    tokenHash: string;
    nowMs: number;
    expiresAt: number;
    allowance: SendAllowance;
  }): Promise<IssuedLink> {
    const { email, tokenHash, nowMs, expiresAt, allowance } = input;
    const [charge, inserted] = await this.batch([
      this.chargeSend(allowance, nowMs),
      this.db
        .prepare(
          `INSERT INTO email_tokens (token_hash, user_id, purpose, password_hash_at_issue, expires_at)
           SELECT ?1, id, 'reset', password_hash, ?2 FROM users
            WHERE email = ?3 AND (SELECT sent FROM email_sends WHERE key = ?4) <= ?5`,
        )
        .bind(tokenHash, expiresAt, email, allowance.key, allowance.max),
    ]);
    return this.issued(charge, inserted, allowance, nowMs, email);
  }

  /**
   * Charges one message to `allowance` and, within it, records a verification link for the user,
   * unless their email is verified already. Answers the address to send it to.
   */
  async issueVerificationLink(input: {
    userId: string;
    tokenHash: string;
    nowMs: number;
    expiresAt: number;
    allowance: SendAllowance;
  }): Promise<IssuedLink> {
    const { userId, tokenHash, nowMs, expiresAt, allowance } = input;
    const [charge, inserted, user] = await this.batch([
      this.chargeSend(allowance, nowMs),
      this.db
        .prepare(
          `INSERT INTO email_tokens (token_hash, user_id, purpose, password_hash_at_issue, expires_at)
           SELECT ?1, id, 'verify', NULL, ?2 FROM users
            WHERE id = ?3 AND email_verified_at IS NULL AND (SELECT sent FROM email_sends WHERE key = ?4) <= ?5`,
        )
        .bind(tokenHash, expiresAt, userId, allowance.key, allowance.max),
      this.db.prepare('SELECT email FROM users WHERE id = ?1').bind(userId),
    ]);
    const email = (user?.results[0] as { email: string } | undefined)?.email;
    return this.issued(charge, inserted, allowance, nowMs, email);
  }

  /** A link token by its hash, with its user's current password hash; null when unknown. */
  async findLinkToken(tokenHash: string): Promise<LinkTokenRecord | null> {
    const row = await this.guard(() =>
      this.db
        .prepare(
          `SELECT t.user_id, t.purpose, t.password_hash_at_issue, t.expires_at, t.used_at, u.password_hash
             FROM email_tokens t JOIN users u ON u.id = t.user_id
            WHERE t.token_hash = ?1`,
        )
        .bind(tokenHash)
        .first<{
          user_id: string;
          purpose: LinkPurpose;
          password_hash_at_issue: string | null;
          expires_at: number;
          used_at: number | null;
          password_hash: string;
        }>(),
    );
    if (!row) return null;
    return {
      userId: row.user_id,
      purpose: row.purpose,
      passwordHashAtIssue: row.password_hash_at_issue,
      expiresAt: row.expires_at,
      usedAt: row.used_at,
      currentPasswordHash: row.password_hash,
    };
  }

  /**
   * A verification's D1 part, in one transaction after the object's pending writes: the link
   * consumed, guarded (unused, unexpired at `at`, this user's verification link), and the email
   * marked verified only if this batch consumed it. True if it did.
   */
  async recordEmailVerified(input: {
    pending: readonly DirectoryWrite[];
    userId: string;
    tokenHash: string;
    at: number;
  }): Promise<boolean> {
    const { pending, userId, tokenHash, at } = input;
    const results = await this.batch([
      ...pending.map((write) => this.writeStatement(write)),
      this.db
        .prepare(
          `UPDATE email_tokens SET used_at = ?3
            WHERE token_hash = ?1 AND user_id = ?2 AND purpose = 'verify' AND used_at IS NULL AND expires_at > ?3`,
        )
        .bind(tokenHash, userId, at),
      this.db
        .prepare(
          `UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?3)
            WHERE id = ?2 AND EXISTS (SELECT 1 FROM email_tokens WHERE token_hash = ?1 AND user_id = ?2 AND used_at = ?3)`,
        )
        .bind(tokenHash, userId, at),
    ]);
    return results[pending.length]?.meta.changes === 1;
  }

  // ---- passkeys ----------------------------------------------------------------------------

  /** The user's passkeys, newest first. */
  async passkeysOf(userId: string): Promise<PasskeyRecord[]> {
    const { results } = await this.guard(() =>
      this.db
        .prepare(`SELECT ${PASSKEY_COLUMNS} FROM passkeys WHERE user_id = ?1 ORDER BY created_at DESC, credential_id`)
        .bind(userId)
        .all<PasskeyRow>(),
    );
    return results.map(toPasskey);
  }

  /** Records the challenge of a passkey sign-in's request options, until `expiresAt`. */
  async insertLoginChallenge(challenge: string, expiresAt: number): Promise<void> {
    await this.guard(() =>
      this.db.prepare('INSERT INTO webauthn_challenges (challenge, expires_at) VALUES (?1, ?2)').bind(challenge, expiresAt).run(),
    );
  }

  /**
   * A passkey sign-in's first step, in one round trip: spends the challenge its client data names
   * (deleted whether or not it is still valid, so it can be answered at most once) and looks the
   * presented credential up. The challenge counts only if it was issued here and has not expired.
   */
  async beginPasskeyLogin(input: { challenge: string; credentialId: string; nowMs: number }): Promise<{
    challengeValid: boolean;
    credential: PasskeyCredential | null;
  }> {
    const [spent, found] = await this.batch([
      this.db.prepare('DELETE FROM webauthn_challenges WHERE challenge = ?1 RETURNING expires_at').bind(input.challenge),
      this.db
        .prepare('SELECT credential_id, user_id, public_key, counter, transports FROM passkeys WHERE credential_id = ?1')
        .bind(input.credentialId),
    ]);
    const challenge = spent?.results[0] as { expires_at: number } | undefined;
    const row = found?.results[0] as
      | { credential_id: string; user_id: string; public_key: string; counter: number; transports: string }
      | undefined;
    return {
      challengeValid: challenge !== undefined && challenge.expires_at > input.nowMs,
      credential: row
        ? {
            id: row.credential_id,
            userId: row.user_id,
            publicKey: row.public_key,
            counter: row.counter,
            transports: JSON.parse(row.transports) as string[],
          }
        : null,
    };
  }

  /**
   * Stores a verified passkey for the user. False when the credential ID is already registered to
   * anyone else, or to this user with another key (WebAuthn §7.1 step 26: a credential ID names one
   * credential of one user). The same passkey sent again (a retry after a lost answer) is true.
   */
  async insertPasskey(userId: string, passkey: NewPasskey, nowMs: number): Promise<PasskeyRecord | null> {
    const [, stored] = await this.batch([
      this.db
        .prepare(
          `INSERT INTO passkeys (credential_id, user_id, public_key, counter, backed_up, device_type, transports, name, created_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (credential_id) DO NOTHING`,
        )
        .bind(
          passkey.id,
          userId,
          passkey.publicKey,
          passkey.counter,
          passkey.backedUp ? 1 : 0,
          passkey.deviceType,
          JSON.stringify(passkey.transports),
          passkey.name,
          nowMs,
        ),
      this.db
        .prepare(`SELECT ${PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = ?1 AND user_id = ?2 AND public_key = ?3`)
        .bind(passkey.id, userId, passkey.publicKey),
    ]);
    const row = stored?.results[0] as PasskeyRow | undefined;
    return row ? toPasskey(row) : null;
  }

  /** Deletes one of the user's passkeys; false if the user has none by that ID. */
  async deletePasskey(userId: string, credentialId: string): Promise<boolean> {
    const result = await this.guard(() =>
      this.db.prepare('DELETE FROM passkeys WHERE credential_id = ?1 AND user_id = ?2').bind(credentialId, userId).run(),
    );
    return result.meta.changes === 1;
  }

  /**
   * A passkey sign-in's D1 part, in one transaction after the object's pending writes: the
   * session's mirror row, only if the passkey is still the user's and the counter presented is
   * above the one stored (WebAuthn §7.2 step 22; both zero means the authenticator keeps no
   * counter); then the passkey's new counter, backup state and last use, only if the session was
   * recorded. The guard and the update are one transaction, so of two sign-ins presenting the same
   * counter only one can pass. What the guard saw is read back to tell why a refusal happened.
   */
  async recordPasskeyLogin(input: {
    pending: readonly DirectoryWrite[];
    session: { id: string; userId: string; createdAt: number };
    credentialId: string;
    counter: number;
    deviceType: PasskeyDeviceType;
    backedUp: boolean;
  }): Promise<PasskeyLoginRecord> {
    const { pending, session, credentialId, counter, deviceType, backedUp } = input;
    const results = await this.batch([
      ...pending.map((write) => this.writeStatement(write)),
      this.db
        .prepare(
          `INSERT INTO sessions (id, user_id, created_at)
           SELECT ?1, ?2, ?3 WHERE EXISTS (
             SELECT 1 FROM passkeys WHERE credential_id = ?4 AND user_id = ?2
                AND (counter < ?5 OR (counter = 0 AND ?5 = 0)))`,
        )
        .bind(session.id, session.userId, session.createdAt, credentialId, counter),
      this.db
        .prepare(
          `UPDATE passkeys SET counter = ?3, backed_up = ?4, device_type = ?5, last_used_at = ?6
            WHERE credential_id = ?1 AND user_id = ?2 AND EXISTS (SELECT 1 FROM sessions WHERE id = ?7)`,
        )
        .bind(credentialId, session.userId, counter, backedUp ? 1 : 0, deviceType, session.createdAt, session.id),
      this.db
        .prepare('SELECT counter FROM passkeys WHERE credential_id = ?1 AND user_id = ?2')
        .bind(credentialId, session.userId),
    ]);
    if (results[pending.length]?.meta.changes === 1) return { kind: 'recorded' };
    const row = results[pending.length + 2]?.results[0] as { counter: number } | undefined;
    return row ? { kind: 'counter_regressed', storedCounter: row.counter } : { kind: 'gone' };
  }

  // ---- pruning -----------------------------------------------------------------------------

  /**
   * Deletes what can no longer matter (the Cron Trigger, daily): mirror rows of sessions past
   * SESSION_MAX_AGE, which no strict check can find live; login-throttle rows whose failures
   * and lockout have run out; emailed links past their expiry, used or not (nothing can use them);
   * message counts whose window has run out; and passkey sign-in challenges past their expiry. Returns how many rows of each went.
   */
  async prune(input: {
    sessionsCreatedBefore: number;
    attemptsStaleBefore: number;
    sendWindowsStartedBefore: number;
    nowMs: number;
  }): Promise<{ sessions: number; attempts: number; links: number; sends: number; challenges: number }> {
    const [sessions, attempts, links, sends, challenges] = await this.batch([
      this.db.prepare('DELETE FROM sessions WHERE created_at < ?1').bind(input.sessionsCreatedBefore),
      this.db
        .prepare('DELETE FROM login_attempts WHERE last_failure_at < ?1 AND locked_until <= ?2')
        .bind(input.attemptsStaleBefore, input.nowMs),
      this.db.prepare('DELETE FROM email_tokens WHERE expires_at <= ?1').bind(input.nowMs),
      this.db.prepare('DELETE FROM email_sends WHERE window_started_at < ?1').bind(input.sendWindowsStartedBefore),
      this.db.prepare('DELETE FROM webauthn_challenges WHERE expires_at <= ?1').bind(input.nowMs),
    ]);
    return {
      sessions: sessions?.meta.changes ?? 0,
      attempts: attempts?.meta.changes ?? 0,
      links: links?.meta.changes ?? 0,
      sends: sends?.meta.changes ?? 0,
      challenges: challenges?.meta.changes ?? 0,
    };
  }
}
