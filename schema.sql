-- latchkey's D1 schema. Safe to apply more than once (every statement is IF NOT EXISTS).
-- Instants are integer milliseconds since the Unix epoch on the user's Durable Object clock,
-- except sessions.gen_expires_at, which is the token's `exp` in seconds.

CREATE TABLE IF NOT EXISTS users (
  id             TEXT PRIMARY KEY,
  email          TEXT NOT NULL UNIQUE,          -- trimmed, NFKC, lower-cased
  password_hash  TEXT NOT NULL,                 -- $scrypt$v=1$...
  created_at     INTEGER NOT NULL,
  revoked_before INTEGER NOT NULL DEFAULT 0,    -- sessions logged in at or before this are revoked
  last_login_at  INTEGER NOT NULL DEFAULT 0     -- last time the user proved their credentials
);

-- One row per login (per client). No token, hash or secret of a token is stored.
CREATE TABLE IF NOT EXISTS sessions (
  id             TEXT PRIMARY KEY,
  user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  client         TEXT,
  created_at     INTEGER NOT NULL,              -- the login instant
  gen            INTEGER NOT NULL,              -- generation of the newest token minted
  gen_minted_at  INTEGER NOT NULL,              -- when it was minted (= when gen - 1 was superseded)
  gen_expires_at INTEGER NOT NULL,              -- its `exp`, seconds
  revoked_at     INTEGER,
  revoked_reason TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id, created_at);

-- Append-only.
CREATE TABLE IF NOT EXISTS security_events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id    TEXT NOT NULL,
  type       TEXT NOT NULL,
  at         INTEGER NOT NULL,
  session_id TEXT,
  detail     TEXT                               -- JSON object, or NULL
);
CREATE INDEX IF NOT EXISTS security_events_by_user ON security_events (user_id, at, id);

-- Failed logins per (normalized email, client address), whether or not the email exists.
CREATE TABLE IF NOT EXISTS login_attempts (
  email           TEXT NOT NULL,
  client_ip       TEXT NOT NULL,
  failures        INTEGER NOT NULL,
  last_failure_at INTEGER NOT NULL,
  locked_until    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (email, client_ip)
) WITHOUT ROWID;
