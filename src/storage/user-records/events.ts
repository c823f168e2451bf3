import { COALESCED_EVENT_TYPES, type EventDetail, type SecurityEvent, type SecurityEventType, type StoredEvent } from '../records';

interface EventRow {
  id: number;
  type: SecurityEventType;
  at: number;
  session_id: string | null;
  detail: string | null;
  count: number;
  last_at: number;
}

/** The user's security events, newest last. */
export class EventLog {
  constructor(private readonly sql: SqlStorage) {}

  /**
   * Appends an event. One of a coalesced type (records.ts) that repeats an event of the same
   * type and session seen less than `coalesceWindowMs` ago adds to that event's count instead.
   */
  append(event: SecurityEvent, coalesceWindowMs: number): void {
    if (COALESCED_EVENT_TYPES.has(event.type)) {
      const coalesced = this.sql.exec(
        `UPDATE events SET count = count + 1, last_at = ?
          WHERE id = (SELECT id FROM events WHERE type = ? AND session_id IS ? AND last_at > ?
                       ORDER BY id DESC LIMIT 1)
          RETURNING id`,
        event.at,
        event.type,
        event.sessionId,
        event.at - coalesceWindowMs,
      );
      if (coalesced.toArray().length === 1) return;
    }
    this.sql.exec(
      'INSERT INTO events (type, at, session_id, detail, count, last_at) VALUES (?, ?, ?, ?, 1, ?)',
      event.type,
      event.at,
      event.sessionId,
      event.detail === null ? null : JSON.stringify(event.detail),
      event.at,
    );
  }

  /** Newest first, starting below `beforeId` (exclusive) when given. */
  list(beforeId: number | null, limit: number): StoredEvent[] {
    return this.sql
      .exec<EventRow & Record<string, SqlStorageValue>>(
        `SELECT id, type, at, session_id, detail, count, last_at FROM events
          WHERE ? IS NULL OR id < ? ORDER BY id DESC LIMIT ?`,
        beforeId,
        beforeId,
        limit,
      )
      .toArray()
      .map((row) => ({
        id: row.id,
        type: row.type,
        at: row.at,
        sessionId: row.session_id,
        detail: row.detail === null ? null : (JSON.parse(row.detail) as EventDetail),
        count: row.count,
        lastAt: row.last_at,
      }));
  }
}
