import { StorageUnavailableError } from '../../errors';
import { DirectoryPart } from './part';

/** The login throttle (table login_attempts): failed logins per (email, client address). */
export class LoginThrottle extends DirectoryPart {
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

  /**
   * Forgets every failed login counted against the user's email, from every client address: the
   * account's lockout, as an operator means it. Returns how many addresses had failures counted.
   */
  async clearLoginThrottle(userId: string): Promise<number> {
    const result = await this.guard(() =>
      this.db.prepare('DELETE FROM login_attempts WHERE email = (SELECT email FROM users WHERE id = ?1)').bind(userId).run(),
    );
    return result.meta.changes;
  }
}
