/** Challenges of the passkey registrations the user asked for, each bound to the session that asked. */
export class PasskeyChallenges {
  constructor(private readonly sql: SqlStorage) {}

  /**
   * Records a registration challenge for `sessionId` until `expiresAt`. Expired ones go first, and
   * only the newest `kept` stay: the user's object must not grow with every options request.
   */
  save(challenge: string, sessionId: string, expiresAt: number, nowMs: number, kept: number): void {
    this.sql.exec('DELETE FROM passkey_challenges WHERE expires_at <= ?', nowMs);
    this.sql.exec(
      'INSERT INTO passkey_challenges (challenge, session_id, expires_at) VALUES (?, ?, ?)',
      challenge,
      sessionId,
      expiresAt,
    );
    this.sql.exec(
      `DELETE FROM passkey_challenges WHERE challenge NOT IN
         (SELECT challenge FROM passkey_challenges ORDER BY expires_at DESC, rowid DESC LIMIT ?)`,
      kept,
    );
  }

  /** Whether `challenge` was issued to `sessionId` and is unexpired at `nowMs`. */
  holds(challenge: string, sessionId: string, nowMs: number): boolean {
    return (
      this.sql
        .exec('SELECT 1 FROM passkey_challenges WHERE challenge = ? AND session_id = ? AND expires_at > ?', challenge, sessionId, nowMs)
        .toArray().length === 1
    );
  }

  /** Spends a registration challenge. */
  delete(challenge: string): void {
    this.sql.exec('DELETE FROM passkey_challenges WHERE challenge = ?', challenge);
  }
}
