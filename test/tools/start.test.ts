/**
 * `npm start` as a person runs it: on a port of their choice, the demo's cookie sign-in works
 * without configuring ALLOWED_ORIGINS, the start is quiet offline, and SIGTERM stops everything.
 * Ports: LATCHKEY_START_TEST_PORT and LATCHKEY_START_TEST_INSPECTOR_PORT (default 8806, 9306).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module without types.
import { wranglerDevArgs, wranglerEnv } from '../../scripts/start.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PORT = Number(process.env.LATCHKEY_START_TEST_PORT ?? 8806);
const INSPECTOR_PORT = Number(process.env.LATCHKEY_START_TEST_INSPECTOR_PORT ?? 9306);
const BASE = `http://127.0.0.1:${PORT}`;
const PASSWORD = 'correct horse battery staple';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Proc {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
  command: string;
}

function processes(): Proc[] {
  return execFileSync('ps', ['-eo', 'pid=,ppid=,pgid=,stat=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line))
    .filter((match) => match !== null)
    .map(([, pid, ppid, pgid, state, command]) => ({
      pid: Number(pid),
      ppid: Number(ppid),
      pgid: Number(pgid),
      state: state as string,
      command: command as string,
    }));
}

/** `root` and everything it started, transitively. */
function tree(root: number): Proc[] {
  const all = processes();
  const found = all.filter((proc) => proc.pid === root);
  for (let i = 0; i < found.length; i += 1) {
    found.push(...all.filter((proc) => proc.ppid === (found[i] as Proc).pid));
  }
  return found;
}

/**
 * Processes still running among `pids`, or in one of `pgids`. Zombies are dead: where PID 1 does
 * not reap orphans (some containers), an exited process stays listed as one.
 */
function survivors(pids: Set<number>, pgids: Set<number>): Proc[] {
  return processes().filter((proc) => !proc.state.startsWith('Z') && (pids.has(proc.pid) || pgids.has(proc.pgid)));
}

describe('wranglerDevArgs', () => {
  it('makes the default port explicit, so wrangler cannot silently move to another one', () => {
    expect(wranglerDevArgs([])).toEqual({
      port: 8787,
      args: ['--port', '8787', '--var', 'LATCHKEY_DEV_SERVER_PORT:8787'],
    });
  });

  it('hands the port given in either form to the Worker, after the arguments given', () => {
    expect(wranglerDevArgs(['--port', '8790', '--var', 'ACCESS_TOKEN_TTL:2'])).toEqual({
      port: 8790,
      args: ['--port', '8790', '--var', 'ACCESS_TOKEN_TTL:2', '--var', 'LATCHKEY_DEV_SERVER_PORT:8790'],
    });
    expect(wranglerDevArgs(['--port=9000']).port).toBe(9000);
  });

  it('refuses a --port without a port number', () => {
    expect(() => wranglerDevArgs(['--port'])).toThrow(/--port needs a port number/);
    expect(() => wranglerDevArgs(['--port', '--ip'])).toThrow(/--port needs a port number/);
    expect(() => wranglerDevArgs(['--port=70000'])).toThrow(/--port needs a port number/);
  });

  it("turns off the Request.cf download, unless the caller's environment says otherwise", () => {
    expect(wranglerEnv({}).CLOUDFLARE_CF_FETCH_ENABLED).toBe('false');
    expect(wranglerEnv({ CLOUDFLARE_CF_FETCH_ENABLED: 'true' }).CLOUDFLARE_CF_FETCH_ENABLED).toBe('true');
  });
});

describe(`npm start -- --port ${PORT}`, () => {
  let npm: ChildProcess;
  let output = '';
  let exited = false;
  let started: Proc[] = [];

  beforeAll(async () => {
    // As in a person's shell: vitest's NODE_ENV=test alone makes miniflare skip the Request.cf download.
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.CLOUDFLARE_CF_FETCH_ENABLED;
    delete env.NODE_ENV;
    // Its own process group, so that whatever happens the test can end all of it (afterAll).
    npm = spawn('npm', ['start', '--', '--port', String(PORT), '--inspector-port', String(INSPECTOR_PORT)], {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    npm.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    npm.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    npm.on('exit', () => {
      exited = true;
    });
    for (const deadline = Date.now() + 150_000; Date.now() < deadline; await sleep(250)) {
      if (exited) throw new Error(`npm start exited before serving:\n${output}`);
      try {
        if ((await fetch(`${BASE}/health`, { signal: AbortSignal.timeout(5_000) })).ok) break;
      } catch {
        // Not listening yet.
      }
    }
    started = tree(npm.pid as number);
  }, 180_000);

  afterAll(() => {
    const pids = new Set(started.map((proc) => proc.pid));
    const pgids = new Set(started.map((proc) => proc.pgid));
    for (const proc of survivors(pids, pgids)) {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
  });

  it.each(['localhost', '127.0.0.1'])(
    'lets the demo page at http://%s:PORT sign in with a cookie, without configuring ALLOWED_ORIGINS',
    async (host) => {
      const origin = `http://${host}:${PORT}`;
      const email = `start-${host}-${Date.now()}@example.com`;
      const registered = await fetch(`${BASE}/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin },
        body: JSON.stringify({ email, password: PASSWORD }),
      });
      expect(registered.status).toBe(201);
      const login = await fetch(`${BASE}/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin },
        body: JSON.stringify({ email, password: PASSWORD, mode: 'cookie', client: 'demo' }),
      });
      expect(login.status, await login.clone().text()).toBe(200);
      expect(login.headers.getSetCookie()).toHaveLength(1);
      expect(login.headers.get('access-control-allow-origin')).toBe(origin);
    },
  );

  it('starts without fetching Request.cf, so an offline start prints no DNS stack traces', () => {
    expect(output).toContain('Ready on');
    expect(output).not.toMatch(/Unable to fetch the `Request.cf` object|ENOTFOUND/);
  });

  it('stops wrangler, workerd and itself when npm is sent SIGTERM', async () => {
    expect(started.some((proc) => proc.command.includes('workerd'))).toBe(true);
    const pids = new Set(started.map((proc) => proc.pid));
    const pgids = new Set(started.map((proc) => proc.pgid));
    process.kill(npm.pid as number, 'SIGTERM');
    let left = survivors(pids, pgids);
    for (const deadline = Date.now() + 20_000; left.length > 0 && Date.now() < deadline; await sleep(200)) {
      left = survivors(pids, pgids);
    }
    expect(left.map((proc) => `${proc.pid} ${proc.command}`)).toEqual([]);
  }, 30_000);
});
