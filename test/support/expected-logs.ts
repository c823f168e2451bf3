/**
 * What a green `npm test` prints on purpose, and is hidden so that it does not read as failures:
 * the Worker's own log lines for faults the tests inject, its information lines, and what the
 * runtime, vite and wrangler say about things the tests do deliberately. Each pattern matches one
 * cause and nothing else: a D1 failure that was not injected, an unexpected error, a real uncaught
 * exception still shows. `LATCHKEY_TEST_LOGS=all npm test` shows everything.
 * (vitest.config.ts installs these; test/unit/expected-logs.test.ts checks each one.)
 */

export interface ExpectedLog {
  /** Tested against the whole log (its first line starts it; `^` anchors there). */
  pattern: RegExp;
  /** Where it appears: a test's console (`stdout`/`stderr`), or the runner's own output. */
  from: 'stdout' | 'stderr' | 'runner';
  /** Logs as printed, for the test of the pattern. */
  examples: readonly string[];
}

export const EXPECTED_LOGS: readonly ExpectedLog[] = [
  // test/support/faults.ts fails D1 statements on purpose, before D1 (InjectedD1Failure) or inside a batch
  // (a call to a function D1 does not have); the Worker logs each as D1 being unavailable.
  {
    pattern: /^latchkey: D1 unavailable Error: (injected D1 failure: |D1_ERROR: no such function: latchkey_injected_failure\b)/,
    from: 'stderr',
    examples: [
      'latchkey: D1 unavailable Error: injected D1 failure: batch',
      'latchkey: D1 unavailable Error: D1_ERROR: no such function: latchkey_injected_failure at offset 7: SQLITE_ERROR',
    ],
  },
  // test/worker/invariants.test.ts makes the object's storage refuse a write with a trigger.
  {
    pattern: /^latchkey: unexpected error Error: injected storage failure: SQLITE_CONSTRAINT\b/,
    from: 'stderr',
    examples: ['latchkey: unexpected error Error: injected storage failure: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_TRIGGER)'],
  },
  {
    pattern: /^uncaught exception; source = Uncaught \(in promise\); stack = Error: injected storage failure: SQLITE_CONSTRAINT\b/,
    from: 'runner',
    examples: [
      'uncaught exception; source = Uncaught (in promise); stack = Error: injected storage failure: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_TRIGGER)\n    at UserAuthority.#transaction (/src/user-authority/object.ts:1:1)',
    ],
  },
  // An offer of device binding the object could not make because of an injected failure.
  {
    pattern: /^latchkey: could not offer a DBSC registration .*(injected D1 failure|latchkey_injected_failure|injected storage failure)/,
    from: 'stderr',
    examples: ['latchkey: could not offer a DBSC registration Error: injected D1 failure: batch'],
  },
  // Information for operators, not failures: each DBSC registration and refresh, each pruning.
  {
    pattern: /^latchkey: dbsc (registered session|refresh of session) \S+/,
    from: 'stdout',
    examples: [
      'latchkey: dbsc registered session 0d6f5a52-7a3c-4d7e-9f0e-2b1f3f8e9a10 (ES256)',
      'latchkey: dbsc refresh of session 0d6f5a52-7a3c-4d7e-9f0e-2b1f3f8e9a10: challenge (proof asked for)',
      'latchkey: dbsc refresh of session 0d6f5a52-7a3c-4d7e-9f0e-2b1f3f8e9a10: end (session_revoked)',
    ],
  },
  {
    pattern: /^latchkey: pruned \d+ session rows/,
    from: 'stdout',
    examples: ['latchkey: pruned 1 session rows, 1 login-attempt rows, 0 expired links, 0 message counts and 0 deleted accounts'],
  },
  // test/worker/user-object.test.ts calls the object's internal names through a stub to prove they are
  // out of reach: the test receives the refusal, and the runtime logs it once more.
  {
    pattern: /^uncaught exception; source = Uncaught \(in promise\); stack = TypeError: The RPC receiver does not implement "\w+"\./,
    from: 'runner',
    examples: [
      'uncaught exception; source = Uncaught (in promise); stack = TypeError: The RPC receiver does not implement "grant".\n    at getRPCProperty (test-internal.mjs:339:9)',
    ],
  },
  // The malformed-token corpus (test/security/tokens.json) sends a token that is not ASCII.
  {
    pattern: /^A header value for "(authorization|cookie)" contains non-ASCII characters: "(Bearer |DPoP |latchkey_at=)é\.é\.é"/,
    from: 'runner',
    examples: [
      'A header value for "authorization" contains non-ASCII characters: "Bearer é.é.é" (raw bytes: "…"). As a quirk to support Unicode, we are encoding values as UTF-8 in the header.',
    ],
  },
  // The attack corpus (test/security/requests.json) registers a Cyrillic look-alike of an address,
  // and the verification message goes to it.
  {
    pattern: /^A header value for "to" contains non-ASCII characters: "кay-[\w-]*@example\.com"/,
    from: 'runner',
    examples: [
      'A header value for "to" contains non-ASCII characters: "кay-b5380431@example.com" (raw bytes: "…"). As a quirk to support Unicode, we are encoding values as UTF-8 in the header.',
    ],
  },
  // The Workers pool closing its connection to a test file's runner, as its own ignore list does
  // for the other ways that connection ends.
  {
    pattern: /^exception = workerd\/api\/web-socket\.c\+\+:\d+: disconnected: WebSocket peer disconnected\n?$/,
    from: 'runner',
    examples: ['exception = workerd/api/web-socket.c++:821: disconnected: WebSocket peer disconnected\n'],
  },
  // Vite about dependencies that publish source maps without their sources.
  {
    pattern: /^Sourcemap for "[^"\n]*\/node_modules\/[^"\n]*" points to missing source files\n?$/,
    from: 'runner',
    examples: ['Sourcemap for "/repo/node_modules/dpop/build/index.js" points to missing source files\n'],
  },
  // Wrangler reading the local secrets file for test/two-workers.
  {
    pattern: /^Using secrets defined in \.dev\.vars\n?$/,
    from: 'runner',
    examples: ['Using secrets defined in .dev.vars\n'],
  },
];

/** Whether a log from `from` is one of the expected ones. */
export function isExpectedLog(text: string, from: ExpectedLog['from']): boolean {
  return EXPECTED_LOGS.some((expected) => expected.from === from && expected.pattern.test(text));
}

/**
 * Wraps `stream.write` so that writes that are expected runner output are dropped; `hidden` is
 * called for each. The runtime, vite and wrangler write each message whole, in one call.
 */
export function hideExpectedWrites(stream: NodeJS.WriteStream, hidden: () => void): void {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString('utf8') : '';
    if (text !== '' && isExpectedLog(text, 'runner')) {
      hidden();
      const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }
    return write(chunk, ...rest);
  }) as typeof stream.write;
}
