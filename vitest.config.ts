import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';
import { hideExpectedWrites, isExpectedLog } from './test/expected-logs.ts';
// @ts-expect-error: a plain ES module without types, shared with `npm start`.
import { buildClient } from './scripts/build-client.mjs';
// @ts-expect-error: a plain ES module without types, shared with `npm start`.
import { generateAdminToken, generateSigningKey } from './scripts/signing-key.mjs';

// The static assets (public/) include the built client; the Worker tests fetch /client.js.
await buildClient();

// Fresh keys per run, made exactly as `npm start` makes them. The second key is published for
// verification only (rotation tests); the first one signs.
const signingKeys = { keys: [generateSigningKey(), generateSigningKey()] };

// D1's schema, applied by test/setup.ts exactly as `npm start` and the deploy apply it.
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
        `${hiddenLogs} expected log lines hidden (injected faults, information, runtime notes: test/expected-logs.ts); LATCHKEY_TEST_LOGS=all shows them.\n`,
      );
    }
  });
}

export default defineConfig({
  test: {
    onConsoleLog(log, type) {
      if (showAllLogs || !isExpectedLog(log, type)) return;
      hideOne();
      return false;
    },
    projects: [
      {
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
                // them (test/login-storm.test.ts).
                ADDRESS_RATE_LIMIT: 'off',
                HASH_BUDGET: 'off',
              },
            },
          }),
        ],
        test: {
          name: 'latchkey',
          include: ['test/**/*.test.ts'],
          exclude: ['test/node/**', 'test/two-workers/**'],
          setupFiles: ['./test/setup.ts'],
          // Logins hash with scrypt (~170 ms of CPU each): generous limits keep a loaded machine from failing them.
          testTimeout: 30_000,
        },
      },
      // latchkey and examples/resource-worker together in one workerd.
      './test/two-workers/vitest.config.ts',
      // `@latchkey/verify` outside Workers, the packages as published, and the scripts: Node, as a
      // Node service would run them.
      {
        resolve: { tsconfigPaths: true },
        test: {
          name: 'node',
          environment: 'node',
          include: ['test/verify/**/*.test.ts', 'test/node/**/*.test.ts'],
        },
      },
    ],
  },
});
