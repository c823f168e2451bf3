import { runInDurableObject } from 'cloudflare:test';
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
