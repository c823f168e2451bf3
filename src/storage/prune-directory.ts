import { now } from '../clock';
import type { Config } from '../config';
import { SEND_WINDOW_MS } from '../email/links';
import { storeFor } from './store';

/**
 * The Cron Trigger's work: D1's rows that can no longer matter go, so the directory grows with
 * users, not with logins. A session's mirror row is dead once the session is past
 * SESSION_MAX_AGE (no strict check can find it live), a login-throttle row once its failures and
 * its lockout have run out, an emailed link once it has expired, a message count once its window
 * has run out, a passkey sign-in challenge once expired (an unanswered one is never deleted otherwise).
 */
export async function pruneDirectory(
  db: D1Database,
  config: Config,
): Promise<{ sessions: number; attempts: number; links: number; sends: number; challenges: number }> {
  const nowMs = now();
  const pruned = await storeFor(db).prune({
    sessionsCreatedBefore: nowMs - config.sessionMaxAgeSeconds * 1000,
    attemptsStaleBefore: nowMs - config.loginLockoutSeconds * 1000,
    sendWindowsStartedBefore: nowMs - SEND_WINDOW_MS,
    nowMs,
  });
  console.log(
    `latchkey: pruned ${pruned.sessions} session rows, ${pruned.attempts} login-attempt rows, ${pruned.links} expired links, ${pruned.sends} message counts and ${pruned.challenges} passkey challenges from D1`,
  );
  return pruned;
}
