import type { DbscChallenge } from '../dbsc/challenges';
import type { DbscPublicKey } from '../dbsc/proof';
import type { SessionRecord } from '../renewal/decide';
import {
  COALESCED_EVENT_TYPES,
  type DirectoryWrite,
  type EventDetail,
  type SecurityEvent,
  type SecurityEventType,
  type StoredEvent,
  type UserState,
} from './records';

/**
 * The SQL of one user's Durable Object storage (`ctx.storage.sql`): the user's instants, sessions,
 * security events and the outbox of writes owed to D1. Every method is synchronous, so the object
 * can load, decide and persist inside one `transactionSync` with nothing awaited in between
 * (PROTOCOL.md invariant 5).
 *
 * The schema is versioned: `MIGRATIONS[i]` takes version i to i + 1, applied in the object's
 * constructor before any request is let in. Append; never edit a migration that has shipped.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE user_state (
     singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
     user_id        TEXT NOT NULL,
     revoked_before INTEGER NOT NULL DEFAULT 0,  -- sessions logged in at or before this are revoked
     last_login_at  INTEGER NOT NULL DEFAULT 0,  -- the last time the user proved their credentials
     clock          INTEGER NOT NULL DEFAULT 0   -- the latest instant the user's clock handed out
   );
   -- One row per login. No token, hash or secret of a token is stored.
   CREATE TABLE sessions (
     id             TEXT PRIMARY KEY,
     client         TEXT,
     created_at     INTEGER NOT NULL,            -- the login instant
     gen            INTEGER NOT NULL,            -- generation of the newest token minted
     gen_minted_at  INTEGER NOT NULL,            -- when it was minted (= when gen - 1 was superseded)
     gen_expires_at INTEGER NOT NULL,            -- its exp, seconds
     revoked_at     INTEGER,
     revoked_reason TEXT
   );
   CREATE TABLE events (
     id         INTEGER PRIMARY KEY AUTOINCREMENT,
     type       TEXT NOT NULL,
     at         INTEGER NOT NULL,                -- the first occurrence
     session_id TEXT,
     detail     TEXT,                            -- JSON object, or NULL
     count      INTEGER NOT NULL DEFAULT 1,
     last_at    INTEGER NOT NULL                 -- the latest occurrence
   );
   CREATE INDEX events_by_type ON events (type, id);
   CREATE INDEX events_by_age ON events (last_at);
   -- Writes owed to D1, oldest first (records.ts, DirectoryWrite).
   CREATE TABLE outbox (
     id       INTEGER PRIMARY KEY AUTOINCREMENT,
     write    TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0
   );`,
  // Sessions bound to a key (PROTOCOL.md, "Proof of possession"), and the proofs already used.
  `ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT;    -- thumbprint of the DPoP key, bound at login
   ALTER TABLE sessions ADD COLUMN dbsc_jkt TEXT;    -- thumbprint of the browser's DBSC key
   CREATE TABLE used_proofs (
     jti   TEXT PRIMARY KEY,
     until INTEGER NOT NULL                          -- after this the proof is too old anyway
   );`,
  // When the object learned the email is verified (user's clock, ms); NULL before.
  'ALTER TABLE user_state ADD COLUMN email_verified_at INTEGER;',
  // Challenges of passkey registrations the user asked for and has not answered yet, each bound
  // to the session that asked. Sign-in challenges have no user yet and live in D1 instead.
  `CREATE TABLE passkey_challenges (
     challenge  TEXT PRIMARY KEY,                -- base64url, as sent in the creation options
     session_id TEXT NOT NULL,
     expires_at INTEGER NOT NULL
   );`,
  // Device Bound Session Credentials: the browser's public key of a bound session (a refresh
  // proof carries none, so the key itself is kept, not only its thumbprint), and the challenges
  // its proofs must sign, each bound to one session and used once.
  `ALTER TABLE sessions ADD COLUMN dbsc_key TEXT;    -- JSON {alg, jwk}: the public key, its RFC 7638 members
   CREATE TABLE dbsc_challenges (
     challenge  TEXT PRIMARY KEY,                -- base64url, the jti a proof must carry
     session_id TEXT NOT NULL,
     expires_at INTEGER NOT NULL
   );
   CREATE INDEX dbsc_challenges_by_session ON dbsc_challenges (session_id, expires_at);`,
];

/** The newest version of the schema: what `migrate()` brings every object's storage to. */
export const USER_SCHEMA_VERSION = MIGRATIONS.length;

interface SessionRow {
  id: string;
  client: string | null;
  created_at: number;
  gen: number;
  gen_minted_at: number;
  gen_expires_at: number;
  revoked_at: number | null;
  dpop_jkt: string | null;
  dbsc_jkt: string | null;
}

interface EventRow {
  id: number;
  type: SecurityEventType;
  at: number;
  session_id: string | null;
  detail: string | null;
  count: number;
  last_at: number;
}

const SESSION_COLUMNS = 'id, client, created_at, gen, gen_minted_at, gen_expires_at, revoked_at, dpop_jkt, dbsc_jkt';

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

export class UserRecords {
  constructor(private readonly sql: SqlStorage) {}

  /** Brings the schema to the newest version. Idempotent; run before the first request. */
  migrate(): void {
    this.sql.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = this.sql.exec<{ version: number }>('SELECT version FROM schema_version').toArray()[0];
    let version = row?.version ?? 0;
    if (!row) this.sql.exec('INSERT INTO schema_version (version) VALUES (0)');
    for (; version < MIGRATIONS.length; version++) {
      this.sql.exec(MIGRATIONS[version] as string);
      this.sql.exec('UPDATE schema_version SET version = ?', version + 1);
    }
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

  // ---- sessions ----------------------------------------------------------------------------

  loadSession(userId: string, sessionId: string): SessionRecord | null {
    const row = this.sql
      .exec<SessionRow & Row>(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ?`, sessionId)
      .toArray()[0];
    return row ? toSession(userId, row) : null;
  }

  /** The sessions not marked revoked, newest first; the caller judges which are live. */
  unrevokedSessions(userId: string): SessionRecord[] {
    return this.sql
      .exec<SessionRow & Row>(
        `SELECT ${SESSION_COLUMNS} FROM sessions WHERE revoked_at IS NULL ORDER BY created_at DESC`,
      )
      .toArray()
      .map((row) => toSession(userId, row));
  }

  insertSession(session: SessionRecord): void {
    this.sql.exec(
      `INSERT INTO sessions (id, client, created_at, gen, gen_minted_at, gen_expires_at, dpop_jkt, dbsc_jkt)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      session.id,
      session.client,
      session.createdAt,
      session.gen,
      session.genMintedAt,
      session.genExpiresAt,
      session.dpopJkt,
      session.dbscJkt,
    );
  }

  /**
   * Moves a session from `fromGen` to the next generation. A compare-and-swap on the stored
   * generation: inside the transaction that read it this cannot miss, and if it ever did, the
   * caller's transaction must fail rather than mint one generation twice.
   */
  advanceGeneration(next: SessionRecord, fromGen: number): void {
    const advanced = this.sql.exec(
      `UPDATE sessions SET gen = ?, gen_minted_at = ?, gen_expires_at = ?
        WHERE id = ? AND gen = ? AND revoked_at IS NULL RETURNING id`,
      next.gen,
      next.genMintedAt,
      next.genExpiresAt,
      next.id,
      fromGen,
    );
    if (advanced.toArray().length !== 1) throw new Error(`generation ${fromGen} of the session is no longer current`);
  }

  /** Marks a session revoked; false if it was unknown or already revoked. */
  revokeSession(sessionId: string, at: number, reason: string): boolean {
    const revoked = this.sql.exec(
      'UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL RETURNING id',
      at,
      reason,
      sessionId,
    );
    return revoked.toArray().length === 1;
  }

  /**
   * Records a proof's `jti` as used until `until` (milliseconds). True the first time; false for a
   * proof seen before: a replay (RFC 9449 §11.1).
   */
  useProofOnce(jti: string, until: number): boolean {
    return (
      this.sql.exec('INSERT INTO used_proofs (jti, until) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING RETURNING jti', jti, until).toArray()
        .length === 1
    );
  }

  // ---- passkey registration challenges ------------------------------------------------------

  /**
   * Records a registration challenge for `sessionId` until `expiresAt`. Expired ones go first, and
   * only the newest `kept` stay: the user's object must not grow with every options request.
   */
  savePasskeyChallenge(challenge: string, sessionId: string, expiresAt: number, nowMs: number, kept: number): void {
    this.sql.exec('DELETE FROM passkey_challenges WHERE expires_at <= ?', nowMs);
    this.sql.exec(
      'INSERT INTO passkey_challenges (challenge, session_id, expires_at) VALUES (?, ?, ?)',
      challenge,
      sessionId,
      expiresAt,
    );
    this.sql.exec(
      `DELETE FROM passkey_challenges WHERE challenge NOT IN
         (SELECT challenge FROM passkey_challenges ORDER BY expires_at DESC, rowid DESC LIMIT ?)`,
      kept,
    );
  }

  /** Whether `challenge` was issued to `sessionId` and is unexpired at `nowMs`. */
  holdsPasskeyChallenge(challenge: string, sessionId: string, nowMs: number): boolean {
    return (
      this.sql
        .exec('SELECT 1 FROM passkey_challenges WHERE challenge = ? AND session_id = ? AND expires_at > ?', challenge, sessionId, nowMs)
        .toArray().length === 1
    );
  }

  /** Spends a registration challenge. */
  deletePasskeyChallenge(challenge: string): void {
    this.sql.exec('DELETE FROM passkey_challenges WHERE challenge = ?', challenge);
  }

  // ---- Device Bound Session Credentials -----------------------------------------------------

  /**
   * Binds a live session to its DBSC key, once: false when the session is unknown, revoked, or
   * already bound (a binding never changes).
   */
  bindDbscKey(sessionId: string, jkt: string, key: DbscPublicKey): boolean {
    return (
      this.sql
        .exec(
          `UPDATE sessions SET dbsc_jkt = ?, dbsc_key = ?
            WHERE id = ? AND dbsc_jkt IS NULL AND revoked_at IS NULL RETURNING id`,
          jkt,
          JSON.stringify(key),
          sessionId,
        )
        .toArray().length === 1
    );
  }

  /** The DBSC key a session is bound to, or null. */
  loadDbscKey(sessionId: string): DbscPublicKey | null {
    const row = this.sql.exec<{ dbsc_key: string | null }>('SELECT dbsc_key FROM sessions WHERE id = ?', sessionId).toArray()[0];
    return row?.dbsc_key ? (JSON.parse(row.dbsc_key) as DbscPublicKey) : null;
  }

  /**
   * Records an issued challenge. The lapsed go first, and of its session only the newest
   * `keptPerSession` stay: requests without a proof must not make the object grow.
   */
  saveDbscChallenge(challenge: DbscChallenge, nowMs: number, keptPerSession: number): void {
    this.sql.exec('DELETE FROM dbsc_challenges WHERE expires_at <= ?', nowMs);
    this.sql.exec(
      'INSERT INTO dbsc_challenges (challenge, session_id, expires_at) VALUES (?, ?, ?)',
      challenge.value,
      challenge.sessionId,
      challenge.expiresAtMs,
    );
    this.sql.exec(
      `DELETE FROM dbsc_challenges WHERE session_id = ? AND challenge NOT IN
         (SELECT challenge FROM dbsc_challenges WHERE session_id = ? ORDER BY rowid DESC LIMIT ?)`,
      challenge.sessionId,
      challenge.sessionId,
      keptPerSession,
    );
  }

  /** The stored challenge with this value, of whichever session, or undefined. */
  findDbscChallenge(value: string): DbscChallenge | undefined {
    const row = this.sql
      .exec<{ challenge: string; session_id: string; expires_at: number }>(
        'SELECT challenge, session_id, expires_at FROM dbsc_challenges WHERE challenge = ?',
        value,
      )
      .toArray()[0];
    return row && { value: row.challenge, sessionId: row.session_id, expiresAtMs: row.expires_at };
  }

  /** Uses a challenge up. */
  deleteDbscChallenge(value: string): void {
    this.sql.exec('DELETE FROM dbsc_challenges WHERE challenge = ?', value);
  }

  /** Forgets every challenge of a session. */
  forgetDbscChallenges(sessionId: string): void {
    this.sql.exec('DELETE FROM dbsc_challenges WHERE session_id = ?', sessionId);
  }

  // ---- events ------------------------------------------------------------------------------

  /**
   * Appends an event. One of a coalesced type (records.ts) that repeats an event of the same
   * type and session seen less than `coalesceWindowMs` ago adds to that event's count instead.
   */
  appendEvent(event: SecurityEvent, coalesceWindowMs: number): void {
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
  listEvents(beforeId: number | null, limit: number): StoredEvent[] {
    return this.sql
      .exec<EventRow & Row>(
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

  // ---- the outbox --------------------------------------------------------------------------

  enqueue(write: DirectoryWrite): void {
    this.sql.exec('INSERT INTO outbox (write) VALUES (?)', JSON.stringify(write));
  }

  /** The writes owed to D1, oldest first, and how often the oldest has been tried. */
  pending(): { upToId: number; writes: DirectoryWrite[]; attempts: number } {
    const rows = this.sql
      .exec<{ id: number; write: string; attempts: number }>('SELECT id, write, attempts FROM outbox ORDER BY id')
      .toArray();
    return {
      upToId: rows.at(-1)?.id ?? 0,
      writes: rows.map((row) => JSON.parse(row.write) as DirectoryWrite),
      attempts: rows[0]?.attempts ?? 0,
    };
  }

  /**
   * D1 has every write up to `upToId`. When one of them deleted the user's account, D1 no longer
   * knows the user, and nothing of theirs stays here either: every row goes, in the transaction
   * that records the delivery, whichever operation delivered it (the deletion itself, its retry,
   * the alarm, or a sign-in that carried the owed writes in its batch).
   */
  delivered(upToId: number): void {
    const deleted = this.sql
      .exec<{ write: string }>('SELECT write FROM outbox WHERE id <= ?', upToId)
      .toArray()
      .some((row) => (JSON.parse(row.write) as DirectoryWrite).kind === 'delete_user');
    if (deleted) this.erase();
    else this.sql.exec('DELETE FROM outbox WHERE id <= ?', upToId);
  }

  /**
   * Deletes every row of every table but the schema's version: the tables are listed from the
   * schema itself, so one added by a later migration is emptied too, and so are AUTOINCREMENT's
   * counters (`sqlite_sequence`), which would tell how many events the log ever held. The
   * platform's tables (`_cf_`) are out of reach of SQL; the object deletes them with
   * `deleteAll()` when it can. The empty schema that remains is what any object has once it has
   * been addressed.
   */
  erase(): void {
    const tables = this.sql
      .exec<{ name: string }>(
        `SELECT name FROM sqlite_master
          WHERE type = 'table' AND name <> 'schema_version' AND name NOT LIKE '!_cf!_%' ESCAPE '!'
            AND (name NOT LIKE 'sqlite!_%' ESCAPE '!' OR name = 'sqlite_sequence')`,
      )
      .toArray();
    for (const { name } of tables) this.sql.exec(`DELETE FROM "${name.replaceAll('"', '""')}"`);
  }

  /** Sending them failed once more. */
  failedAttempt(): void {
    this.sql.exec('UPDATE outbox SET attempts = attempts + 1');
  }

  // ---- pruning -----------------------------------------------------------------------------

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

function toSession(userId: string, row: SessionRow): SessionRecord {
  return {
    id: row.id,
    userId,
    client: row.client,
    createdAt: row.created_at,
    gen: row.gen,
    genMintedAt: row.gen_minted_at,
    genExpiresAt: row.gen_expires_at,
    revokedAt: row.revoked_at,
    dpopJkt: row.dpop_jkt,
    dbscJkt: row.dbsc_jkt,
  };
}
