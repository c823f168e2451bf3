import type { DirectoryWrite } from '../records';
import { erase } from './schema';

/** The writes the user's object owes D1, oldest first (records.ts, DirectoryWrite). */
export class Outbox {
  constructor(private readonly sql: SqlStorage) {}

  enqueue(write: DirectoryWrite): void {
    this.sql.exec('INSERT INTO outbox (write) VALUES (?)', JSON.stringify(write));
  }

  /** The writes owed to D1, oldest first, and how often the oldest has been tried. */
  pending(): { upToId: number; writes: DirectoryWrite[]; attempts: number } {
    const rows = this.sql
      .exec<{ id: number; write: string; attempts: number }>('SELECT id, write, attempts FROM outbox ORDER BY id')
      .toArray();
    return {
      upToId: rows.at(-1)?.id ?? 0,
      writes: rows.map((row) => JSON.parse(row.write) as DirectoryWrite),
      attempts: rows[0]?.attempts ?? 0,
    };
  }

  /**
   * D1 has every write up to `upToId`. When one of them deleted the user's account, D1 no longer
   * knows the user, and nothing of theirs stays here either: every row goes, in the transaction
   * that records the delivery, whichever operation delivered it (the deletion itself, its retry,
   * the alarm, or a sign-in that carried the owed writes in its batch).
   */
  delivered(upToId: number): void {
    const deleted = this.sql
      .exec<{ write: string }>('SELECT write FROM outbox WHERE id <= ?', upToId)
      .toArray()
      .some((row) => (JSON.parse(row.write) as DirectoryWrite).kind === 'delete_user');
    if (deleted) erase(this.sql);
    else this.sql.exec('DELETE FROM outbox WHERE id <= ?', upToId);
  }

  /** Sending them failed once more. */
  failedAttempt(): void {
    this.sql.exec('UPDATE outbox SET attempts = attempts + 1');
  }
}
