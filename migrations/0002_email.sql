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
