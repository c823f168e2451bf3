/**
 * latchkey and the example resource Worker running side by side in one workerd, each from the
 * bundle `wrangler deploy` would upload and the bindings its own wrangler.toml declares.
 *
 * - `latchkey`: the service, issuer https://latchkey.test.
 * - `resource-jwks`, `resource-binding`, `resource-inline`: examples/resource-worker three times,
 *   once per key source (its global fetch to the issuer is routed to `latchkey`).
 * - `latchkey-rotation-0` to `-3`: latchkey with SIGNING_KEYS as `npm run keys` leaves it before
 *   and after each step of a rotation, sharing one D1 like successive deployments would.
 *
 * The tests run in a runner Worker bound to all of them and to the shared D1.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-pool-workers';
import { defineProject } from 'vitest/config';
import { unstable_getMiniflareWorkerOptions } from 'wrangler';
// @ts-expect-error: plain ES modules without types, shared with `npm start` and `npm run keys`.
import { readKeySet } from '../../scripts/keys.mjs';
// @ts-expect-error: as above.
import { generateAdminToken, generateSigningKey } from '../../scripts/signing-key.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const work = join(root, '.wrangler', 'two-workers');
const run = promisify(execFile);

export const ISSUER = 'https://latchkey.test';
const DATABASE = 'latchkey-two-workers';

interface JwkSet {
  keys: Array<Record<string, string>>;
}

/** `wrangler deploy --dry-run`: the very bundle a deploy uploads. */
async function bundle(name: string, configPath: string): Promise<string> {
  const outdir = join(work, name);
  try {
    await run(join(root, 'node_modules', '.bin', 'wrangler'), ['deploy', '--dry-run', '--outdir', outdir, '--config', configPath], {
      cwd: root,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
    });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`bundling ${name} failed:\n${stdout ?? ''}\n${stderr ?? ''}`);
  }
  return join(outdir, 'index.js');
}

/** SIGNING_KEYS before and after each step of `npm run keys`, run as an operator would. */
async function rotationKeySets(): Promise<{ phases: string[]; oldKid: string; newKid: string }> {
  const file = join(work, 'rotation.vars');
  const first = generateSigningKey() as { kid: string };
  writeFileSync(file, `SIGNING_KEYS='${JSON.stringify({ keys: [first] })}'\n`, { mode: 0o600 });
  const read = () => readKeySet(readFileSync(file, 'utf8')) as JwkSet;
  const keys = (...args: string[]) => run(process.execPath, [join(root, 'scripts', 'keys.mjs'), ...args, '--file', file], { cwd: root });
  const phases = [JSON.stringify(read())];
  await keys('add');
  const added = read();
  phases.push(JSON.stringify(added));
  // --force: the test does not wait the ten minutes verifiers get to fetch a new key.
  await keys('promote', '--force');
  phases.push(JSON.stringify(read()));
  await keys('retire', first.kid, '--force');
  phases.push(JSON.stringify(read()));
  return { phases, oldKid: first.kid, newKid: added.keys[1]?.kid as string };
}

/** A Worker's options as its wrangler.toml declares them; the bundle is already built, so no module rules. */
function workerOptionsOf(configPath: string) {
  const { modulesRules: _bundled, ...options } = unstable_getMiniflareWorkerOptions(configPath).workerOptions;
  return options;
}

function publicJwks(set: JwkSet): string {
  return JSON.stringify({ keys: set.keys.map(({ kty, crv, x, kid, alg, use }) => ({ kty, crv, x, kid, alg, use })) });
}

export default defineProject({
  resolve: { tsconfigPaths: true },
  plugins: [
    cloudflareTest(async () => {
      mkdirSync(work, { recursive: true });
      const [latchkeyScript, resourceScript, rotation] = await Promise.all([
        bundle('latchkey', join(root, 'wrangler.toml')),
        bundle('resource-worker', join(root, 'examples', 'resource-worker', 'wrangler.toml')),
        rotationKeySets(),
      ]);
      const latchkeyOptions = workerOptionsOf(join(root, 'wrangler.toml'));
      const resourceOptions = workerOptionsOf(join(root, 'examples', 'resource-worker', 'wrangler.toml'));
      const signingKeys: JwkSet = { keys: [generateSigningKey()] };

      const latchkey = (name: string, keys: string, objectStorage?: string) => ({
        ...latchkeyOptions,
        name,
        // Successive deployments of one Worker share its Durable Objects' storage: the rotation
        // phases, each its own Worker here, share one storage key for the user objects.
        ...(objectStorage === undefined
          ? {}
          : { durableObjects: { USER_AUTHORITY: { className: 'UserAuthority', useSQLite: true, unsafeUniqueKey: objectStorage } } }),
        modules: true,
        modulesRoot: dirname(latchkeyScript),
        scriptPath: latchkeyScript,
        // Like the main suite, many sign-ins from one address: the per-address limit and the hash
        // budget (test-only switches) are off; test/worker/login-storm.test.ts proves them.
        bindings: {
          ...latchkeyOptions.bindings,
          ISSUER,
          SIGNING_KEYS: keys,
          ADMIN_TOKEN: generateAdminToken(),
          ADDRESS_RATE_LIMIT: 'off',
          HASH_BUDGET: 'off',
        },
        d1Databases: { DB: DATABASE },
      });
      const resource = (name: string, changes: { bindings?: Record<string, string>; binding: boolean }) => ({
        ...resourceOptions,
        name,
        modules: true,
        modulesRoot: dirname(resourceScript),
        scriptPath: resourceScript,
        bindings: { ...resourceOptions.bindings, LATCHKEY_ISSUER: ISSUER, ...changes.bindings },
        serviceBindings: changes.binding ? resourceOptions.serviceBindings : {},
        // Its requests to https://latchkey.test/.well-known/jwks.json reach the latchkey Worker.
        outboundService: 'latchkey',
      });

      return {
        miniflare: {
          compatibilityDate: '2026-04-20',
          compatibilityFlags: ['nodejs_compat'],
          d1Databases: { DB: DATABASE },
          bindings: {
            ISSUER,
            // latchkey's own signing keys, so that the runner can mint tokens exactly as latchkey
            // does, bound ones included (test/two-workers/dpop.test.ts).
            LATCHKEY_SIGNING_KEYS: JSON.stringify(signingKeys),
            ROTATION_OLD_KID: rotation.oldKid,
            ROTATION_NEW_KID: rotation.newKid,
            TEST_MIGRATIONS: await readD1Migrations(join(root, 'migrations')),
          },
          serviceBindings: {
            LATCHKEY: 'latchkey',
            LATCHKEY_INTERNAL: { name: 'latchkey', entrypoint: 'LatchkeyInternal' },
            RESOURCE_JWKS: 'resource-jwks',
            RESOURCE_BINDING: 'resource-binding',
            RESOURCE_INLINE: 'resource-inline',
            ...Object.fromEntries(rotation.phases.map((_, phase) => [`ROTATION_${phase}`, `latchkey-rotation-${phase}`])),
          },
          workers: [
            latchkey('latchkey', JSON.stringify(signingKeys)),
            resource('resource-jwks', { binding: false }),
            resource('resource-binding', { binding: true }),
            resource('resource-inline', { binding: false, bindings: { LATCHKEY_JWKS: publicJwks(signingKeys) } }),
            ...rotation.phases.map((keys, phase) =>
              latchkey(`latchkey-rotation-${phase}`, keys, 'latchkey-rotation-UserAuthority'),
            ),
          ],
        },
      };
    }),
  ],
  test: {
    name: 'two-workers',
    root: here,
    include: ['*.test.ts'],
    setupFiles: ['../support/setup.ts'],
  },
});
