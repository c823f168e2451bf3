#!/usr/bin/env node
// `npm start`: make sure .dev.vars exists, build the browser client, apply migrations/ to the local
// D1, run `wrangler dev`, and stop it completely on Ctrl-C, SIGTERM or SIGHUP.
// Arguments after `--` go to `wrangler dev` (npm start -- --port 9000 --var ACCESS_TOKEN_TTL:2).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stop as stopEsbuild } from 'esbuild';
import { buildClient } from './build-client.mjs';
import { signalGroup, waitForGroupsExit } from './local-server.mjs';
import { generateAdminToken, generateSigningKey } from './signing-key.mjs';

/** wrangler dev's own default; wrangler.toml sets no [dev] port. */
export const DEFAULT_PORT = 8787;
/** Read by src/config.ts, which explains why no deployed Worker can get it from here. */
export const DEV_SERVER_PORT_VAR = 'LATCHKEY_DEV_SERVER_PORT';

/**
 * The arguments for `wrangler dev`: the user's, with the port made explicit and handed to the
 * Worker. Without an explicit port wrangler silently moves to 8788 when 8787 is taken, and the
 * page's origin would no longer be the one the Worker allows; with it, a taken port is an error
 * that says so. Returns the port, or throws on a `--port` without a number.
 */
export function wranglerDevArgs(userArgs) {
  const args = [...userArgs];
  let port;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    if (arg === '--') break;
    let value;
    if (arg === '--port') value = args[i + 1];
    else if (arg.startsWith('--port=')) value = arg.slice('--port='.length);
    else continue;
    if (value === undefined || !/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65_535) {
      throw new Error(`--port needs a port number from 1 to 65535, got ${JSON.stringify(value ?? '')}`);
    }
    port = Number(value);
  }
  if (port === undefined) {
    port = DEFAULT_PORT;
    args.push('--port', String(port));
  }
  args.push('--var', `${DEV_SERVER_PORT_VAR}:${port}`);
  return { args, port };
}

/**
 * The environment of every wrangler command run here. Miniflare fetches
 * https://workers.cloudflare.com/cf.json at each start to fill `request.cf`, and offline it
 * prints a `getaddrinfo ENOTFOUND` stack trace per Worker instance. latchkey never reads
 * `request.cf` (the client address comes from CF-Connecting-IP), so the built-in placeholder
 * miniflare falls back to is all it needs: turning the fetch off loses nothing. A value set by
 * the caller wins.
 */
export function wranglerEnv(base = process.env) {
  return { CLOUDFLARE_CF_FETCH_ENABLED: 'false', ...base, WRANGLER_SEND_METRICS: 'false' };
}

/** Time for wrangler and workerd to stop after the signal before they are killed. */
const STOP_GRACE_MS = 10_000;

async function main() {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const wrangler = join(root, 'node_modules', '.bin', 'wrangler');
  const env = wranglerEnv();
  const devVars = join(root, '.dev.vars');

  let dev;
  try {
    dev = wranglerDevArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`latchkey: ${error.message}`);
    process.exit(2);
  }

  if (!existsSync(devVars)) {
    const keys = JSON.stringify({ keys: [generateSigningKey()] });
    writeFileSync(
      devVars,
      `# Written by npm start for local development only. Never commit it.\nSIGNING_KEYS='${keys}'\nADMIN_TOKEN=${generateAdminToken()}\n`,
      { mode: 0o600 },
    );
    console.log('latchkey: wrote .dev.vars with a fresh Ed25519 signing key and a random ADMIN_TOKEN');
  }

  await buildClient();
  // esbuild keeps a service process for further builds; there are none.
  stopEsbuild();

  const schema = spawnSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local'], {
    cwd: root,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (schema.status !== 0) {
    console.error('latchkey: applying migrations/ to the local D1 failed');
    process.exit(schema.status ?? 1);
  }

  // wrangler runs workerd as its own child, and does not always take it down when it is signalled
  // itself; so wrangler gets a process group of its own, and every stop signals the whole group.
  // A background group must not read the terminal (the kernel would stop it), so wrangler's
  // stdin is closed: its keyboard shortcuts are off, and Ctrl-C reaches it through here.
  const child = spawn(wrangler, ['dev', ...dev.args], {
    cwd: root,
    env,
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const pgid = child.pid;

  let stopping = false;
  const stop = async (signal) => {
    if (stopping) {
      // A second Ctrl-C: stop waiting.
      signalGroup(pgid, 'SIGKILL');
      return;
    }
    stopping = true;
    signalGroup(pgid, signal);
    if (!(await waitForGroupsExit([pgid], STOP_GRACE_MS))) {
      console.error(`latchkey: wrangler did not stop within ${STOP_GRACE_MS / 1000} s of ${signal}; killing it`);
      signalGroup(pgid, 'SIGKILL');
      await waitForGroupsExit([pgid], 2_000);
    }
    process.exit(0);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => void stop(signal));

  // npm runs this script through `sh -c`. Debian's sh (dash) does not exec the command, and when
  // npm passes a SIGTERM on, the shell dies of it without passing it further: this process is
  // left behind, reparented. Losing the parent therefore counts as being told to stop.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) void stop('SIGTERM');
  }, 500).unref();

  child.on('exit', (code, signal) => {
    if (stopping) return;
    // wrangler ended by itself (an error): whatever it left running goes with it.
    signalGroup(pgid, 'SIGTERM');
    process.exit(code ?? (signal ? 1 : 0));
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
}
