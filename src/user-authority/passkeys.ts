import { now } from '../clock';
import { PASSKEY_CHALLENGE_TTL_MS } from '../passkeys/ceremony';
import type { NewPasskey, PasskeyRecord } from '../storage/records';
import { type AuthorityContext, append, logEvent, type Refusal, refusedUnlessLive, tick, userOf } from './context';
import { sendToDirectory } from './delivery';
import { type AuthorityResult, done, failed } from './results';

/** Registration challenges kept per user, the newest: options asked for and never answered. */
const MAX_PENDING_REGISTRATIONS = 5;

/** Records a registration challenge for a live session of the user, in the caller's transaction. */
export function beginRegistration(
  authority: AuthorityContext,
  input: { userId: string; sessionId: string; challenge: string },
): Refusal | null {
  const refused = refusedUnlessLive(authority, userOf(authority, input.userId), input.sessionId);
  if (refused !== null) return refused;
  const nowMs = now();
  authority.records.passkeyChallenges.save(
    input.challenge,
    input.sessionId,
    nowMs + PASSKEY_CHALLENGE_TTL_MS,
    nowMs,
    MAX_PENDING_REGISTRATIONS,
  );
  return null;
}

/**
 * Stores a passkey whose registration the Worker verified, if the challenge it answers was
 * issued to this session and has not expired, and the session is still live here (whatever
 * D1's mirror told the strict check). The challenge is spent once D1 has answered, so a retry
 * after D1 failed can use it again and a replay after success cannot.
 */
export async function addPasskey(
  authority: AuthorityContext,
  input: { userId: string; sessionId: string; challenge: string; passkey: NewPasskey },
): Promise<AuthorityResult<PasskeyRecord>> {
  const { records, directory } = authority;
  const user = userOf(authority, input.userId);
  const refused = refusedUnlessLive(authority, user, input.sessionId);
  if (refused !== null) return refused;
  if (!records.passkeyChallenges.holds(input.challenge, input.sessionId, now())) return failed('passkey_rejected');
  const at = tick(user);
  authority.transaction(() => records.saveUser(user));
  const stored = await sendToDirectory(authority, () => directory.insertPasskey(user.userId, input.passkey, at));
  authority.transaction(() => {
    records.passkeyChallenges.delete(input.challenge);
    if (stored) {
      append(authority, { type: 'passkey_added', at, sessionId: input.sessionId, detail: { passkey_id: stored.id, name: stored.name } });
    }
  });
  return stored ? { ok: true, value: stored } : failed('passkey_rejected');
}

/**
 * Deletes one of the user's passkeys, for a live session of theirs. Every account has a password
 * (registration requires one and nothing removes it), so no removal can leave the account
 * without a way to sign in. Sessions opened with the passkey stay: ending them is logout-all's.
 */
export async function removePasskey(
  authority: AuthorityContext,
  input: { userId: string; sessionId: string; passkeyId: string },
): Promise<AuthorityResult<null>> {
  const user = userOf(authority, input.userId);
  const refused = refusedUnlessLive(authority, user, input.sessionId);
  if (refused !== null) return refused;
  const removed = await sendToDirectory(authority, () => authority.directory.deletePasskey(user.userId, input.passkeyId));
  if (!removed) return failed('not_found');
  // Loaded again (logEvent): a renewal may have moved the user's state while D1 was awaited.
  authority.transaction(() =>
    logEvent(authority, user.userId, { type: 'passkey_removed', sessionId: input.sessionId, detail: { passkey_id: input.passkeyId } }),
  );
  return done;
}
