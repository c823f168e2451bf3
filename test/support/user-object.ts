import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { expect } from 'vitest';
import { authorityStub } from './faults';

/** A session row as the user's object stores it. */
export interface StoredSession {
  id: string;
  client: string | null;
  created_at: number;
  gen: number;
  gen_minted_at: number;
  gen_expires_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
}

/** Everything the user's object holds, read straight from its storage. */
export interface ObjectRows {
  user: { user_id: string; revoked_before: number; last_login_at: number; clock: number } | undefined;
  sessions: StoredSession[];
  events: Array<{ type: string; at: number; session_id: string | null; detail: string | null; count: number }>;
  outbox: Array<{ write: string; attempts: number }>;
}

export function objectRows(userId: string): Promise<ObjectRows> {
  return runInDurableObject(authorityStub(userId), (_instance, state) => {
    const all = (query: string) => state.storage.sql.exec(query).toArray();
    return {
      user: all('SELECT user_id, revoked_before, last_login_at, clock FROM user_state')[0] as ObjectRows['user'],
      sessions: all('SELECT * FROM sessions ORDER BY created_at, id') as unknown as StoredSession[],
      events: all('SELECT type, at, session_id, detail, count FROM events ORDER BY id') as unknown as ObjectRows['events'],
      outbox: all('SELECT write, attempts FROM outbox ORDER BY id') as unknown as ObjectRows['outbox'],
    };
  });
}

/** One session as the user's object stores it. */
export async function storedSession(userId: string, sessionId: string): Promise<StoredSession | undefined> {
  return (await objectRows(userId)).sessions.find((session) => session.id === sessionId);
}

/** D1's mirror of a session and its user's revocation instant. */
export async function mirrorOf(
  db: D1Database,
  sessionId: string,
): Promise<{ created_at: number; revoked_at: number | null; revoked_before: number } | null> {
  return db
    .prepare(
      `SELECT s.created_at, s.revoked_at, u.revoked_before FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1`,
    )
    .bind(sessionId)
    .first();
}

/** Runs SQL in the user's object's own storage (a trigger that makes it refuse a write, say). */
export function execInObject(userId: string, query: string): Promise<void> {
  return runInDurableObject(authorityStub(userId), (_instance, state) => {
    state.storage.sql.exec(query);
  });
}

/** When the user's object's alarm is due, or null if none is scheduled. */
export function scheduledAlarm(userId: string): Promise<number | null> {
  return runInDurableObject(authorityStub(userId), (_instance, state) => state.storage.getAlarm());
}

/** Removes the object's alarm, as the platform does when the alarm fires, before its handler runs. */
export function clearAlarm(userId: string): Promise<void> {
  return runInDurableObject(authorityStub(userId), (_instance, state) => state.storage.deleteAlarm());
}

/** D1's rows for the user: its revocation instant and the mirror of each of its sessions. */
export async function mirrorRows(
  db: D1Database,
  userId: string,
): Promise<{ revokedBefore: number | undefined; sessions: Array<{ id: string; created_at: number; revoked_at: number | null }> }> {
  const [user, sessions] = await db.batch([
    db.prepare('SELECT revoked_before FROM users WHERE id = ?1').bind(userId),
    db.prepare('SELECT id, created_at, revoked_at FROM sessions WHERE user_id = ?1 ORDER BY created_at, id').bind(userId),
  ]);
  return {
    revokedBefore: (user?.results[0] as { revoked_before: number } | undefined)?.revoked_before,
    sessions: (sessions?.results ?? []) as Array<{ id: string; created_at: number; revoked_at: number | null }>,
  };
}

/**
 * How D1's mirror of the user stands against the object (PROTOCOL.md invariant 7), session by
 * session, judged as each side judges revocation (a mark, or a login at or before `revoked_before`):
 * - `unsafe`: D1 says revoked, the object still renews it. Never allowed.
 * - `lagging`: the object refuses it, D1 still says live. Allowed only while the object's outbox
 *   holds the write that tells D1.
 * Sessions only one side knows are left out: D1 without the object is a login whose answer was
 * lost (no token names it); the object without D1 cannot happen (D1's row is written first).
 */
export async function divergence(userId: string): Promise<{
  unsafe: string[];
  lagging: string[];
  revokedBefore: { object: number; d1: number };
  owed: number;
}> {
  const [object, mirror] = await Promise.all([objectRows(userId), mirrorRows(env.DB, userId)]);
  const objectRevokedBefore = object.user?.revoked_before ?? 0;
  const d1RevokedBefore = mirror.revokedBefore ?? 0;
  const unsafe: string[] = [];
  const lagging: string[] = [];
  for (const row of mirror.sessions) {
    const kept = object.sessions.find((session) => session.id === row.id);
    if (!kept) continue;
    const objectRevoked = kept.revoked_at !== null || kept.created_at <= objectRevokedBefore;
    const d1Revoked = row.revoked_at !== null || row.created_at <= d1RevokedBefore;
    if (d1Revoked && !objectRevoked) unsafe.push(row.id);
    if (objectRevoked && !d1Revoked) lagging.push(row.id);
  }
  return {
    unsafe,
    lagging,
    revokedBefore: { object: objectRevokedBefore, d1: d1RevokedBefore },
    owed: object.outbox.length,
  };
}

/** Invariant 7 at this moment: never unsafe; and with nothing owed, D1 holds every revocation. */
export async function expectMirrorSafe(userId: string): Promise<void> {
  const state = await divergence(userId);
  expect(state.unsafe, 'sessions D1 calls revoked that the object renews').toEqual([]);
  expect(state.revokedBefore.d1).toBeLessThanOrEqual(state.revokedBefore.object);
  if (state.owed === 0) {
    expect(state.lagging, 'revocations D1 lacks with nothing owed to it').toEqual([]);
    expect(state.revokedBefore.d1).toBe(state.revokedBefore.object);
  }
}

/** D1 holds every revocation the object made, and the object owes it nothing. */
export async function expectMirrorInLine(userId: string): Promise<void> {
  const state = await divergence(userId);
  expect(state).toMatchObject({ unsafe: [], lagging: [], owed: 0 });
  expect(state.revokedBefore.d1).toBe(state.revokedBefore.object);
}
