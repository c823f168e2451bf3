import { now } from '../clock';
import { isUsableLink } from '../email/tokens';
import { renewalPolicy, sessionLiveness } from '../sessions/decide';
import { NOT_LIVE } from '../storage/liveness';
import { type AuthorityContext, logEvent, noteEmailVerified, type Refusal, refusedUnlessLive, tick, userOf } from './context';
import { deliver, keepPruning, retryLater, sendToDirectory } from './delivery';
import { type AuthorityResult, done, failed, type Reauthentication, type TokenGrant } from './results';
import { replacePassword } from './sign-in';

/** What the Worker checked of a password change (`UserAuthority.changePassword`). */
export interface PasswordChange {
  userId: string;
  sessionId: string;
  checkedPasswordHash: string;
  newPasswordHash: string;
  throttleKey: { email: string; clientIp: string };
}

/**
 * Replaces the password, revokes every session, and opens a fresh one for the person who changed
 * it, labelled like the session they changed it from. The caller's session must still be live
 * here, whatever D1's mirror said to the strict check.
 */
export async function changePassword(authority: AuthorityContext, input: PasswordChange): Promise<AuthorityResult<TokenGrant>> {
  const { records, directory } = authority;
  // Read before revoking anything: a hash that changed since the Worker checked it refuses
  // the change without signing anyone out.
  const hash = await sendToDirectory(authority, () => directory.passwordHashOf(input.userId));
  if (hash !== input.checkedPasswordHash) return failed('invalid_credentials');
  // Judged after that await, not before: a reuse detected meanwhile ends the caller's session.
  const user = userOf(authority, input.userId);
  const current = records.sessions.load(user.userId, input.sessionId);
  const liveness = sessionLiveness(current, user, now(), renewalPolicy(authority.config));
  if (current === null || liveness !== 'live') return failed(NOT_LIVE[liveness === 'live' ? 'revoked' : liveness]);

  const grant = await replacePassword(authority, {
    userId: user.userId,
    client: current.client,
    dpopJkt: current.dpopJkt,
    event: { type: 'password_changed', sessionId: input.sessionId },
    verifiesEmail: false,
    record: (pending, session) =>
      directory.recordPasswordChange({
        pending,
        userId: user.userId,
        checkedPasswordHash: input.checkedPasswordHash,
        newPasswordHash: input.newPasswordHash,
        session,
        throttleKey: input.throttleKey,
      }),
  });
  // Only a write to D1 that bypassed this object can get here; its revocation stands.
  return grant ? { ok: true, value: grant } : failed('invalid_credentials');
}

/**
 * POST /auth/password/reset: the password of the account whose reset link was followed is
 * replaced exactly as a change replaces it (every session revoked, a fresh one opened for the
 * person who followed the link), and the link is consumed in the same D1 transaction. Following
 * the link proves the mailbox, so the email counts as verified from then on.
 *
 * The link is read again here, inside this object's turn, before anything is revoked: two
 * requests with one link (a double click) are one at a time here, and the second finds the link
 * used and changes nothing, rather than signing out the session the first one opened.
 */
export async function resetPassword(
  authority: AuthorityContext,
  input: { userId: string; tokenHash: string; newPasswordHash: string; client: string | null },
): Promise<AuthorityResult<TokenGrant>> {
  const { directory } = authority;
  const link = await sendToDirectory(authority, () => directory.findLinkToken(input.tokenHash));
  if (!isUsableLink(link, 'reset', input.userId, now()) || link.passwordHashAtIssue === null) return failed('invalid_reset_token');
  const checkedPasswordHash = link.passwordHashAtIssue;
  const grant = await replacePassword(authority, {
    userId: input.userId,
    client: input.client,
    dpopJkt: null,
    event: { type: 'password_reset', sessionId: null },
    verifiesEmail: true,
    record: (pending, session) =>
      directory.recordPasswordChange({
        pending,
        userId: input.userId,
        checkedPasswordHash,
        newPasswordHash: input.newPasswordHash,
        session,
        throttleKey: null,
        resetLink: { tokenHash: input.tokenHash },
      }),
  });
  if (!grant) return failed('invalid_reset_token');
  await keepPruning(authority);
  return { ok: true, value: grant };
}

/**
 * POST /auth/email/verify: D1 consumes the link and marks the email verified, guarded, in one
 * transaction; then this object records it, so the user's next tokens say `email_verified`.
 */
export async function markEmailVerified(
  authority: AuthorityContext,
  input: { userId: string; tokenHash: string },
): Promise<AuthorityResult<null>> {
  const { records } = authority;
  const at = authority.transaction(() => {
    const user = userOf(authority, input.userId);
    const instant = tick(user);
    records.saveUser(user);
    return instant;
  });
  const pending = records.outbox.pending();
  const verified = await sendToDirectory(authority, () =>
    authority.directory.recordEmailVerified({ pending: pending.writes, userId: input.userId, tokenHash: input.tokenHash, at }),
  );
  authority.transaction(() => {
    records.outbox.delivered(pending.upToId);
    if (!verified) return;
    const user = userOf(authority, input.userId);
    noteEmailVerified(authority, user, at, 'link');
    records.saveUser(user);
  });
  if (!verified) return failed('invalid_verification_token');
  await keepPruning(authority);
  return done;
}

/**
 * An operator clears the user's login lockout: D1 forgets the failed logins counted against the
 * user's email from every client address. Logged as `lockout_cleared` (with how many addresses
 * it freed) when there was anything to clear, so the user learns that guessing may resume.
 */
export async function clearLockout(
  authority: AuthorityContext,
  input: { userId: string },
): Promise<AuthorityResult<{ clearedAddresses: number }>> {
  const cleared = await sendToDirectory(authority, () => authority.directory.clearLoginThrottle(input.userId));
  if (cleared > 0) {
    authority.transaction(() =>
      logEvent(authority, input.userId, { type: 'lockout_cleared', sessionId: null, detail: { addresses: cleared } }),
    );
  }
  return { ok: true, value: { clearedAddresses: cleared } };
}

/**
 * DELETE /auth/account: everything of the user goes, in D1 and here, for a live session of
 * theirs that proved the password or a passkey again.
 *
 * The order is what keeps an interrupted deletion safe (docs/SECURITY.md). First, in one
 * transaction here, every session is revoked (`revoked_before = now`: this object, which alone
 * decides renewals, renews none of them again) and the deletion of the user's D1 rows is queued
 * in the outbox. Then D1 deletes them in one transaction: the strict check, sign-ins, links and
 * passkeys find no user from then on. Only then does this object erase its storage and alarm.
 * A crash or a D1 failure between the steps leaves the deletion owed: the alarm (set before D1
 * is called) or the request's retry delivers it, and whichever operation delivers it erases the
 * records with it (user-records/outbox.ts, `delivered`). No step can leave a token able to renew.
 */
export async function deleteAccount(
  authority: AuthorityContext,
  input: { userId: string; sessionId: string; proof: Reauthentication },
): Promise<AuthorityResult<null>> {
  const { records, state } = authority;
  // A retry of a deletion already under way finishes it: the caller proved the same things.
  const owed = records.outbox.pending().writes.some((write) => write.kind === 'delete_user' && write.userId === input.userId);
  if (!owed) {
    const refused = await reauthenticationRefused(authority, input.userId, input.proof);
    if (refused !== null) return refused;
    // Judged after that await, not before: a reuse detected meanwhile ends the caller's session.
    const notLive = authority.transaction(() => {
      const user = userOf(authority, input.userId);
      const refusal = refusedUnlessLive(authority, user, input.sessionId);
      if (refusal !== null) return refusal;
      const at = tick(user);
      user.revokedBefore = at;
      records.saveUser(user);
      records.outbox.enqueue({ kind: 'delete_user', userId: user.userId, at });
      return null;
    });
    if (notLive !== null) return notLive;
    await retryLater(authority);
  }
  await deliver(authority);
  // The records are gone already (`delivered`); this drops the schema and the alarm too, then
  // lays the empty schema down again for any request that still reaches this instance.
  await state.blockConcurrencyWhile(async () => {
    await state.storage.deleteAlarm();
    await state.storage.deleteAll();
    records.migrate();
  });
  return done;
}

/**
 * Null when what the Worker verified still holds, read inside this object's turn, where every
 * change of the password hash and of the passkeys' counters is also made: the password hash is
 * still the one checked; the passkey is still the user's and its counter moved forward (as a
 * sign-in requires; a counter that did not is logged as a sign-in would log it).
 */
async function reauthenticationRefused(authority: AuthorityContext, userId: string, proof: Reauthentication): Promise<Refusal | null> {
  const { directory } = authority;
  if (proof.kind === 'password') {
    const hash = await sendToDirectory(authority, () => directory.passwordHashOf(userId));
    return hash === proof.checkedPasswordHash ? null : failed('invalid_credentials');
  }
  const stored = await sendToDirectory(authority, () => directory.passkeyCounterOf(userId, proof.passkeyId));
  if (stored === null) return failed('invalid_credentials');
  if (stored < proof.counter || (stored === 0 && proof.counter === 0)) return null;
  authority.transaction(() =>
    logEvent(authority, userId, {
      type: 'passkey_counter_regressed',
      sessionId: null,
      detail: { passkey_id: proof.passkeyId, stored_counter: stored, presented_counter: proof.counter },
    }),
  );
  return failed('invalid_credentials');
}
