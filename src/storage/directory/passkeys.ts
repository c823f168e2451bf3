import type { NewPasskey, PasskeyCredential, PasskeyDeviceType, PasskeyRecord } from '../records';
import { DirectoryPart } from './part';

interface PasskeyRow {
  credential_id: string;
  user_id: string;
  name: string | null;
  counter: number;
  backed_up: number;
  device_type: PasskeyDeviceType;
  transports: string;
  created_at: number;
  last_used_at: number | null;
}

const PASSKEY_COLUMNS = 'credential_id, user_id, name, counter, backed_up, device_type, transports, created_at, last_used_at';

function toPasskey(row: PasskeyRow): PasskeyRecord {
  return {
    id: row.credential_id,
    userId: row.user_id,
    name: row.name,
    counter: row.counter,
    deviceType: row.device_type,
    backedUp: row.backed_up === 1,
    transports: JSON.parse(row.transports) as string[],
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}

/** Passkeys (table passkeys) and the challenges of passkey sign-ins (webauthn_challenges). */
export class Passkeys extends DirectoryPart {
  /** The user's passkeys, newest first. */
  async passkeysOf(userId: string): Promise<PasskeyRecord[]> {
    const { results } = await this.guard(() =>
      this.db
        .prepare(`SELECT ${PASSKEY_COLUMNS} FROM passkeys WHERE user_id = ?1 ORDER BY created_at DESC, credential_id`)
        .bind(userId)
        .all<PasskeyRow>(),
    );
    return results.map(toPasskey);
  }

  /** Records the challenge of a passkey sign-in's request options, until `expiresAt`. */
  async insertLoginChallenge(challenge: string, expiresAt: number): Promise<void> {
    await this.guard(() =>
      this.db.prepare('INSERT INTO webauthn_challenges (challenge, expires_at) VALUES (?1, ?2)').bind(challenge, expiresAt).run(),
    );
  }

  /**
   * A passkey sign-in's first step, in one round trip: spends the challenge its client data names
   * (deleted whether or not it is still valid, so it can be answered at most once) and looks the
   * presented credential up. The challenge counts only if it was issued here and has not expired.
   */
  async beginPasskeyLogin(input: { challenge: string; credentialId: string; nowMs: number }): Promise<{
    challengeValid: boolean;
    credential: PasskeyCredential | null;
  }> {
    const [spent, found] = await this.batch([
      this.db.prepare('DELETE FROM webauthn_challenges WHERE challenge = ?1 RETURNING expires_at').bind(input.challenge),
      this.db
        .prepare('SELECT credential_id, user_id, public_key, counter, transports FROM passkeys WHERE credential_id = ?1')
        .bind(input.credentialId),
    ]);
    const challenge = spent?.results[0] as { expires_at: number } | undefined;
    const row = found?.results[0] as
      | { credential_id: string; user_id: string; public_key: string; counter: number; transports: string }
      | undefined;
    return {
      challengeValid: challenge !== undefined && challenge.expires_at > input.nowMs,
      credential: row
        ? {
            id: row.credential_id,
            userId: row.user_id,
            publicKey: row.public_key,
            counter: row.counter,
            transports: JSON.parse(row.transports) as string[],
          }
        : null,
    };
  }

  /**
   * Stores a verified passkey for the user. False when the credential ID is already registered to
   * anyone else, or to this user with another key (WebAuthn §7.1 step 26: a credential ID names one
   * credential of one user). The same passkey sent again (a retry after a lost answer) is true.
   */
  async insertPasskey(userId: string, passkey: NewPasskey, nowMs: number): Promise<PasskeyRecord | null> {
    const [, stored] = await this.batch([
      this.db
        .prepare(
          `INSERT INTO passkeys (credential_id, user_id, public_key, counter, backed_up, device_type, transports, name, created_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (credential_id) DO NOTHING`,
        )
        .bind(
          passkey.id,
          userId,
          passkey.publicKey,
          passkey.counter,
          passkey.backedUp ? 1 : 0,
          passkey.deviceType,
          JSON.stringify(passkey.transports),
          passkey.name,
          nowMs,
        ),
      this.db
        .prepare(`SELECT ${PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = ?1 AND user_id = ?2 AND public_key = ?3`)
        .bind(passkey.id, userId, passkey.publicKey),
    ]);
    const row = stored?.results[0] as PasskeyRow | undefined;
    return row ? toPasskey(row) : null;
  }

  /** Deletes one of the user's passkeys; false if the user has none by that ID. */
  async deletePasskey(userId: string, credentialId: string): Promise<boolean> {
    const result = await this.guard(() =>
      this.db.prepare('DELETE FROM passkeys WHERE credential_id = ?1 AND user_id = ?2').bind(credentialId, userId).run(),
    );
    return result.meta.changes === 1;
  }

  /**
   * The signature counter stored for one of the user's passkeys, or null when the user has no
   * passkey by that ID (removed meanwhile, or never theirs).
   */
  async passkeyCounterOf(userId: string, credentialId: string): Promise<number | null> {
    const row = await this.guard(() =>
      this.db
        .prepare('SELECT counter FROM passkeys WHERE credential_id = ?1 AND user_id = ?2')
        .bind(credentialId, userId)
        .first<{ counter: number }>(),
    );
    return row?.counter ?? null;
  }
}
