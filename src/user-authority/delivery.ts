import { now } from '../clock';
import { renewalPolicy } from '../sessions/decide';
import type { AuthorityContext } from './context';

/** How often the object looks for sessions and events it may delete, while it holds any. */
const PRUNE_INTERVAL_MS = 24 * 60 * 60 * 1000;
/** Retries of writes owed to D1 back off from 1 s, doubling, up to this. */
const MAX_RETRY_DELAY_MS = 5 * 60 * 1000;

/** Runs a D1 call; on failure, the writes owed stay owed and the alarm will retry them. */
export async function sendToDirectory<T>(authority: AuthorityContext, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    if (authority.records.outbox.pending().writes.length > 0) {
      authority.transaction(() => authority.records.outbox.failedAttempt());
      await retryLater(authority);
    }
    throw error;
  }
}

/** Sends every write owed to D1; throws `StorageUnavailableError` if D1 does not take them. */
export async function deliver(authority: AuthorityContext): Promise<void> {
  const pending = authority.records.outbox.pending();
  if (pending.writes.length === 0) return;
  await sendToDirectory(authority, () => authority.directory.applyWrites(pending.writes));
  authority.transaction(() => authority.records.outbox.delivered(pending.upToId));
}

/** Sets the alarm for the next retry of the writes owed, unless one is due sooner. */
export async function retryLater(authority: AuthorityContext): Promise<void> {
  const attempts = authority.records.outbox.pending().attempts;
  const at = now() + Math.min(1000 * 2 ** attempts, MAX_RETRY_DELAY_MS);
  const scheduled = await authority.state.storage.getAlarm();
  if (scheduled === null || scheduled > at) await authority.state.storage.setAlarm(at);
}

/** Makes sure the alarm will come back to prune what this object now holds. */
export async function keepPruning(authority: AuthorityContext): Promise<void> {
  const { storage } = authority.state;
  if ((await storage.getAlarm()) === null) await storage.setAlarm(now() + PRUNE_INTERVAL_MS);
}

/**
 * The alarm's second half, once nothing is owed to D1: deletes what can no longer matter, and
 * wakes again while anything is left to prune.
 */
export async function prune(authority: AuthorityContext): Promise<void> {
  const { records, config } = authority;
  if (records.outbox.pending().writes.length > 0) return;
  const nowMs = now();
  const policy = renewalPolicy(config);
  authority.transaction(() =>
    records.prune({
      sessionsCreatedBefore: nowMs - policy.sessionMaxAgeMs,
      sessionsIdleBeforeSeconds: Math.floor((nowMs - policy.renewWindowMs) / 1000),
      eventsBefore: nowMs - config.eventRetentionDays * 86_400_000,
      eventsKept: config.eventRetentionCount,
      proofsBefore: nowMs,
      nowMs,
    }),
  );
  if (records.holdsAnything()) await authority.state.storage.setAlarm(nowMs + PRUNE_INTERVAL_MS);
}
