import { abortAllDurableObjects, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { UserAuthority } from '../../src/user-authority/object';

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
  const namespace = env.USER_AUTHORITY;
  return namespace.get(namespace.idFromName(userId));
}

/**
 * Ends every live Durable Object instance, as the platform does when it evicts an idle object or
 * moves it: the next call starts a fresh instance on the same storage.
 */
export async function evictUserObjects(): Promise<void> {
  await abortAllDurableObjects();
}

/**
 * A `USER_AUTHORITY` binding for the Worker's fetch (test/support/direct.ts) whose objects reach D1
 * through `db`. The object keeps its D1 in a `#private` field, so nothing is overwritten: each
 * call runs, inside the user's real object (`runInDurableObject`), on a fresh `UserAuthority`
 * constructed over the same storage with an env whose `DB` is `db`. Storage, alarm and
 * everything persisted are the real object's; only the D1 it talks to differs. Every call's
 * method name is appended to `calls` when given.
 *
 * Unlike the platform's stub, arguments and results are not copied, and calls through two such
 * stubs are not queued behind each other (`#exclusive` is per instance); tests that race calls use
 * the real stub for one side.
 */
export function authorityNamespace(db: D1Database, calls?: string[]): DurableObjectNamespace<UserAuthority> {
  const real = env.USER_AUTHORITY;
  const objectEnv = { ...env, DB: db } as Env;
  return new Proxy(real, {
    get(target, property) {
      if (property === 'get') {
        return (id: DurableObjectId) => authorityOver(target.get(id), objectEnv, calls);
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** The user's object as `authorityNamespace(db)` reaches it: its own storage, `db` as its D1. */
export function authorityStubWith(userId: string, db: D1Database, calls?: string[]): DurableObjectStub<UserAuthority> {
  const namespace = authorityNamespace(db, calls);
  return namespace.get(namespace.idFromName(userId));
}

/**
 * Runs the object's alarm handler as the platform would, but with `db` as its D1 (D1 still down,
 * say). The platform removes a due alarm before running the handler: call `clearAlarm` first.
 */
export function runAlarmWith(userId: string, db: D1Database): Promise<void> {
  const objectEnv = { ...env, DB: db } as Env;
  return runInDurableObject(authorityStub(userId), (_instance, state) => new UserAuthority(state, objectEnv).alarm());
}

/** The Worker's bindings with `db` as D1 for the Worker and for the user objects it calls. */
export function bindingsWith(db: D1Database, calls?: string[]): Env {
  return { ...env, DB: db, USER_AUTHORITY: authorityNamespace(db, calls) };
}

function authorityOver(
  stub: DurableObjectStub<UserAuthority>,
  objectEnv: Env,
  calls: string[] | undefined,
): DurableObjectStub<UserAuthority> {
  const api = UserAuthority.prototype as unknown as Record<string, unknown>;
  return new Proxy(stub, {
    get(target, property) {
      if (typeof property !== 'string' || property === 'constructor' || typeof api[property] !== 'function') {
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (...args: unknown[]) => {
        calls?.push(property);
        return runInDurableObject(target, (_instance, state) => {
          const fresh = new UserAuthority(state, objectEnv) as unknown as Record<string, (...a: unknown[]) => unknown>;
          return (fresh[property] as (...a: unknown[]) => unknown).apply(fresh, args);
        });
      };
    },
  });
}

/**
 * The ways a request's D1 statements can fail, one case each, in order: every statement before D1
 * sees it, and a statement that runs in a batch also inside D1, in the middle of its batch (so that
 * only the batch's rollback keeps the earlier ones out). `sql` is the pattern's text, for titles.
 */
export function statementFaultCases(
  statements: ReadonlyArray<{ sql: RegExp; batch?: boolean }>,
): Array<{ index: number; timing: FaultTiming; sql: string }> {
  return statements.flatMap((statement, index) => [
    { index, timing: 'before' as const, sql: statement.sql.source },
    ...(statement.batch ? [{ index, timing: 'during' as const, sql: statement.sql.source }] : []),
  ]);
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

/**
 * A D1Database that holds the first statement or batch any of whose SQL matches `holds` until
 * `release()`, to run something else while a request waits on D1. `reached()` resolves once it is
 * held, and rejects if nothing matching is sent within 5 s. Both sides wait by polling a flag with timers rather than on a promise the other side
 * resolves: a promise settled from another Durable Object's context would run the waiter's
 * continuation in that context, and workerd refuses I/O objects used across contexts.
 */
export function heldD1(
  db: D1Database,
  holds: (sql: string) => boolean,
): { db: D1Database; reached(): Promise<void>; release(): void } {
  const state = { held: false, released: false };
  const until = async (done: () => boolean, limitMs = Number.POSITIVE_INFINITY) => {
    for (let waited = 0; !done(); waited += 5) {
      if (waited >= limitMs) throw new Error('heldD1: no matching statement was sent');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  const hold = async (sqls: string[]) => {
    if (state.held || !sqls.some(holds)) return;
    state.held = true;
    await until(() => state.released);
  };
  return {
    reached: () => until(() => state.held, 5000),
    release: () => {
      state.released = true;
    },
    db: interceptD1(db, {
      async statement(sql, method, real, args) {
        await hold([sql]);
        return runStatement(real, method, args);
      },
      async batch(sqls, execute) {
        await hold(sqls);
        return execute();
      },
    }),
  };
}
