import type { SessionRecord } from '../../sessions/decide';

/** A `sessions` row as selected by `SESSION_COLUMNS`. */
export interface SessionRow {
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

export const SESSION_COLUMNS = 'id, client, created_at, gen, gen_minted_at, gen_expires_at, revoked_at, dpop_jkt, dbsc_jkt';

// SqlStorage rows are typed as plain records; each query names the row shape it selects.
type Row = Record<string, SqlStorageValue>;

/** The user's sessions, and the proofs of possession already used with them. */
export class SessionRows {
  constructor(private readonly sql: SqlStorage) {}

  load(userId: string, sessionId: string): SessionRecord | null {
    const row = this.sql
      .exec<SessionRow & Row>(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ?`, sessionId)
      .toArray()[0];
    return row ? toSession(userId, row) : null;
  }

  /** The sessions not marked revoked, newest first; the caller judges which are live. */
  unrevoked(userId: string): SessionRecord[] {
    return this.sql
      .exec<SessionRow & Row>(
        `SELECT ${SESSION_COLUMNS} FROM sessions WHERE revoked_at IS NULL ORDER BY created_at DESC`,
      )
      .toArray()
      .map((row) => toSession(userId, row));
  }

  insert(session: SessionRecord): void {
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
  revoke(sessionId: string, at: number, reason: string): boolean {
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
}

export function toSession(userId: string, row: SessionRow): SessionRecord {
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
