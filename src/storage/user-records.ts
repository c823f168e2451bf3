import type { SessionRecord } from '../sessions/decide';
import type { UserState } from './records';
import { DbscRecords } from './user-records/dbsc';
import { EventLog } from './user-records/events';
import { Outbox } from './user-records/outbox';
import { PasskeyChallenges } from './user-records/passkey-challenges';
import { migrate } from './user-records/schema';
import { SESSION_COLUMNS, type SessionRow, SessionRows, toSession } from './user-records/sessions';

export { USER_SCHEMA_VERSION } from './user-records/schema';

interface UserRow {
  user_id: string;
  revoked_before: number;
  last_login_at: number;
  clock: number;
  email_verified_at: number | null;
}

const USER_COLUMNS = 'user_id, revoked_before, last_login_at, clock, email_verified_at';

// SqlStorage rows are typed as plain records; each query below names the row shape it selects.
type Row = Record<string, SqlStorageValue>;

/**
 * The SQL of one user's Durable Object storage (`ctx.storage.sql`): the user's instants here, and
 * by concern in user-records/: the schema, sessions, passkey registration challenges, DBSC keys and
 * challenges, security events and the outbox of writes owed to D1. Every method is synchronous, so
 * the object can load, decide and persist inside one `transactionSync` with nothing awaited in
 * between (PROTOCOL.md invariant 5).
 */
export class UserRecords {
  readonly sessions: SessionRows;
  readonly passkeyChallenges: PasskeyChallenges;
  readonly dbsc: DbscRecords;
  readonly events: EventLog;
  readonly outbox: Outbox;

  constructor(private readonly sql: SqlStorage) {
    this.sessions = new SessionRows(sql);
    this.passkeyChallenges = new PasskeyChallenges(sql);
    this.dbsc = new DbscRecords(sql);
    this.events = new EventLog(sql);
    this.outbox = new Outbox(sql);
  }

  /** Brings the schema to the newest version. Idempotent; run before the first request. */
  migrate(): void {
    migrate(this.sql);
  }

  // ---- the user ----------------------------------------------------------------------------

  loadUser(): UserState | null {
    const row = this.sql.exec<UserRow & Row>(`SELECT ${USER_COLUMNS} FROM user_state`).toArray()[0];
    return row ? toUser(row) : null;
  }

  /**
   * The user and one of their sessions in one statement: what every renewal reads first. The
   * session is null when this object holds no session of that id; the whole is null when it holds
   * no user yet.
   */
  loadUserAndSession(sessionId: string): { user: UserState; session: SessionRecord | null } | null {
    // The first row only, without collecting the rows into an array first: this runs on every renewal.
    const { value: row } = this.sql
      .exec<UserRow & Partial<SessionRow> & Row>(
        `SELECT ${USER_COLUMNS}, ${SESSION_COLUMNS} FROM user_state LEFT JOIN sessions ON sessions.id = ?`,
        sessionId,
      )
      .next();
    if (!row) return null;
    const user = toUser(row);
    return { user, session: row.id == null ? null : toSession(user.userId, row as UserRow & SessionRow) };
  }

  /** Moves the user's clock alone: what a renewal changes of the user's state. */
  saveClock(user: UserState): void {
    this.sql.exec('UPDATE user_state SET clock = ? WHERE singleton = 1', user.clock);
  }

  saveUser(user: UserState): void {
    this.sql.exec(
      `INSERT INTO user_state (singleton, user_id, revoked_before, last_login_at, clock, email_verified_at)
       VALUES (1, ?, ?, ?, ?, ?)
       ON CONFLICT (singleton) DO UPDATE SET
         revoked_before = excluded.revoked_before, last_login_at = excluded.last_login_at, clock = excluded.clock,
         email_verified_at = excluded.email_verified_at`,
      user.userId,
      user.revokedBefore,
      user.lastLoginAt,
      user.clock,
      user.emailVerifiedAt,
    );
  }

  // ---- the whole storage -------------------------------------------------------------------

  /**
   * Deletes what can no longer matter: sessions that no token can renew any more (past the
   * absolute limit, or whose newest token is past the idle limit: rule 2 refuses every token of
   * theirs before any record is read), events beyond the retention by age or count, and
   * passkey registration and DBSC challenges past their expiry.
   */
  prune(input: {
    sessionsCreatedBefore: number;
    sessionsIdleBeforeSeconds: number;
    eventsBefore: number;
    eventsKept: number;
    proofsBefore: number;
    nowMs: number;
  }): void {
    this.sql.exec('DELETE FROM passkey_challenges WHERE expires_at <= ?', input.nowMs);
    this.sql.exec('DELETE FROM dbsc_challenges WHERE expires_at <= ?', input.nowMs);
    this.sql.exec(
      'DELETE FROM sessions WHERE created_at < ? OR gen_expires_at < ?',
      input.sessionsCreatedBefore,
      input.sessionsIdleBeforeSeconds,
    );
    this.sql.exec('DELETE FROM events WHERE last_at < ?', input.eventsBefore);
    this.sql.exec('DELETE FROM used_proofs WHERE until < ?', input.proofsBefore);
    this.sql.exec(
      'DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?)',
      input.eventsKept,
    );
  }

  /** Whether anything is stored that pruning may one day delete, or D1 is still owed a write. */
  holdsAnything(): boolean {
    const row = this.sql
      .exec<{ n: number }>(
        `SELECT (SELECT COUNT(*) FROM sessions) + (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM outbox)
              + (SELECT COUNT(*) FROM used_proofs) + (SELECT COUNT(*) FROM passkey_challenges)
              + (SELECT COUNT(*) FROM dbsc_challenges) AS n`,
      )
      .one();
    return row.n > 0;
  }
}

function toUser(row: UserRow): UserState {
  return {
    userId: row.user_id,
    revokedBefore: row.revoked_before,
    lastLoginAt: row.last_login_at,
    clock: row.clock,
    emailVerifiedAt: row.email_verified_at,
  };
}
