// Starting the Worker in local workerd for the benchmark: bundling, the two hosts compared
// (Miniflare driven directly, and `wrangler dev`), and reading workerd's CPU time from /proc.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startLocalServer } from '../scripts/local-server.mjs';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// Miniflare exactly as the pinned wrangler uses it (its own dependency, with its own workerd).
const fromWrangler = createRequire(require.resolve('wrangler'));

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
 * warn` turns its per-request log lines off. Always stopped by the caller (scripts/local-server.mjs).
 */
export function startWranglerDev({ port, inspectorPort, vars = {}, persistTo }) {
  return startLocalServer({ wranglerDev: true, port, inspectorPort, vars, persistTo, args: ['--log-level', 'warn'], startTimeoutMs: 60_000 });
}
