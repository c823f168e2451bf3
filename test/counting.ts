import { faultyD1 } from './faults';

/** The D1 round trips a piece of code made, each with the SQL of the statements it carried. */
export type D1Trips = string[][];

/**
 * A D1Database that records every statement and round trip (a batch is one trip) and otherwise
 * passes everything through to the real local D1. Built on `faultyD1` with a pick that never fails.
 */
export function countingD1(db: D1Database): { db: D1Database; trips: D1Trips } {
  const trips: D1Trips = [];
  let openBatch: string[] | undefined;
  const recorder = faultyD1(db, (sql) => {
    if (openBatch) openBatch.push(sql);
    else trips.push([sql]);
    return undefined;
  });
  const counted = new Proxy(recorder, {
    get(target, property) {
      if (property === 'batch') {
        return (statements: D1PreparedStatement[]) => {
          // faultyD1's batch picks every statement synchronously, before its first await.
          openBatch = [];
          trips.push(openBatch);
          try {
            return target.batch(statements);
          } finally {
            openBatch = undefined;
          }
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { db: counted, trips };
}

/** A Durable Object namespace whose stubs record each method called on them, by name. */
export function countingNamespace<T extends DurableObjectNamespace>(namespace: T): { namespace: T; calls: string[] } {
  const calls: string[] = [];
  const countedStub = (stub: object) =>
    new Proxy(stub, {
      get(target, property) {
        const value = Reflect.get(target, property);
        if (typeof property !== 'string' || property === 'then' || typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.push(property);
          // Called as a method of the stub: an RPC method's own properties (`apply`) are remote calls.
          return (target as Record<string, (...a: unknown[]) => unknown>)[property]!(...args);
        };
      },
    });
  const counted = new Proxy(namespace, {
    get(target, property) {
      if (property === 'get') return (...args: unknown[]) => countedStub((target.get as (...a: unknown[]) => object)(...args));
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { namespace: counted, calls };
}
