import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';
// @ts-expect-error: a plain ES module without types, shared with `npm start`.
import { buildClient } from './scripts/build-client.mjs';
// @ts-expect-error: a plain ES module without types, shared with `npm start`.
import { generateAdminToken, generateSigningKey } from './scripts/signing-key.mjs';

// The static assets (public/) include the built client; the Worker tests fetch /client.js.
await buildClient();

// Fresh keys per run, made exactly as `npm start` makes them. The second key is published for
// verification only (rotation tests); the first one signs.
const signingKeys = { keys: [generateSigningKey(), generateSigningKey()] };

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: './wrangler.toml' },
      miniflare: {
        bindings: {
          SIGNING_KEYS: JSON.stringify(signingKeys),
          ADMIN_TOKEN: generateAdminToken(),
        },
      },
    }),
  ],
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['./test/setup.ts'],
  },
});
