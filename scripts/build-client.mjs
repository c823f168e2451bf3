#!/usr/bin/env node
// Builds the browser client (packages/client, the source of @latchkey/client too) to
// public/client.js, one file with its dependencies bundled in, and the demo page's script to
// public/demo.js, which Workers static assets serve at /client.js and /demo.js. Run by
// `npm start`, `npm test` (vitest.config.ts) and `npm run test:browser`, so a fresh clone needs
// no separate step. The outputs are build products and are not committed.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The demo imports the client by its package name, as an app would; the page loads /client.js. */
const servedClient = {
  name: 'served-client',
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^@latchkey\/client$/ }, () => ({ path: '/client.js', external: true }));
  },
};

export async function buildClient() {
  const common = {
    bundle: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    logLevel: 'warning',
    legalComments: 'none',
  };
  await Promise.all([
    build({ ...common, entryPoints: [join(root, 'packages/client/src/index.ts')], outfile: join(root, 'public/client.js') }),
    build({
      ...common,
      entryPoints: [join(root, 'client/demo/demo.ts')],
      outfile: join(root, 'public/demo.js'),
      plugins: [servedClient],
    }),
  ]);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildClient();
}
