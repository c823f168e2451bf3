import type { SessionMirror } from '../records';
import { DirectoryPart } from './part';

/** D1's mirror of each user's sessions and revocations, which strict checks read. */
export class SessionsMirror extends DirectoryPart {
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
}
