// One way to run latchkey locally from a script: `npm start` (scripts/start.mjs) on loopback, or a
// plain `wrangler dev` of a given config, waited for until it answers, and stopped with everything
// it started. The browser tests, `npm run load`, the timing benchmarks and bench/hosts.mjs use it.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WRANGLER = join(ROOT, 'node_modules', '.bin', 'wrangler');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function readProc(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return ''; // Exited while we looked.
  }
}

function listProc(path) {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses. */
function statOf(pid) {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === '') return undefined;
  const [state, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state, ppid: Number(ppid), pgrp: Number(pgrp) };
}

/** Process ids below `pid` (children, grandchildren…), from /proc (Linux; empty elsewhere). */
export function descendants(pid) {
  const found = [];
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift();
    for (const task of listProc(`/proc/${current}/task`)) {
      const children = readProc(`/proc/${current}/task/${task}/children`).trim();
      for (const child of children ? children.split(/\s+/).map(Number) : []) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/**
 * Whether any process of the group still runs. On Linux, zombies do not count: where PID 1 does
 * not reap orphans (some containers), a child that outlived its parent stays listed after it
 * exits, and `kill(-pgid, 0)` would keep answering yes.
 */
export function groupAlive(pgid) {
  if (process.platform === 'linux') {
    for (const entry of listProc('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = statOf(entry);
      if (stat && stat.pgrp === pgid && stat.state !== 'Z') return true;
    }
    return false;
  }
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is empty already.
  }
}

/** Waits up to `ms` for every group to be gone; whether they are. */
export async function waitForGroupsExit(pgids, ms) {
  for (const deadline = Date.now() + ms; Date.now() < deadline; ) {
    if (!pgids.some(groupAlive)) return true;
    await sleep(100);
  }
  return !pgids.some(groupAlive);
}

/** Time scripts/start.mjs gives wrangler to stop before it kills it, and a little more. */
const STOP_GRACE_MS = 12_000;

/**
 * Starts latchkey on `ip`:`port` and waits until `GET /health` answers 200.
 *
 * - `wranglerDev: false` (default): `npm start` (scripts/start.mjs: .dev.vars, the client build,
 *   the local D1's migrations, then `wrangler dev`). `wranglerDev: true`: `wrangler dev` alone, of
 *   `config` (default wrangler.toml), with `persistTo` if given.
 * - `vars` become `--var NAME:value`; `args` are added to wrangler dev's arguments as they are.
 * - Output: to `logPath` (both streams), else stdout dropped unless `showOutput`, stderr shown.
 * - A private dev registry: the machine's shared one lists every `wrangler dev` running, and another
 *   one starting or stopping under the same name makes this one's proxy restart mid-request.
 * - Its own process group; `stop()` signals it, waits for it and for the group wrangler runs in,
 *   and kills what is left. The server never outlives this process (exit, SIGINT, SIGTERM), nor
 *   `maxSeconds` if given.
 */
export async function startLocalServer({
  port,
  inspectorPort,
  ip = '127.0.0.1',
  vars = {},
  args = [],
  wranglerDev = false,
  config,
  persistTo,
  logPath,
  showOutput = false,
  startTimeoutMs = 120_000,
  maxSeconds,
  env = {},
}) {
  const serverArgs = [
    '--ip', ip,
    '--port', String(port),
    '--inspector-port', String(inspectorPort),
    '--inspector-ip', '127.0.0.1',
    '--show-interactive-dev-session=false',
    ...(config ? ['--config', config] : []),
    ...(persistTo ? ['--persist-to', persistTo] : []),
    ...args,
    ...Object.entries(vars).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
  ];
  const [command, commandArgs] = wranglerDev
    ? [WRANGLER, ['dev', ...serverArgs]]
    : [process.execPath, [join(ROOT, 'scripts', 'start.mjs'), ...serverArgs]];
  const registry = mkdtempSync(join(tmpdir(), 'latchkey-registry-'));
  const log = logPath ? createWriteStream(logPath) : undefined;
  const child = spawn(command, commandArgs, {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true', WRANGLER_REGISTRY_PATH: registry, ...env },
    stdio: ['ignore', log ? 'pipe' : showOutput ? 'inherit' : 'ignore', log ? 'pipe' : 'inherit'],
    detached: true,
  });
  if (log) {
    child.stdout.pipe(log);
    child.stderr.pipe(log);
  }
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const name = wranglerDev ? 'wrangler dev' : 'npm start';
  const where = logPath ? `; see ${logPath}` : '';

  // scripts/start.mjs puts wrangler in a group of its own: every group below the child is ours.
  const groups = new Set([child.pid]);
  const collectGroups = () => {
    for (const pid of descendants(child.pid)) {
      const stat = statOf(pid);
      if (stat) groups.add(stat.pgrp);
    }
  };
  const killAll = () => {
    collectGroups();
    for (const pgid of groups) signalGroup(pgid, 'SIGKILL');
  };
  const onExit = () => killAll();
  const onSignal = (signal) => {
    killAll();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const timer =
    maxSeconds === undefined
      ? undefined
      : setTimeout(() => {
          console.error(`${name} ran longer than ${maxSeconds} s; stopping it`);
          killAll();
          process.exit(2);
        }, maxSeconds * 1000);
  timer?.unref();

  let stopped;
  const stop = () => {
    stopped ??= (async () => {
      clearTimeout(timer);
      collectGroups();
      signalGroup(child.pid, 'SIGTERM');
      if (!(await waitForGroupsExit([...groups], STOP_GRACE_MS))) killAll();
      await waitForGroupsExit([...groups], 2_000);
      process.removeListener('exit', onExit);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      log?.end();
      rmSync(registry, { recursive: true, force: true });
    })();
    return stopped;
  };

  const url = `http://${ip}:${port}`;
  for (const deadline = Date.now() + startTimeoutMs; ; ) {
    if (exited) {
      await stop();
      throw new Error(`${name} exited before it served ${url}/health${where}`);
    }
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not answer ${url}/health within ${startTimeoutMs / 1000} s${where}`);
    }
    await sleep(250);
  }
  return { url, pid: child.pid, logPath, stop };
}
