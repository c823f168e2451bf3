/**
 * The D1 binding as the benchmark's Worker and objects see it: every call to D1 counted, and, when
 * asked, held back by a fixed delay first, as a D1 primary in another region would hold it back
 * (one network round trip per call). One setting per isolate: the Worker, the users' objects and
 * the floor's objects run in the same isolate locally, and timed runs never overlap.
 */
export const d1Traffic = {
  /** Calls that reached D1: one per run/first/all/raw of a statement, one per batch, one per exec. */
  calls: 0,
  /** Added in front of every call; 0 adds nothing, not even an await. */
  delayMs: 0,
};

function before(): Promise<void> | undefined {
  d1Traffic.calls += 1;
  return d1Traffic.delayMs > 0 ? scheduler.wait(d1Traffic.delayMs) : undefined;
}

type StatementMethod = 'run' | 'first' | 'all' | 'raw';
const STATEMENT_METHODS: ReadonlySet<PropertyKey> = new Set<StatementMethod>(['run', 'first', 'all', 'raw']);

/** Wraps `db`: statements it prepares, its batches and its exec go through `before()`. */
export function countedD1(db: D1Database): D1Database {
  // A batch must be given the real statements: D1 reads their internals, not their methods.
  const realStatements = new WeakMap<object, D1PreparedStatement>();

  const wrap = (statement: D1PreparedStatement): D1PreparedStatement => {
    const wrapped = new Proxy(statement, {
      get(target, property) {
        if (property === 'bind') return (...values: unknown[]) => wrap(target.bind(...values));
        if (STATEMENT_METHODS.has(property)) {
          return async (...args: unknown[]) => {
            await before();
            return (target[property as StatementMethod] as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    realStatements.set(wrapped, statement);
    return wrapped;
  };

  return new Proxy(db, {
    get(target, property) {
      switch (property) {
        case 'prepare':
          return (sql: string) => wrap(target.prepare(sql));
        case 'batch':
          return async (statements: D1PreparedStatement[]) => {
            await before();
            return target.batch(statements.map((statement) => realStatements.get(statement) ?? statement));
          };
        case 'exec':
          return async (sql: string) => {
            await before();
            return target.exec(sql);
          };
        case 'withSession':
        case 'dump':
          // Not used by latchkey. Counting them needs more than passing them through; until then a
          // call fails loudly instead of going to D1 uncounted and undelayed.
          return () => {
            throw new Error(`bench/counted-d1.ts does not count D1 ${String(property)}(); wrap it before using it`);
          };
        default: {
          const value = Reflect.get(target, property, target);
          return typeof value === 'function' ? value.bind(target) : value;
        }
      }
    },
  });
}
