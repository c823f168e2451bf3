import type { AccountRecord } from '../records';
import { DirectoryPart } from './part';

/** The users table: accounts, their password hash and email state, and the operator's view of one. */
export class Users extends DirectoryPart {
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

  /**
   * An account as an operator sees it, by id or by normalized email; null when there is none.
   * One statement. A lockout is judged as `chargeLoginAttempt` judges it: an address is locked
   * while its `locked_until` is ahead of `nowMs`, and its failures still count until they or its
   * lockout have run out (`lockoutMs` after the last failure).
   */
  async accountOf(lookup: { id: string } | { email: string }, nowMs: number, lockoutMs: number): Promise<AccountRecord | null> {
    const where = 'id' in lookup ? 'u.id = ?1' : 'u.email = ?1';
    const key = 'id' in lookup ? lookup.id : lookup.email;
    const row = await this.guard(() =>
      this.db
        .prepare(
          `SELECT u.id, u.email, u.created_at, u.email_verified_at, u.revoked_before,
                  (SELECT COUNT(*) FROM passkeys p WHERE p.user_id = u.id) AS passkeys,
                  (SELECT COUNT(*) FROM login_attempts a WHERE a.email = u.email AND a.locked_until > ?2) AS locked_addresses,
                  (SELECT MAX(a.locked_until) FROM login_attempts a WHERE a.email = u.email AND a.locked_until > ?2) AS locked_until,
                  (SELECT COUNT(*) FROM login_attempts a WHERE a.email = u.email
                      AND NOT ((a.locked_until <> 0 AND a.locked_until <= ?2) OR (a.locked_until = 0 AND a.last_failure_at + ?3 <= ?2))
                  ) AS failing_addresses
             FROM users u WHERE ${where}`,
        )
        .bind(key, nowMs, lockoutMs)
        .first<{
          id: string;
          email: string;
          created_at: number;
          email_verified_at: number | null;
          revoked_before: number;
          passkeys: number;
          locked_addresses: number;
          locked_until: number | null;
          failing_addresses: number;
        }>(),
    );
    if (!row) return null;
    return {
      id: row.id,
      email: row.email,
      createdAt: row.created_at,
      emailVerifiedAt: row.email_verified_at,
      revokedBefore: row.revoked_before,
      passkeys: row.passkeys,
      lockout: {
        lockedAddresses: row.locked_addresses,
        lockedUntil: row.locked_until,
        failingAddresses: row.failing_addresses,
      },
    };
  }
}
