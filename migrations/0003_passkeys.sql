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
