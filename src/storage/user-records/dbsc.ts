import type { DbscChallenge } from '../../dbsc/challenges';
import type { DbscPublicKey } from '../../dbsc/proof';

/** Device Bound Session Credentials: the browser's key of a bound session, and the challenges its proofs sign. */
export class DbscRecords {
  constructor(private readonly sql: SqlStorage) {}

  /**
   * Binds a live session to its DBSC key, once: false when the session is unknown, revoked, or
   * already bound (a binding never changes).
   */
  bindKey(sessionId: string, jkt: string, key: DbscPublicKey): boolean {
    return (
      this.sql
        .exec(
          `UPDATE sessions SET dbsc_jkt = ?, dbsc_key = ?
            WHERE id = ? AND dbsc_jkt IS NULL AND revoked_at IS NULL RETURNING id`,
          jkt,
          JSON.stringify(key),
          sessionId,
        )
        .toArray().length === 1
    );
  }

  /** The DBSC key a session is bound to, or null. */
  loadKey(sessionId: string): DbscPublicKey | null {
    const row = this.sql.exec<{ dbsc_key: string | null }>('SELECT dbsc_key FROM sessions WHERE id = ?', sessionId).toArray()[0];
    return row?.dbsc_key ? (JSON.parse(row.dbsc_key) as DbscPublicKey) : null;
  }

  /**
   * Records an issued challenge. The lapsed go first, and of its session only the newest
   * `keptPerSession` stay: requests without a proof must not make the object grow.
   */
  saveChallenge(challenge: DbscChallenge, nowMs: number, keptPerSession: number): void {
    this.sql.exec('DELETE FROM dbsc_challenges WHERE expires_at <= ?', nowMs);
    this.sql.exec(
      'INSERT INTO dbsc_challenges (challenge, session_id, expires_at) VALUES (?, ?, ?)',
      challenge.value,
      challenge.sessionId,
      challenge.expiresAtMs,
    );
    this.sql.exec(
      `DELETE FROM dbsc_challenges WHERE session_id = ? AND challenge NOT IN
         (SELECT challenge FROM dbsc_challenges WHERE session_id = ? ORDER BY rowid DESC LIMIT ?)`,
      challenge.sessionId,
      challenge.sessionId,
      keptPerSession,
    );
  }

  /** The stored challenge with this value, of whichever session, or undefined. */
  findChallenge(value: string): DbscChallenge | undefined {
    const row = this.sql
      .exec<{ challenge: string; session_id: string; expires_at: number }>(
        'SELECT challenge, session_id, expires_at FROM dbsc_challenges WHERE challenge = ?',
        value,
      )
      .toArray()[0];
    return row && { value: row.challenge, sessionId: row.session_id, expiresAtMs: row.expires_at };
  }

  /** Uses a challenge up. */
  deleteChallenge(value: string): void {
    this.sql.exec('DELETE FROM dbsc_challenges WHERE challenge = ?', value);
  }

  /** Forgets every challenge of a session. */
  forgetChallenges(sessionId: string): void {
    this.sql.exec('DELETE FROM dbsc_challenges WHERE session_id = ?', sessionId);
  }
}
