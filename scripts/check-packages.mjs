#!/usr/bin/env node
// `npm run check:packages`: the workspace packages (@latchkey/verify, @latchkey/client) move with
// latchkey. It fails, naming what is wrong, unless
// - every package's version is latchkey's own (package.json): one number, bumped for all at once by
//   `npm version <v> --workspaces --include-workspace-root`;
// - every range a package declares (dependencies, peerDependencies) admits the exact version
//   latchkey pins, so the versions its tests run are ones an app can get;
// - every module a package's source imports is its own (relative) or one it declares: a package
//   never reaches into latchkey's src/ (tsc's rootDir refuses relative paths out of src/ too).
// CI runs it, and so does test/tools/packages.test.ts.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

/** `^X.Y.Z` admits `version` (exact `X.Y.Z` pins only; latchkey pins nothing else). */
function caretAdmits(range, version) {
  const wanted = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range);
  const have = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!wanted || !have) return false;
  const [w, h] = [wanted.slice(1).map(Number), have.slice(1).map(Number)];
  // Caret: the leftmost non-zero part is fixed; the rest may only grow.
  const fixed = w[0] !== 0 ? 1 : w[1] !== 0 ? 2 : 3;
  for (let i = 0; i < 3; i++) {
    if (i < fixed && h[i] !== w[i]) return false;
    if (h[i] !== w[i]) return h[i] > w[i];
  }
  return true;
}

function sourceFiles(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

/** The package a bare specifier names: `hono/http-exception` is `hono`, `@scope/name/x` is `@scope/name`. */
function packageOf(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Every problem found in the repository at `root`, as sentences; empty when the packages move with latchkey. */
export function packageProblems(root = repoRoot) {
  const rootManifest = readJson(join(root, 'package.json'));
  const pinned = { ...rootManifest.devDependencies, ...rootManifest.dependencies };
  const problems = [];
  for (const workspace of rootManifest.workspaces) {
    const manifest = readJson(join(root, workspace, 'package.json'));
    const name = manifest.name;
    if (manifest.version !== rootManifest.version) {
      problems.push(`${name} is at ${manifest.version}, latchkey at ${rootManifest.version}: versions move together`);
    }
    const declared = { ...manifest.peerDependencies, ...manifest.dependencies };
    for (const [dependency, range] of Object.entries(declared)) {
      const version = pinned[dependency];
      if (version === undefined) problems.push(`${name} depends on ${dependency}, which latchkey does not pin (so never tests)`);
      else if (!caretAdmits(range, version)) {
        problems.push(`${name} asks for ${dependency}@${range}, which does not admit ${version}, the version latchkey tests with`);
      }
    }
    for (const file of sourceFiles(join(root, workspace, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const [, specifier] of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/g)) {
        if (specifier.startsWith('.')) continue;
        if (!Object.hasOwn(declared, packageOf(specifier))) {
          problems.push(`${file.slice(root.length + 1)} imports ${specifier}, which ${name} does not declare`);
        }
      }
    }
  }
  return problems;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const problems = packageProblems();
  for (const problem of problems) console.error(problem);
  if (problems.length > 0) process.exit(1);
  console.log('packages: versions and dependency ranges move with latchkey');
}
