import { abortAllDurableObjects, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { Store } from '../src/storage/store';
import type { UserAuthority } from '../src/user-authority/object';

/**
 * When a matching statement runs: fail before it reaches D1; fail inside D1 in the middle of its
 * batch (the statements before it have run, so the batch's rollback is what keeps them out); or
 * fail after D1 committed it (the answer is lost).
 */
export type FaultTiming = 'before' | 'during' | 'after';

export class InjectedD1Failure extends Error {
  constructor(sql: string) {
    super(`injected D1 failure: ${sql.slice(0, 60)}`);
  }
}

type StatementMethod = 'run' | 'first' | 'all' | 'raw';

/** What a wrapped D1Database does around each call; `real` and `execute` perform the call itself. */
export interface D1Interceptor {
  statement(sql: string, method: StatementMethod, real: D1PreparedStatement, args: unknown[]): Promise<unknown>;
  /** `execute(failing)` runs the batch, with the statements at `failing` replaced by one D1 refuses. */
  batch(sqls: string[], execute: (failing?: number[]) => Promise<D1Result[]>): Promise<D1Result[]>;
}

/** Runs `method` on the real statement, as an unwrapped D1Database would. */
export function runStatement(real: D1PreparedStatement, method: StatementMethod, args: unknown[]): Promise<unknown> {
  return (real[method] as (...a: unknown[]) => Promise<unknown>).apply(real, args);
}

/** A D1Database whose statements and batches go through `interceptor`; the rest passes through. */
export function interceptD1(db: D1Database, interceptor: D1Interceptor): D1Database {
  const real = new WeakMap<object, D1PreparedStatement>();
  const sqlOf = new WeakMap<object, string>();

  const wrap = (statement: D1PreparedStatement, sql: string): D1PreparedStatement => {
    const wrapped = new Proxy(statement, {
      get(target, property) {
        if (property === 'bind') {
          return (...values: unknown[]) => wrap(target.bind(...values), sql);
        }
        if (property === 'run' || property === 'first' || property === 'all' || property === 'raw') {
          return (...args: unknown[]) => interceptor.statement(sql, property, target, args);
        }
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    real.set(wrapped, statement);
    sqlOf.set(wrapped, sql);
    return wrapped;
  };

  return new Proxy(db, {
    get(target, property) {
      if (property === 'prepare') return (sql: string) => wrap(target.prepare(sql), sql);
      if (property === 'batch') {
        return (statements: D1PreparedStatement[]) =>
          interceptor.batch(
            statements.map((statement) => sqlOf.get(statement) ?? ''),
            (failing = []) =>
              target.batch(
                statements.map((statement, index) =>
                  failing.includes(index) ? target.prepare('SELECT latchkey_injected_failure()') : (real.get(statement) ?? statement),
                ),
              ),
          );
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * A D1Database that fails statements chosen by `pick` (by SQL text and order), for fault
 * injection. Everything else passes through to the real local D1.
 */
export function faultyD1(db: D1Database, pick: (sql: string, inBatch: boolean) => FaultTiming | undefined): D1Database {
  return interceptD1(db, {
    async statement(sql, method, real, args) {
      const timing = pick(sql, false);
      if (timing === 'before' || timing === 'during') throw new InjectedD1Failure(sql);
      const result = await runStatement(real, method, args);
      if (timing === 'after') throw new InjectedD1Failure(sql);
      return result;
    },
    async batch(sqls, execute) {
      const timings = sqls.map((sql) => pick(sql, true));
      if (timings.includes('before')) throw new InjectedD1Failure('batch');
      const result = await execute(timings.flatMap((timing, index) => (timing === 'during' ? [index] : [])));
      if (timings.includes('after')) throw new InjectedD1Failure('batch');
      return result;
    },
  });
}

export function authorityStub(userId: string): DurableObjectStub<UserAuthority> {
  const namespace = env.USER_AUTHORITY as unknown as DurableObjectNamespace<UserAuthority>;
  return namespace.get(namespace.idFromName(userId));
}

/**
 * Ends every live Durable Object instance, as the platform does when it evicts an idle object or
 * moves it: the next call starts a fresh instance on the same storage.
 */
export async function evictUserObjects(): Promise<void> {
  await abortAllDurableObjects();
}

/** Swaps the D1 that the user's object writes through; `undefined` restores the real one. */
export async function setAuthorityD1(userId: string, db: D1Database | undefined): Promise<void> {
  await runInDurableObject(authorityStub(userId), (instance) => {
    (instance as unknown as { store: Store }).store = new Store(db ?? env.DB);
  });
}

/**
 * Counts every statement that goes through `pick`, in order, and fails the `failAt`-th one
 * (counted from 0) with `timing`. Shared by the Worker's D1 and the user object's, it numbers the
 * statements of one request across both.
 */
export class StatementFaults {
  readonly seen: string[] = [];
  /** Indices of the statements that ran inside a batch (one transaction with others). */
  readonly batched = new Set<number>();

  constructor(
    readonly failAt: number | undefined,
    readonly timing: FaultTiming = 'before',
  ) {}

  readonly pick = (sql: string, inBatch: boolean): FaultTiming | undefined => {
    const index = this.seen.push(sql) - 1;
    if (inBatch) this.batched.add(index);
    return index === this.failAt ? this.timing : undefined;
  };
}
