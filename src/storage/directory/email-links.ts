import type { LinkPurpose, LinkTokenRecord } from '../../email/tokens';
import { StorageUnavailableError } from '../../errors';
import { DirectoryPart } from './part';

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

/** Emailed links (table email_tokens) and the allowance of messages they are sent within (email_sends). */
export class EmailLinks extends DirectoryPart {
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
}
