import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';
import { hideExpectedWrites, isExpectedLog } from './test/support/expected-logs.ts';
// @ts-expect-error: a plain ES module without types, shared with `npm start`.
import { buildClient } from './scripts/build-client.mjs';
// @ts-expect-error: a plain ES module without types, shared with `npm start`.
import { generateAdminToken, generateSigningKey } from './scripts/signing-key.mjs';

// The static assets (public/) include the built client; the Worker tests fetch /client.js.
await buildClient();

// Fresh keys per run, made exactly as `npm start` makes them. The second key is published for
// verification only (rotation tests); the first one signs.
const signingKeys = { keys: [generateSigningKey(), generateSigningKey()] };

// D1's schema, applied by test/support/setup.ts exactly as `npm start` and the deploy apply it.
const migrations = await readD1Migrations('./migrations');

// What a green run prints on purpose (injected faults, information lines, the runtime's notes on
// what the tests do deliberately) is hidden, and counted once at the end; anything else shows.
// LATCHKEY_TEST_LOGS=all shows everything.
const showAllLogs = process.env.LATCHKEY_TEST_LOGS === 'all';
let hiddenLogs = 0;
const hideOne = () => {
  hiddenLogs += 1;
};
if (!showAllLogs) {
  hideExpectedWrites(process.stdout, hideOne);
  hideExpectedWrites(process.stderr, hideOne);
  process.once('exit', () => {
    if (hiddenLogs > 0) {
      process.stdout.write(
        `${hiddenLogs} expected log lines hidden (injected faults, information, runtime notes: test/support/expected-logs.ts); LATCHKEY_TEST_LOGS=all shows them.\n`,
      );
    }
  });
}

/**
 * The service as the Worker tests see it: wrangler.toml's bindings plus fresh keys and the test-only
 * switches, in workerd. Shared by the `worker` and `security` projects.
 */
const inWorkerd = {
  // `@latchkey/verify` and `@latchkey/client` from their source, as tsconfig.json maps them.
  resolve: { tsconfigPaths: true },
  plugins: [
    cloudflareTest({
      wrangler: { configPath: './wrangler.toml' },
      miniflare: {
        bindings: {
          SIGNING_KEYS: JSON.stringify(signingKeys),
          ADMIN_TOKEN: generateAdminToken(),
          TEST_MIGRATIONS: migrations,
          // The suite signs hundreds of users in from one address, many at once: both
          // defences are off here and switched on, per request, by the tests that prove
          // them (test/worker/login-storm.test.ts).
          ADDRESS_RATE_LIMIT: 'off',
          HASH_BUDGET: 'off',
        },
      },
    }),
  ],
};
const workerdTest = {
  setupFiles: ['./test/support/setup.ts'],
  // Logins hash with scrypt (~170 ms of CPU each): generous limits keep a loaded machine from failing them.
  testTimeout: 30_000,
};
const inNode = { resolve: { tsconfigPaths: true } };

// One axis: what runs a test and what it touches (test/README.md).
export default defineConfig({
  test: {
    onConsoleLog(log, type) {
      if (showAllLogs || !isExpectedLog(log, type)) return;
      hideOne();
      return false;
    },
    projects: [
      // Pure code in Node: no Worker, no process, no file.
      {
        ...inNode,
        test: { name: 'unit', environment: 'node', include: ['test/unit/**/*.test.ts'], setupFiles: ['./test/support/reset-clock.ts'] },
      },
      // The Worker, its object and its D1, inside workerd. `@latchkey/verify` ships for Workers as
      // well as Node: its suite (test/unit/verifier.test.ts) runs here too.
      {
        ...inWorkerd,
        test: { ...workerdTest, name: 'worker', include: ['test/worker/**/*.test.ts', 'test/unit/verifier.test.ts'] },
      },
      // The attack corpora and attack suites, against the runtime that ships: workerd's WebCrypto
      // is what checks a forged signature in production.
      { ...inWorkerd, test: { ...workerdTest, name: 'security', include: ['test/security/**/*.test.ts'] } },
      // latchkey and examples/resource-worker together in one workerd.
      './test/two-workers/vitest.config.ts',
      // The repository's scripts, packages and command-line client, in Node as an operator runs
      // them: they spawn processes and write temporary files.
      { ...inNode, test: { name: 'tools', environment: 'node', include: ['test/tools/**/*.test.ts'] } },
    ],
  },
});
