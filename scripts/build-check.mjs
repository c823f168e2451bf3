#!/usr/bin/env node
// `npm run build:check`: bundles latchkey and the example resource Worker exactly as `wrangler
// deploy` would (`--dry-run`: no account, no network), reports their sizes, and fails if a bundle
// does not build or outgrows the Workers Free plan's limit. latchkey is bundled with the
// configuration `npm run deploy` uploads ([env.production]), so a binding missing from that
// section fails here rather than at deploy time. CI runs it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wrangler = join(root, 'node_modules', '.bin', 'wrangler');

/** Workers Free plan: 3 MB after compression (Paid: 10 MB). Far above latchkey; a runaway dependency would show. */
const GZIP_LIMIT_BYTES = 3 * 1024 * 1024;

const WORKERS = [
  { name: 'latchkey', config: 'wrangler.toml', args: ['--env', 'production'] },
  { name: 'examples/resource-worker', config: 'examples/resource-worker/wrangler.toml', args: [] },
];

const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
const outRoot = mkdtempSync(join(tmpdir(), 'latchkey-build-'));
let failed = false;
try {
  for (const { name, config, args } of WORKERS) {
    const outdir = join(outRoot, name.replace(/\W+/g, '-'));
    const result = spawnSync(wrangler, ['deploy', '--dry-run', '--outdir', outdir, '--config', config, ...args], {
      cwd: root,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
      encoding: 'utf8',
    });
    if (result.status !== 0) {
      process.stderr.write(`${name}: the bundle does not build\n${result.stdout}${result.stderr}`);
      failed = true;
      continue;
    }
    const bundle = readFileSync(join(outdir, 'index.js'));
    const gzip = gzipSync(bundle).length;
    const reported = /Total Upload: ([^\n]+)/.exec(result.stdout)?.[1]?.trim() ?? 'not reported';
    console.log(`${name}: ${kib(bundle.length)}, gzip ${kib(gzip)} (wrangler: ${reported})`);
    if (gzip > GZIP_LIMIT_BYTES) {
      console.error(`${name}: over the ${kib(GZIP_LIMIT_BYTES)} compressed limit of the Workers Free plan`);
      failed = true;
    }
  }
} finally {
  rmSync(outRoot, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
