import type { SessionRecord } from '../sessions/decide';

export type SecurityEventType =
  | 'login'
  | 'login_failed'
  | 'logout'
  | 'logout_all'
  | 'password_changed'
  | 'password_reset'
  | 'email_verified'
  | 'reuse_detected'
  | 'generation_mismatch'
  | 'admin_revoked'
  | 'proof_failed'
  | 'device_bound'
  | 'passkey_added'
  | 'passkey_removed'
  | 'passkey_counter_regressed'
  | 'lockout_cleared';

/**
 * Event types an outsider can cause at will (a wrong password needs no account access; a copy of
 * a bound token without its key, `proof_failed`, none either; a cloned authenticator can present
 * its stale counter as often as it likes). Repeats are folded into one event with a count, so
 * flooding them cannot push a `reuse_detected` out of the retained history.
 */
export const COALESCED_EVENT_TYPES: ReadonlySet<SecurityEventType> = new Set([
  'login_failed',
  'proof_failed',
  'passkey_counter_regressed',
]);

/** What an event says beyond its type: flat, so it crosses RPC and JSON unchanged. */
export type EventDetail = Record<string, string | number | boolean | null>;

export interface SecurityEvent {
  type: SecurityEventType;
  /** Milliseconds: the first occurrence. */
  at: number;
  sessionId: string | null;
  detail: EventDetail | null;
}

/** A stored event: with its position in the log and, for coalesced types, how often it happened. */
export interface StoredEvent extends SecurityEvent {
  id: number;
  count: number;
  /** Milliseconds: the latest occurrence (= `at` when `count` is 1). */
  lastAt: number;
}

/** The user's own state in their Durable Object, instants in milliseconds on the user's clock. */
export interface UserState {
  userId: string;
  revokedBefore: number;
  lastLoginAt: number;
  /** The latest instant the user's clock has handed out. */
  clock: number;
  /**
   * When this object learned that the email is verified; null before. Set once, never cleared, so
   * a token's `email_verified` claim (true when minted at or after this instant) is the same for
   * every token of one generation, whenever it is answered.
   */
  emailVerifiedAt: number | null;
}

/** D1's mirror of a session, with what strict checks need of its user. */
export interface SessionMirror {
  session: Pick<SessionRecord, 'createdAt' | 'revokedAt'>;
  user: { revokedBefore: number; email: string; emailVerified: boolean };
}

/**
 * A write the user's object owes D1: recorded in the object's outbox in the same transaction as
 * the object's own change, sent until D1 has it (PROTOCOL.md invariant 7). Each is idempotent.
 */
export type DirectoryWrite =
  | { kind: 'revoke_user'; userId: string; at: number }
  | { kind: 'revoke_session'; userId: string; sessionId: string; at: number }
  /**
   * The account is deleted: every D1 row of the user goes (directory/object-writes.ts). Once D1 has it, the object
   * keeps nothing of the user either (user-records.ts, `delivered`).
   */
  | { kind: 'delete_user'; userId: string; at: number };

/** Whether a passkey may exist on more than one device (WebAuthn's backup eligibility, BE). */
export type PasskeyDeviceType = 'singleDevice' | 'multiDevice';

/** A passkey as D1 holds it, without its public key. Instants in milliseconds. */
export interface PasskeyRecord {
  /** The credential ID, base64url. */
  id: string;
  userId: string;
  name: string | null;
  /** The signature counter last accepted; 0 when the authenticator keeps none. */
  counter: number;
  deviceType: PasskeyDeviceType;
  /** Whether the authenticator said, at its last use, that the key is backed up (BS). */
  backedUp: boolean;
  transports: string[];
  createdAt: number;
  lastUsedAt: number | null;
}

/** What a passkey sign-in needs of the stored passkey. */
export interface PasskeyCredential {
  id: string;
  userId: string;
  /** The COSE_Key, base64url. */
  publicKey: string;
  counter: number;
  transports: string[];
}

/** A passkey whose registration was verified, to be stored. */
export interface NewPasskey {
  id: string;
  publicKey: string;
  counter: number;
  deviceType: PasskeyDeviceType;
  backedUp: boolean;
  transports: string[];
  name: string | null;
}

/** What a passkey sign-in found when it tried to record its session (directory/object-writes.ts). */
export type PasskeyLoginRecord =
  | { kind: 'recorded' }
  /** The passkey is not (or no longer) the user's: removed meanwhile. */
  | { kind: 'gone' }
  /** The counter presented is not above the one stored: a cloned authenticator, or a replay. */
  | { kind: 'counter_regressed'; storedCounter: number };

/** What an operator may see of an account (GET /admin/users): no hash, no secret. Instants in milliseconds. */
export interface AccountRecord {
  id: string;
  email: string;
  createdAt: number;
  emailVerifiedAt: number | null;
  /** Every session logged in at or before this is revoked; 0 when nothing was ever revoked. */
  revokedBefore: number;
  passkeys: number;
  lockout: {
    /** Client addresses whose next login attempt for this email is refused (429). */
    lockedAddresses: number;
    /** When the last of those lockouts runs out; null when none is in force. */
    lockedUntil: number | null;
    /** Client addresses with failed attempts still counted (locked or not). */
    failingAddresses: number;
  };
}
