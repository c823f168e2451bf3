import { DirectoryPart } from './part';

/** The daily deletion of what can no longer matter. */
export class Pruning extends DirectoryPart {
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
