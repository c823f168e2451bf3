#!/usr/bin/env node
// `npm start`: make sure .dev.vars exists, build the browser client, apply migrations/ to the local
// D1, run `wrangler dev`.
// Arguments after `--` go to `wrangler dev` (npm start -- --port 9000 --var ACCESS_TOKEN_TTL:2).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildClient } from './build-client.mjs';
import { generateAdminToken, generateSigningKey } from './signing-key.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wrangler = join(root, 'node_modules', '.bin', 'wrangler');
const env = { ...process.env, WRANGLER_SEND_METRICS: 'false' };
const devVars = join(root, '.dev.vars');

if (!existsSync(devVars)) {
  const keys = JSON.stringify({ keys: [generateSigningKey()] });
  writeFileSync(
    devVars,
    `# Written by npm start for local development only. Never commit it.\nSIGNING_KEYS='${keys}'\nADMIN_TOKEN=${generateAdminToken()}\n`,
    { mode: 0o600 },
  );
  console.log('latchkey: wrote .dev.vars with a fresh Ed25519 signing key and a random ADMIN_TOKEN');
}

await buildClient();

const schema = spawnSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local'], {
  cwd: root,
  env,
  stdio: ['ignore', 'ignore', 'inherit'],
});
if (schema.status !== 0) {
  console.error('latchkey: applying migrations/ to the local D1 failed');
  process.exit(schema.status ?? 1);
}

const dev = spawn(wrangler, ['dev', ...process.argv.slice(2)], { cwd: root, env, stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => dev.kill(signal));
dev.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
