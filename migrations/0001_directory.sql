-- latchkey's D1: what is global (the directory of users by email, the login throttle) and what
-- the edge's strict check reads (each user's revocation instant, each session's revocation).
-- Each user's sessions, generations and security events live in that user's Durable Object
-- (src/storage/user-records.ts); the rows here mirror what strict checks need, written on logins
-- and revocations, never on a renewal.
-- Instants are integer milliseconds since the Unix epoch on the user's Durable Object clock.

CREATE TABLE users (
  id             TEXT PRIMARY KEY,
  email          TEXT NOT NULL UNIQUE,          -- trimmed, NFKC, lower-cased
  password_hash  TEXT NOT NULL,                 -- $scrypt$v=1$...
  created_at     INTEGER NOT NULL,
  revoked_before INTEGER NOT NULL DEFAULT 0     -- sessions logged in at or before this are revoked
);

-- One row per login: the login instant and the revocation mark, nothing that authenticates.
CREATE TABLE sessions (
  id         TEXT PRIMARY KEY,
  user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,                  -- the login instant
  revoked_at INTEGER
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_age ON sessions (created_at);

-- Failed logins per (normalized email, client address), whether or not the email exists.
CREATE TABLE login_attempts (
  email           TEXT NOT NULL,
  client_ip       TEXT NOT NULL,
  failures        INTEGER NOT NULL,
  last_failure_at INTEGER NOT NULL,
  locked_until    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (email, client_ip)
) WITHOUT ROWID;
CREATE INDEX login_attempts_by_age ON login_attempts (last_failure_at);
