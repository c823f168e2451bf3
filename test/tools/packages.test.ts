/**
 * The packages an app installs, as it gets them: `@latchkey/verify` and `@latchkey/client` are
 * `npm pack`ed (each package's `prepack` compiles it), installed from those tarballs into a
 * throwaway app, and used there the way their README says: a Worker that type-checks and bundles
 * with `wrangler deploy --dry-run`, a page that type-checks and bundles with esbuild, and a Node
 * service that loads the compiled modules and verifies a token.
 *
 * Offline: nothing is asked of a registry. The packages' own dependencies (jose, hono,
 * @simplewebauthn/browser) are packed too, from the copies latchkey installed (the versions it
 * pins and tests with), and the app's `overrides` point their names at those tarballs, so
 * `npm install --offline` with an empty cache finds everything it needs on disk. The tools (tsc,
 * wrangler, esbuild and the Workers types) are latchkey's own: they are what builds an app, not
 * what is being tested.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module without types, run by CI as `npm run check:packages`.
import { packageProblems } from '../../scripts/check-packages.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
const execFileAsync = promisify(execFile);

interface PackedFile {
  path: string;
}
interface Packed {
  name: string;
  version: string;
  filename: string;
  files: PackedFile[];
}

/** The environment of a child npm: none of the `npm_*` settings of an `npm test` around this one. */
function childEnv(): typeof process.env {
  const env: typeof process.env = { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' };
  for (const name of Object.keys(env)) if (/^npm_/i.test(name)) Reflect.deleteProperty(env, name);
  return env;
}

async function run(command: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, { cwd, env: childEnv(), maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}\n${stderr ?? ''}`);
  }
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

const WORKER = `import { Hono } from 'hono';
import { createVerifier, failureResponse, latchkeyAuth, type LatchkeyVariables } from '@latchkey/verify';

const verifier = createVerifier({
  issuer: 'https://auth.example.com',
  audience: 'example',
  keys: { jwksUrl: 'https://auth.example.com/.well-known/jwks.json' },
});

const app = new Hono<{ Variables: LatchkeyVariables }>();
app.use('/api/*', latchkeyAuth(verifier, { dpop: 'allowed' }));
app.get('/api/me', (c) => c.json({ user: c.get('latchkey').sub }));
app.get('/plain', async (c) => {
  const outcome = await verifier.verifyRequest(c.req.raw, { requireVerifiedEmail: true });
  return outcome.ok ? c.text(outcome.claims.sid) : failureResponse(outcome);
});

export default app;
`;

const PAGE = `import { createClient, LatchkeyError, passkeysSupported } from '@latchkey/client';

const latchkey = createClient({ baseUrl: 'https://auth.example.com', mode: 'cookie' });
latchkey.addEventListener('signedout', (event) => console.log(event.detail.code));

export async function signIn(email: string, password: string): Promise<string> {
  try {
    if (!(await latchkey.resume())) await latchkey.login(email, password);
    const response = await latchkey.fetch('/api/me');
    return \`\${response.status} \${passkeysSupported()}\`;
  } catch (error) {
    return error instanceof LatchkeyError ? error.code : 'failed';
  }
}
`;

const NODE_SERVICE = `// @ts-check
import { createVerifier } from '@latchkey/verify';
import * as client from '@latchkey/client';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

const ISSUER = 'https://auth.example.com';
const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'EdDSA', use: 'sig' }] };
const nowSeconds = Math.floor(Date.now() / 1000);
const token = await new SignJWT({ sid: 's1', gen: 1, jti: 's1.1' })
  .setProtectedHeader({ alg: 'EdDSA', kid: 'k1', typ: 'at+jwt' })
  .setIssuer(ISSUER)
  .setAudience('example')
  .setSubject('u1')
  .setIssuedAt(nowSeconds)
  .setExpirationTime(nowSeconds + 300)
  .sign(privateKey);
const accepted = await createVerifier({ issuer: ISSUER, audience: 'example', keys: { jwks } }).verify(token);
const elsewhere = await createVerifier({ issuer: ISSUER, audience: 'another', keys: { jwks } }).verify(token);
console.log(JSON.stringify({
  accepted: accepted.ok ? accepted.claims.sub : accepted.code,
  elsewhere: elsewhere.ok ? elsewhere.claims.sub : elsewhere.code,
  client: typeof client.createClient,
}));
`;

describe('the packages an app installs', () => {
  let work: string;
  let app: string;
  let packed: Packed[];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'latchkey-packages-'));
    app = join(work, 'app');
    const tarballs = join(work, 'tarballs');
    mkdirSync(tarballs);
    const rootManifest = readJson<{ workspaces: string[] }>(join(root, 'package.json'));
    // Their dependencies, from latchkey's own node_modules: runtime ones reach the app through
    // `overrides` (as an install from a registry would bring them), peer ones are the app's own.
    const manifests = rootManifest.workspaces.map((w) =>
      readJson<{ dependencies?: Record<string, string>; peerDependencies?: Record<string, string> }>(join(root, w, 'package.json')),
    );
    const runtime = [...new Set(manifests.flatMap((m) => Object.keys(m.dependencies ?? {})))];
    const peers = [...new Set(manifests.flatMap((m) => Object.keys(m.peerDependencies ?? {})))];
    const [ours, dependencyTarballs] = await Promise.all([
      run('npm', ['pack', ...rootManifest.workspaces.map((w) => `--workspace=${w}`), '--pack-destination', tarballs, '--json'], root),
      run(
        'npm',
        ['pack', ...[...runtime, ...peers].map((name) => `./node_modules/${name}`), '--pack-destination', tarballs, '--ignore-scripts', '--json'],
        root,
      ),
    ]).then((outputs) => outputs.map((output) => JSON.parse(output) as Packed[]) as [Packed[], Packed[]]);
    packed = ours;
    const file = (name: string, from: Packed[]) => `file:${join(tarballs, (from.find((p) => p.name === name) as Packed).filename)}`;

    write(
      join(app, 'package.json'),
      JSON.stringify(
        {
          name: 'an-app',
          private: true,
          type: 'module',
          dependencies: {
            ...Object.fromEntries(packed.map((p) => [p.name, file(p.name, packed)])),
            ...Object.fromEntries(peers.map((name) => [name, file(name, dependencyTarballs)])),
          },
          overrides: Object.fromEntries(runtime.map((name) => [name, file(name, dependencyTarballs)])),
        },
        null,
        2,
      ),
    );
    await run('npm', ['install', '--offline', '--cache', join(work, 'npm-cache'), '--no-audit', '--no-fund', '--ignore-scripts'], app);
    // The Workers types an app's tsconfig names, as latchkey has them installed.
    mkdirSync(join(app, 'node_modules', '@cloudflare'), { recursive: true });
    symlinkSync(join(root, 'node_modules', '@cloudflare', 'workers-types'), join(app, 'node_modules', '@cloudflare', 'workers-types'), 'dir');

    // The page and the Node service are type-checked together: one compiler run for both.
    write(join(app, 'page', 'main.ts'), PAGE);
    write(join(app, 'service.mjs'), NODE_SERVICE);
    // nodenext: the resolution Node itself uses, so the declarations must name their files exactly.
    write(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2022',
          lib: ['es2022', 'dom', 'dom.iterable'],
          module: 'nodenext',
          moduleResolution: 'nodenext',
          types: [],
          allowJs: true,
          checkJs: true,
          strict: true,
          noEmit: true,
        },
        include: ['page/main.ts', 'service.mjs'],
      }),
    );
  }, 180_000);

  let browserAndNodeTypes: Promise<string> | undefined;
  const typecheckBrowserAndNode = () => {
    browserAndNodeTypes ??= run(bin('tsc'), ['-p', app], app);
    return browserAndNodeTypes;
  };

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the version of every package is latchkey’s, and their dependency ranges admit what latchkey tests with', () => {
    expect(packageProblems()).toEqual([]);
  });

  it('packs compiled ES modules with type declarations, and no source', () => {
    expect(packed.map((p) => p.name).sort()).toEqual(['@latchkey/client', '@latchkey/verify']);
    for (const { name, version, files } of packed) {
      expect(version, name).toBe(readJson<{ version: string }>(join(root, 'package.json')).version);
      const paths = files.map((f) => f.path);
      expect(paths, name).toEqual(expect.arrayContaining(['package.json', 'dist/index.js', 'dist/index.d.ts']));
      expect(paths.filter((path) => !/^(?:package\.json|README\.md|dist\/.+\.(?:js|d\.ts))$/.test(path)), name).toEqual([]);
    }
  });

  it('installs the packages from their tarballs, with their dependencies', () => {
    for (const { name, version } of packed) {
      const installed = readJson<{ version: string; exports: unknown }>(join(app, 'node_modules', name, 'package.json'));
      expect(installed.version).toBe(version);
    }
    // One jose for the app and both packages: the tarballs' ranges took the version latchkey pins.
    expect(readJson<{ version: string }>(join(app, 'node_modules', 'jose', 'package.json')).version).toBe(
      readJson<{ dependencies: Record<string, string> }>(join(root, 'package.json')).dependencies.jose,
    );
  });

  it.concurrent('a Worker that imports @latchkey/verify type-checks and bundles with wrangler deploy --dry-run', async () => {
    write(join(app, 'worker', 'index.ts'), WORKER);
    write(
      join(app, 'worker', 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2022',
          lib: ['es2022'],
          module: 'es2022',
          moduleResolution: 'bundler',
          // The types package many apps use: the published .d.ts must compile against it (latchkey's
          // own programs read only the runtime types `wrangler types` generated).
          types: ['@cloudflare/workers-types'],
          strict: true,
          noEmit: true,
        },
        include: ['index.ts'],
      }),
    );
    write(join(app, 'wrangler.toml'), 'name = "an-app"\nmain = "worker/index.ts"\ncompatibility_date = "2026-04-20"\nsend_metrics = false\n');
    await run(bin('tsc'), ['-p', join(app, 'worker')], app);
    await run(bin('wrangler'), ['deploy', '--dry-run', '--outdir', join(app, 'out', 'worker')], app);
    const bundle = readFileSync(join(app, 'out', 'worker', 'index.js'), 'utf8');
    // The verifier is in the bundle, and nothing of latchkey's service came with it.
    expect(bundle).toContain('latchkey verify: keys must name exactly one source');
    expect(bundle).not.toContain('SIGNING_KEYS');
  }, 120_000);

  it.concurrent('a page that imports @latchkey/client type-checks and bundles with esbuild', async () => {
    await typecheckBrowserAndNode();
    const result = await build({
      absWorkingDir: app,
      entryPoints: ['page/main.ts'],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    });
    const bundle = result.outputFiles[0]?.text ?? '';
    expect(result.errors).toEqual([]);
    // Everything bundled in, the passkey ceremonies among it: no import is left for the browser.
    expect(bundle).not.toMatch(/^\s*import\b/m);
    expect(bundle).toContain('startAuthentication');
  }, 120_000);

  it.concurrent('a Node service loads the compiled modules as plain ES modules and verifies a token', async () => {
    await typecheckBrowserAndNode();
    const output = await run(process.execPath, ['service.mjs'], app);
    expect(JSON.parse(output)).toEqual({ accepted: 'u1', elsewhere: 'invalid_token', client: 'function' });
  }, 120_000);
});

describe('npm run check:packages', () => {
  let fake: string;
  beforeAll(() => {
    fake = mkdtempSync(join(tmpdir(), 'latchkey-check-'));
  });
  afterAll(() => rmSync(fake, { recursive: true, force: true }));

  function repository(version: string, manifest: Record<string, unknown>, source: string): string {
    const dir = mkdtempSync(join(fake, 'repo-'));
    write(
      join(dir, 'package.json'),
      JSON.stringify({ version: '1.2.3', workspaces: ['packages/verify'], dependencies: { jose: '6.2.18', hono: '4.13.19' } }),
    );
    write(join(dir, 'packages', 'verify', 'package.json'), JSON.stringify({ name: '@latchkey/verify', version, ...manifest }));
    write(join(dir, 'packages', 'verify', 'src', 'index.ts'), source);
    return dir;
  }

  it('passes packages at latchkey’s version whose ranges admit its pins and whose imports are declared', () => {
    const dir = repository('1.2.3', { dependencies: { jose: '^6.2.0' }, peerDependencies: { hono: '^4.0.0' } }, "import { x } from 'jose';\nimport { y } from 'hono/http-exception';\nimport { z } from './z.js';\n");
    expect(packageProblems(dir)).toEqual([]);
  });

  it('names a version apart, a range that leaves out the pinned version, and an undeclared import', () => {
    const dir = repository('1.2.4', { dependencies: { jose: '^6.3.0' } }, "import {\n  a,\n} from 'hono';\n");
    expect(packageProblems(dir)).toEqual([
      '@latchkey/verify is at 1.2.4, latchkey at 1.2.3: versions move together',
      '@latchkey/verify asks for jose@^6.3.0, which does not admit 6.2.18, the version latchkey tests with',
      'packages/verify/src/index.ts imports hono, which @latchkey/verify does not declare',
    ]);
  });
});
