import type { DirectoryWrite, PasskeyDeviceType, PasskeyLoginRecord } from '../records';
import { DirectoryPart } from './part';

/**
 * What a user's object writes to D1: its pending writes (revocations, deletion), and the D1 part
 * of each change it makes, in one transaction after them.
 */
export class ObjectWrites extends DirectoryPart {
  /**
   * The statements of the pending writes of a user's object, in order. Each is idempotent: resent,
   * it changes nothing more.
   */
  private writeStatements(writes: readonly DirectoryWrite[]): D1PreparedStatement[] {
    return writes.flatMap((write) => this.statementsOf(write));
  }

  private statementsOf(write: DirectoryWrite): D1PreparedStatement[] {
    switch (write.kind) {
      case 'revoke_user':
        return [
          this.db.prepare('UPDATE users SET revoked_before = MAX(revoked_before, ?2) WHERE id = ?1').bind(write.userId, write.at),
        ];
      case 'revoke_session':
        return [
          this.db
            .prepare('UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND user_id = ?2')
            .bind(write.sessionId, write.userId, write.at),
        ];
      case 'delete_user':
        return this.deleteUserStatements(write.userId);
    }
  }

  /**
   * Every D1 row of the user, in one transaction with whatever it is batched with: the failed
   * logins counted against the email (they tie addresses to the person; found through the user's
   * row, so a resend after the email was registered again by someone else touches nothing of
   * theirs), the user's message allowance, links, passkeys, the sessions' mirror rows, and the
   * user. The user's row goes last, so that nothing else outlives it whatever order D1 applies the
   * foreign keys in. Kept: the per-email allowance of reset messages (`reset:<email>`), which counts
   * whether or not an account exists (an account deleted and registered again must not start the
   * inbox's allowance over) and runs out within the hour; sign-in challenges name no user.
   */
  private deleteUserStatements(userId: string): D1PreparedStatement[] {
    return [
      this.db.prepare('DELETE FROM login_attempts WHERE email = (SELECT email FROM users WHERE id = ?1)').bind(userId),
      this.db.prepare('DELETE FROM email_sends WHERE key = ?1').bind(`verify:${userId}`),
      this.db.prepare('DELETE FROM email_tokens WHERE user_id = ?1').bind(userId),
      this.db.prepare('DELETE FROM passkeys WHERE user_id = ?1').bind(userId),
      this.db.prepare('DELETE FROM sessions WHERE user_id = ?1').bind(userId),
      this.db.prepare('DELETE FROM users WHERE id = ?1').bind(userId),
    ];
  }

  /** Applies the pending writes of a user's object, in order, in one transaction. */
  async applyWrites(writes: readonly DirectoryWrite[]): Promise<void> {
    if (writes.length > 0) await this.batch(this.writeStatements(writes));
  }

  /**
   * Runs `statements` in one transaction after the object's pending writes, which D1 must have
   * before anything the object does next. Answers the results of `statements` alone, in order.
   */
  private async afterPending(pending: readonly DirectoryWrite[], statements: D1PreparedStatement[]): Promise<D1Result[]> {
    const owed = this.writeStatements(pending);
    const results = await this.batch([...owed, ...statements]);
    return results.slice(owed.length);
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
    const results = await this.afterPending(pending, [
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
    return results[0]?.meta.changes === 1;
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
    const statements: D1PreparedStatement[] = [];
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
    const results = await this.afterPending(pending, statements);
    return results[changeAt]?.meta.changes === 1;
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
    const results = await this.afterPending(pending, [
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
    return results[0]?.meta.changes === 1;
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
    const results = await this.afterPending(pending, [
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
    if (results[0]?.meta.changes === 1) return { kind: 'recorded' };
    const row = results[2]?.results[0] as { counter: number } | undefined;
    return row ? { kind: 'counter_regressed', storedCounter: row.counter } : { kind: 'gone' };
  }
}
