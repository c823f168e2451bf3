#!/usr/bin/env node
// Builds the workspace packages an app installs (`@latchkey/verify`, `@latchkey/client`): each
// package's src/ compiled by tsc to dist/ as ES modules with type declarations, dist/ emptied
// first so that a module renamed in src/ leaves nothing behind in what is packed. `npm pack` and
// `npm publish` run it (each package's `prepack`); `npm run build` runs it for both. latchkey itself
// and its tests use the source, never dist/.
//
//   node scripts/build-packages.mjs [verify|client ...]   (default: all)
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const PACKAGES = ['verify', 'client'];
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

/** Compiles one package; throws with tsc's output if it does not compile. */
export function buildPackage(name) {
  if (!PACKAGES.includes(name)) throw new Error(`no package ${JSON.stringify(name)}: expected one of ${PACKAGES.join(', ')}`);
  const dir = join(root, 'packages', name);
  rmSync(join(dir, 'dist'), { recursive: true, force: true });
  const result = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { cwd: dir, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`packages/${name} does not compile:\n${result.stdout}${result.stderr}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const names = process.argv.slice(2);
  try {
    for (const name of names.length > 0 ? names : PACKAGES) buildPackage(name);
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
