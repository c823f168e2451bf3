import type { SessionRecord, UserInstants } from '../renewal/decide';

export type SecurityEventType =
  | 'login'
  | 'login_failed'
  | 'logout'
  | 'logout_all'
  | 'password_changed'
  | 'reuse_detected'
  | 'generation_mismatch'
  | 'admin_revoked';

export interface SecurityEvent {
  type: SecurityEventType;
  /** Milliseconds. */
  at: number;
  sessionId: string | null;
  detail: Record<string, unknown> | null;
}

export interface UserRecord extends UserInstants {
  id: string;
  email: string;
  passwordHash: string;
  /** The newest login instant of any of the user's sessions (0 without sessions). */
  newestSessionAt: number;
}

export interface SessionWithUser {
  session: SessionRecord;
  user: UserInstants & { email: string };
}

export interface SessionRow {
  id: string;
  user_id: string;
  client: string | null;
  created_at: number;
  gen: number;
  gen_minted_at: number;
  gen_expires_at: number;
  revoked_at: number | null;
}

export function toSession(row: SessionRow): SessionRecord {
  return {
    id: row.id,
    userId: row.user_id,
    client: row.client,
    createdAt: row.created_at,
    gen: row.gen,
    genMintedAt: row.gen_minted_at,
    genExpiresAt: row.gen_expires_at,
    revokedAt: row.revoked_at,
  };
}
