-- latchkey: D1's schema, every migration in order. Made by `npm run schema` from migrations/,
-- which is what wrangler applies; edit a migration (or add one), never this file.

-- ---- migrations/0001_directory.sql ----

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

-- ---- migrations/0002_email.sql ----

-- Email verification and password reset (src/routes/recovery.ts). Tokens are looked up by their
-- hash with no user known yet, so they are global: D1, not the user's Durable Object.
-- Instants are integer milliseconds since the Unix epoch.

-- NULL until the user follows a verification link (or a reset link, which proves the same).
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;

-- One row per link sent. Only the SHA-256 of the random 32-byte token is stored: someone who reads
-- this table (a backup, a leaked export) cannot follow any link.
CREATE TABLE email_tokens (
  token_hash             TEXT PRIMARY KEY,     -- base64url(SHA-256(token))
  user_id                TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  purpose                TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
  -- reset only: the user's password hash when the link was sent. The link works only while the
  -- password is still that one, so any password change kills it.
  password_hash_at_issue TEXT,
  expires_at             INTEGER NOT NULL,
  used_at                INTEGER                -- set once, in the batch that acts on the link
) WITHOUT ROWID;
CREATE INDEX email_tokens_by_user ON email_tokens (user_id);
CREATE INDEX email_tokens_by_expiry ON email_tokens (expires_at);

-- Messages sent per key ('reset:<normalized email>', 'verify:<user id>') in a fixed window, so
-- nobody can flood an inbox through latchkey. Reset keys count whether or not the account exists.
CREATE TABLE email_sends (
  key               TEXT PRIMARY KEY,
  window_started_at INTEGER NOT NULL,
  sent              INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX email_sends_by_age ON email_sends (window_started_at);

-- ---- migrations/0003_passkeys.sql ----

-- Passkeys (WebAuthn credentials) and the challenges of passkey sign-ins. Both are looked up with
-- no user known yet (a discoverable sign-in names only its credential), hence global, hence D1.
-- Every write to a user's passkeys passes through that user's Durable Object.

CREATE TABLE passkeys (
  credential_id TEXT PRIMARY KEY,              -- base64url, as the authenticator made it
  user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  public_key    TEXT NOT NULL,                 -- the COSE_Key, base64url
  counter       INTEGER NOT NULL,              -- the signature counter last accepted (0: the authenticator keeps none)
  backed_up     INTEGER NOT NULL,              -- 1 when the authenticator last said the key is backed up (BS flag)
  device_type   TEXT NOT NULL CHECK (device_type IN ('singleDevice', 'multiDevice')),  -- multiDevice: may sync (BE flag)
  transports    TEXT NOT NULL,                 -- JSON array of the transports the browser reported
  name          TEXT,                          -- the user's label, or NULL
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER                        -- the last sign-in with it, or NULL
);
CREATE INDEX passkeys_by_user ON passkeys (user_id);

-- Challenges of passkey sign-ins that are not answered yet: deleted when used, and by the daily
-- Cron Trigger once expired. Registration challenges belong to a signed-in user and live in that
-- user's Durable Object instead.
CREATE TABLE webauthn_challenges (
  challenge  TEXT PRIMARY KEY,                 -- base64url, as sent in the request options
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX webauthn_challenges_by_expiry ON webauthn_challenges (expires_at);
