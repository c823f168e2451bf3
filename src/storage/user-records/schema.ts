/**
 * The schema of one user's Durable Object storage (`ctx.storage.sql`), versioned:
 * `MIGRATIONS[i]` takes version i to i + 1, applied in the object's constructor before any request
 * is let in. Append; never edit a migration that has shipped.
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

/** Brings the schema to the newest version. Idempotent; run before the first request. */
export function migrate(sql: SqlStorage): void {
  sql.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  const row = sql.exec<{ version: number }>('SELECT version FROM schema_version').toArray()[0];
  let version = row?.version ?? 0;
  if (!row) sql.exec('INSERT INTO schema_version (version) VALUES (0)');
  for (; version < MIGRATIONS.length; version++) {
    sql.exec(MIGRATIONS[version] as string);
    sql.exec('UPDATE schema_version SET version = ?', version + 1);
  }
}

/**
 * Deletes every row of every table but the schema's version: the tables are listed from the
 * schema itself, so one added by a later migration is emptied too, and so are AUTOINCREMENT's
 * counters (`sqlite_sequence`), which would tell how many events the log ever held. The
 * platform's tables (`_cf_`) are out of reach of SQL; the object deletes them with
 * `deleteAll()` when it can. The empty schema that remains is what any object has once it has
 * been addressed.
 */
export function erase(sql: SqlStorage): void {
  const tables = sql
    .exec<{ name: string }>(
      `SELECT name FROM sqlite_master
        WHERE type = 'table' AND name <> 'schema_version' AND name NOT LIKE '!_cf!_%' ESCAPE '!'
          AND (name NOT LIKE 'sqlite!_%' ESCAPE '!' OR name = 'sqlite_sequence')`,
    )
    .toArray();
  for (const { name } of tables) sql.exec(`DELETE FROM "${name.replaceAll('"', '""')}"`);
}
