import { StorageUnavailableError } from '../../errors';

/**
 * What each part of the D1 directory (this folder) works with: the database, and the one way to
 * run statements on it. Any D1 failure surfaces as `StorageUnavailableError` (503), never as a raw
 * driver message.
 */
export abstract class DirectoryPart {
  constructor(protected readonly db: D1Database) {}

  protected async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw new StorageUnavailableError(error);
    }
  }

  protected batch(statements: D1PreparedStatement[]): Promise<D1Result[]> {
    return this.guard(() => this.db.batch(statements));
  }
}
