// Starts `npm start` on loopback for a benchmark, bounded in time, and stops it (the whole
// process group: npm start, wrangler, workerd) when asked, when the time runs out, or on exit.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * @param {{ port: number, inspectorPort: number, vars?: Record<string, string>, maxSeconds: number, log?: boolean }} options
 * @returns {Promise<{ url: string, stop: () => Promise<void> }>}
 */
export async function startServer({ port, inspectorPort, vars = {}, maxSeconds, log = false }) {
  const args = [
    join(root, 'scripts', 'start.mjs'),
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--inspector-port', String(inspectorPort),
    '--inspector-ip', '127.0.0.1',
    '--show-interactive-dev-session=false',
    '--log-level', process.env.LATCHKEY_BENCH_LOG_LEVEL ?? 'error',
    ...Object.entries(vars).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
  ];
  // A private dev registry: the shared one lists every `wrangler dev` on the machine, and another
  // one starting or stopping under the same name makes this one's proxy restart mid-request.
  const registry = mkdtempSync(join(tmpdir(), 'latchkey-bench-registry-'));
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', WRANGLER_REGISTRY_PATH: registry },
    stdio: ['ignore', log ? 'inherit' : 'ignore', 'inherit'],
    detached: true,
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
    rmSync(registry, { recursive: true, force: true });
  });

  const kill = (signal) => {
    if (exited) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  const stop = async () => {
    clearTimeout(deadline);
    kill('SIGTERM');
    for (let waited = 0; !exited && waited < 5000; waited += 100) await new Promise((r) => setTimeout(r, 100));
    kill('SIGKILL');
  };
  const deadline = setTimeout(() => {
    console.error(`bench: the server ran longer than ${maxSeconds} s; stopping it`);
    kill('SIGKILL');
    process.exit(2);
  }, maxSeconds * 1000);
  process.on('exit', () => kill('SIGKILL'));
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      kill('SIGKILL');
      process.exit(130);
    });
  }

  const url = `http://127.0.0.1:${port}`;
  const started = Date.now();
  for (;;) {
    if (exited) throw new Error('bench: npm start exited before it served /health');
    try {
      const response = await fetch(`${url}/health`);
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() - started > 90_000) {
      await stop();
      throw new Error('bench: npm start did not serve /health within 90 s');
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { url, stop };
}

/** Percentile of sorted numbers (nearest rank). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** The machine, for results files. */
export async function machine() {
  const os = await import('node:os');
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}
