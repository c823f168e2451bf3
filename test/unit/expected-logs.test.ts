/**
 * The output `npm test` hides (test/support/expected-logs.ts): each pattern hides what it was written for,
 * and what would tell of a real failure still shows.
 */
import { describe, expect, it } from 'vitest';
import { EXPECTED_LOGS, hideExpectedWrites, isExpectedLog } from '../support/expected-logs';

describe('the output a green run hides', () => {
  it('hides each expected log it lists, from where it comes', () => {
    for (const expected of EXPECTED_LOGS) {
      expect(expected.examples.length).toBeGreaterThan(0);
      for (const example of expected.examples) expect(isExpectedLog(example, expected.from), example).toBe(true);
    }
  });

  it.each([
    ['stderr', 'latchkey: D1 unavailable Error: D1_ERROR: Network connection lost.'],
    ['stderr', 'latchkey: D1 unavailable Error: D1_ERROR: no such table: sessions: SQLITE_ERROR'],
    ['stderr', 'latchkey: unexpected error TypeError: Cannot read properties of undefined (reading "gen")'],
    ['stderr', 'latchkey: unexpected error Error: storage refused: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_UNIQUE)'],
    ['stderr', 'latchkey: Durable Object unavailable Error: Durable Object reset because its code was updated.'],
    ['stderr', 'latchkey: could not offer a DBSC registration Error: Durable Object reset because its code was updated.'],
    ['stderr', 'latchkey: sending the verification link failed Error: binding refused'],
    // Information lines are hidden from stdout only: written as errors, they would be news.
    ['stderr', 'latchkey: dbsc refresh of session 0d6f5a52: challenge (proof asked for)'],
    ['runner', 'uncaught exception; source = Uncaught (in promise); stack = TypeError: Cannot read properties of undefined'],
    ['runner', 'uncaught exception; source = Uncaught (in promise); stack = Error: injected D1 failure: batch'],
    ['runner', 'exception = workerd/api/web-socket.c++:821: disconnected: WebSocket peer disconnected; and then something else\n'],
    ['runner', 'A header value for "authorization" contains non-ASCII characters: "Bearer café"'],
    ['runner', 'A header value for "to" contains non-ASCII characters: "café@example.com"'],
    ['runner', 'Sourcemap for "/repo/src/app.ts" points to missing source files\n'],
    ['runner', ' FAIL   latchkey  test/worker/renewal.test.ts > renews\n'],
  ] as const)('shows, on %s: %s', (from, log) => {
    expect(isExpectedLog(log, from)).toBe(false);
  });

  it('drops expected writes of the runner, whole, and passes every other write through', () => {
    const written: unknown[] = [];
    let hidden = 0;
    const stream = {
      write(chunk: unknown, callback?: () => void) {
        written.push(chunk);
        callback?.();
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    hideExpectedWrites(stream, () => {
      hidden += 1;
    });
    let called = 0;
    stream.write('exception = workerd/api/web-socket.c++:821: disconnected: WebSocket peer disconnected\n', () => {
      called += 1;
    });
    stream.write(Buffer.from('Using secrets defined in .dev.vars\n'));
    stream.write(' ✓ test/worker/renewal.test.ts (12 tests)\n');
    stream.write('latchkey: D1 unavailable Error: injected D1 failure: batch\n');
    expect(written).toEqual([' ✓ test/worker/renewal.test.ts (12 tests)\n', 'latchkey: D1 unavailable Error: injected D1 failure: batch\n']);
    expect(hidden).toBe(2);
    expect(called).toBe(1);
  });
});
