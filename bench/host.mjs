// Starting the Worker in local workerd for the benchmark: bundling, the two hosts compared
// (Miniflare driven directly, and `wrangler dev`), and reading workerd's CPU time from /proc.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// Miniflare exactly as the pinned wrangler uses it (its own dependency, with its own workerd).
const fromWrangler = createRequire(require.resolve('wrangler'));
const wranglerBin = join(root, 'node_modules', '.bin', 'wrangler');

/** The version of the workerd that the pinned wrangler (and so its Miniflare) runs. */
export function workerdVersion() {
  const miniflare = createRequire(fromWrangler.resolve('miniflare'));
  return JSON.parse(readFileSync(miniflare.resolve('workerd/package.json'), 'utf8')).version;
}

/** Bundles a Worker entry the way wrangler does for workerd: ES module, workerd/worker/browser conditions. */
export async function bundle(entry, outfile) {
  const { build } = await import('esbuild');
  await build({
    entryPoints: [join(root, entry)],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['module', 'main'],
    external: ['cloudflare:*', 'node:*'],
    logLevel: 'warning',
  });
  return outfile;
}

/**
 * Miniflare on `port` (loopback), configured from wrangler.toml exactly as `wrangler dev` would be,
 * running `script`, with extra bindings and Durable Objects (which may rebind wrangler.toml's).
 * Request logging off: Miniflare logs a request by calling back into Node, which would sit on the
 * measured path.
 */
export async function startMiniflare({ script, port, bindings = {}, durableObjects = {}, persistTo, inspectorPort, keepObjects = false }) {
  const { Miniflare, NoOpLog, Log, LogLevel } = await import(pathToFileURL(fromWrangler.resolve('miniflare')).href);
  const { unstable_getMiniflareWorkerOptions } = await import('wrangler');
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(root, 'wrangler.toml'));
  const mf = new Miniflare({
    ...workerOptions,
    name: 'latchkey',
    modules: [{ type: 'ESModule', path: script, contents: readFileSync(script, 'utf8') }],
    modulesRules: undefined,
    // Static assets are served by the platform before the Worker runs; locally they would add
    // Miniflare's asset router to every request, in front of the floor and the subject alike.
    assets: undefined,
    modulesRoot: dirname(script),
    bindings: { ...workerOptions.bindings, ...bindings },
    // `keepObjects` keeps every object in memory once woken, except those of classes marked
    // `evictable`, which the runtime evicts when idle as it would anywhere.
    durableObjects: Object.fromEntries(
      Object.entries({ ...workerOptions.durableObjects, ...durableObjects }).map(([name, { evictable, ...options }]) => [
        name,
        keepObjects && !evictable ? { ...options, unsafePreventEviction: true } : options,
      ]),
    ),
    host: '127.0.0.1',
    port,
    ...(inspectorPort ? { inspectorPort } : {}),
    logRequests: false,
    log: process.env.BENCH_LOG ? new Log(LogLevel.DEBUG) : new NoOpLog(),
    ...(process.env.BENCH_LOG ? { handleRuntimeStdio: (out, err) => { out.pipe(process.stderr); err.pipe(process.stderr); } } : {}),
    cf: false,
    d1Persist: persistTo ? join(persistTo, 'd1') : false,
    durableObjectsPersist: persistTo ? join(persistTo, 'do') : false,
  });
  const url = await mf.ready;
  return { url: url.href.replace(/\/$/, ''), stop: () => mf.dispose() };
}

/**
 * `wrangler dev` on `port` (loopback) with the project's own wrangler.toml and entry. `--log-level
 * warn` turns its per-request log lines off. Always stopped by the caller, by process group.
 */
export async function startWranglerDev({ port, inspectorPort, vars = {}, persistTo }) {
  const args = ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort)];
  args.push('--log-level', 'warn', '--show-interactive-dev-session=false');
  if (persistTo) args.push('--persist-to', persistTo);
  for (const [name, value] of Object.entries(vars)) args.push('--var', `${name}:${value}`);
  const child = spawn(wranglerBin, args, {
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited: ${stderr}`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      process.kill(-child.pid, 'SIGTERM');
      throw new Error(`wrangler dev did not answer within 60 s: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid, 'SIGTERM');
    const timer = setTimeout(() => child.exitCode === null && process.kill(-child.pid, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  return { url, pid: child.pid, stop };
}
