import { newSession } from '../sessions/build';
import type { SessionRecord } from '../sessions/decide';
import type { DirectoryWrite, EventDetail, PasskeyDeviceType, SecurityEvent } from '../storage/records';
import { type AuthorityContext, append, noteEmailVerified, tick, userOf } from './context';
import { keepPruning, sendToDirectory } from './delivery';
import { grant } from './grant';
import { type AuthorityResult, failed, type ProofOfPossession, type TokenGrant } from './results';

/** What a sign-in's D1 write says: the session's mirror row written, or not, and an event to log instead. */
type Recorded = { opened: boolean; refusal: Pick<SecurityEvent, 'type' | 'detail'> | null };

/** A new session for `userId` at `at` (sessions/build.ts), with a random id. */
function openedSession(authority: AuthorityContext, userId: string, client: string | null, at: number, dpopJkt: string | null): SessionRecord {
  const { accessTokenTtlSeconds } = authority.config;
  return newSession({ id: crypto.randomUUID(), userId, client, dpopJkt, at, accessTokenTtlSeconds });
}

/**
 * The one path of every sign-in. `record` writes the session's D1 mirror row, guarded by what
 * the Worker checked (the password hash, or the passkey and its counter), in one batch after the
 * writes this object owes D1; only if it was written does this object record the session (bound
 * to the login proof's key, if one came), move `last_login_at` (the user proved their
 * credentials: PROTOCOL.md rule 7) and log `login`. A refusal may name an event to log instead.
 */
async function openSession(
  authority: AuthorityContext,
  input: { userId: string; client: string | null; detail: EventDetail | null; dpop: ProofOfPossession | null; emailVerified: boolean },
  record: (pending: readonly DirectoryWrite[], session: SessionRecord) => Promise<Recorded>,
): Promise<AuthorityResult<TokenGrant>> {
  const { records } = authority;
  const user = userOf(authority, input.userId);
  const at = tick(user);
  const fresh = authority.transaction(() => {
    records.saveUser(user);
    return input.dpop === null || records.sessions.useProofOnce(input.dpop.jti, input.dpop.usableUntilMs);
  });
  if (!fresh) return failed('invalid_dpop_proof');
  const session = openedSession(authority, user.userId, input.client, at, input.dpop?.jkt ?? null);
  const pending = records.outbox.pending();
  const { opened, refusal } = await sendToDirectory(authority, () => record(pending.writes, session));
  authority.transaction(() => {
    records.outbox.delivered(pending.upToId);
    if (!opened) {
      if (refusal) append(authority, { ...refusal, at, sessionId: null });
      return;
    }
    records.sessions.insert(session);
    // Loaded again: a renewal may have run while D1 was awaited (theft detected, the user's
    // revocation instant moved), and saving the copy from before would undo it.
    const latest = userOf(authority, user.userId);
    latest.lastLoginAt = at;
    if (input.emailVerified) noteEmailVerified(authority, latest, at, 'link');
    records.saveUser(latest);
    append(authority, { type: 'login', at, sessionId: session.id, detail: input.detail });
  });
  if (!opened) return failed('invalid_credentials');
  await keepPruning(authority);
  return { ok: true, value: await grant(authority, session, at) };
}

/** What the Worker checked of a password login (`UserAuthority.login`). */
export interface PasswordLogin {
  userId: string;
  checkedPasswordHash: string;
  upgradedPasswordHash: string | null;
  client: string | null;
  throttleKey: { email: string; clientIp: string };
  /** The login's DPoP proof, verified by the Worker: the new session is bound to its key. */
  dpop: ProofOfPossession | null;
  emailVerified: boolean;
}

/** A password login: D1's mirror row only if the hash the Worker checked is still the user's. */
export function signInWithPassword(authority: AuthorityContext, input: PasswordLogin): Promise<AuthorityResult<TokenGrant>> {
  const { userId, client, dpop, emailVerified } = input;
  const opening = { userId, client, detail: client === null ? null : { client }, dpop, emailVerified };
  return openSession(authority, opening, async (pending, session) => ({
    opened: await authority.directory.recordLogin({
      pending,
      session,
      checkedPasswordHash: input.checkedPasswordHash,
      upgradedPasswordHash: input.upgradedPasswordHash,
      throttleKey: input.throttleKey,
    }),
    refusal: null,
  }));
}

/** What the Worker verified of a passkey sign-in (`UserAuthority.loginWithPasskey`). */
export interface PasskeyLogin {
  userId: string;
  passkeyId: string;
  counter: number;
  deviceType: PasskeyDeviceType;
  backedUp: boolean;
  userVerified: boolean;
  client: string | null;
  /** The sign-in's DPoP proof, verified by the Worker: the new session is bound to its key. */
  dpop: ProofOfPossession | null;
}

/**
 * A passkey sign-in: D1's mirror row only if the passkey is still the user's and the signature
 * counter presented is above the stored one; one that is not is logged as `passkey_counter_regressed`.
 */
export function signInWithPasskey(authority: AuthorityContext, input: PasskeyLogin): Promise<AuthorityResult<TokenGrant>> {
  const detail: EventDetail = { method: 'passkey', passkey_id: input.passkeyId, user_verified: input.userVerified };
  if (input.client !== null) detail.client = input.client;
  const opening = { userId: input.userId, client: input.client, detail, dpop: input.dpop, emailVerified: false };
  return openSession(authority, opening, async (pending, session) => {
    const recorded = await authority.directory.recordPasskeyLogin({
      pending,
      session,
      credentialId: input.passkeyId,
      counter: input.counter,
      deviceType: input.deviceType,
      backedUp: input.backedUp,
    });
    switch (recorded.kind) {
      case 'recorded':
        return { opened: true, refusal: null };
      case 'gone':
        return { opened: false, refusal: null };
      case 'counter_regressed':
        return {
          opened: false,
          refusal: {
            type: 'passkey_counter_regressed',
            detail: { passkey_id: input.passkeyId, stored_counter: recorded.storedCounter, presented_counter: input.counter },
          },
        };
    }
  });
}

/**
 * What a password change and a reset share. Every session of the user is revoked here first,
 * with its D1 write owed, so that whatever happens to D1 below, this object renews none of them
 * again; then `record` sends D1 the pending writes, the new hash (guarded) and the fresh
 * session's mirror row in one batch; only if D1 took the new hash is the fresh session recorded
 * here and logged. Null when D1 refused it: the revocation stands.
 */
export async function replacePassword(
  authority: AuthorityContext,
  input: {
    userId: string;
    client: string | null;
    /** The key the fresh session is bound to: the changing session's, so its holder keeps it. */
    dpopJkt: string | null;
    event: { type: 'password_changed' | 'password_reset'; sessionId: string | null };
    verifiesEmail: boolean;
    record: (pending: readonly DirectoryWrite[], session: { id: string; createdAt: number }) => Promise<boolean>;
  },
): Promise<TokenGrant | null> {
  const { records } = authority;
  const { revokedBefore, at } = authority.transaction(() => {
    const user = userOf(authority, input.userId);
    const instants = { revokedBefore: tick(user), at: tick(user) };
    user.revokedBefore = instants.revokedBefore;
    records.saveUser(user);
    records.outbox.enqueue({ kind: 'revoke_user', userId: user.userId, at: instants.revokedBefore });
    return instants;
  });
  const session = openedSession(authority, input.userId, input.client, at, input.dpopJkt);
  const pending = records.outbox.pending();
  const changed = await sendToDirectory(authority, () => input.record(pending.writes, { id: session.id, createdAt: at }));
  authority.transaction(() => {
    records.outbox.delivered(pending.upToId);
    if (!changed) return;
    records.sessions.insert(session);
    // Loaded again, not kept across the await: a renewal may have moved the user's state since.
    const user = userOf(authority, input.userId);
    user.lastLoginAt = at;
    if (input.verifiesEmail) noteEmailVerified(authority, user, revokedBefore, 'password_reset');
    records.saveUser(user);
    append(authority, { type: input.event.type, at: revokedBefore, sessionId: input.event.sessionId ?? session.id, detail: null });
  });
  return changed ? grant(authority, session, at) : null;
}
