#!/usr/bin/env node
// A command-line client of latchkey whose session is bound to a key it keeps in a file (DPoP,
// RFC 9449): a copy of its token (in a shell history, a log, a backup) is useless without that key.
//
//   node examples/cli-client/cli.mjs login --email ada@example.com   # password: LATCHKEY_PASSWORD or stdin
//   node examples/cli-client/cli.mjs me
//   node examples/cli-client/cli.mjs renew
//   node examples/cli-client/cli.mjs logout
//
// Options: --base URL (default $LATCHKEY_URL or http://localhost:8787), --dir DIR (default
// ~/.config/latchkey-cli). The key (dpop-key.jwk) and the session (session.json) are written there
// with mode 0600. See examples/cli-client/README.md.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import {
  forgetKey,
  forgetSession,
  loadOrCreateKey,
  loadSession,
  makeProof,
  openDirectory,
  saveSession,
  serverOffsetOf,
} from './session-files.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    base: { type: 'string', default: process.env.LATCHKEY_URL ?? 'http://localhost:8787' },
    dir: { type: 'string', default: join(homedir(), '.config', 'latchkey-cli') },
    email: { type: 'string' },
    client: { type: 'string', default: 'latchkey CLI' },
  },
});
const base = values.base.replace(/\/+$/, '');
const dir = openDirectory(values.dir);

async function readPassword() {
  if (process.env.LATCHKEY_PASSWORD) return process.env.LATCHKEY_PASSWORD;
  const lines = createInterface({ input: process.stdin, output: process.stderr, terminal: false });
  if (process.stdin.isTTY) process.stderr.write('password: ');
  for await (const line of lines) {
    lines.close();
    return line;
  }
  throw new Error('no password on stdin');
}

/**
 * Sends a request with the session's credential and a fresh proof. If latchkey refuses the proof
 * and its answer's Date shows this machine's clock is off, the proof is dated by the server's
 * clock and sent once more; the offset is kept for next time.
 */
async function send(method, path, { session, key, body } = {}) {
  const url = `${base}${path}`;
  let offsetMs = session?.server_offset_ms ?? 0;
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers();
    if (body !== undefined) headers.set('content-type', 'application/json');
    const token = session?.access_token;
    const bound = session ? session.token_type === 'DPoP' : true;
    if (token !== undefined) headers.set('authorization', `${session.token_type} ${token}`);
    if (bound) headers.set('dpop', await makeProof(key, { method, url, accessToken: token, serverOffsetMs: offsetMs }));
    const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const observed = serverOffsetOf(response);
    const clockWasOff = observed !== undefined && Math.abs(observed - offsetMs) > 5_000;
    if (observed !== undefined) offsetMs = observed;
    if (attempt === 0 && clockWasOff && response.status >= 400 && (await problemCode(response)) === 'invalid_dpop_proof') continue;
    return { response, offsetMs };
  }
}

async function problemCode(response) {
  try {
    return (await response.clone().json()).code;
  } catch {
    return undefined;
  }
}

async function fail(response) {
  const text = await response.text();
  throw new Error(`${response.status}: ${text}`);
}

function requireSession() {
  const session = loadSession(dir);
  if (!session) throw new Error('not signed in: run login first');
  return session;
}

function remember(tokenBody, offsetMs) {
  const session = {
    base,
    access_token: tokenBody.access_token,
    token_type: tokenBody.token_type,
    session_id: tokenBody.session_id,
    expires_at: new Date(Date.now() + tokenBody.expires_in * 1000).toISOString(),
    server_offset_ms: offsetMs,
  };
  saveSession(dir, session);
  return session;
}

const commands = {
  async login() {
    if (!values.email) throw new Error('login needs --email');
    const key = await loadOrCreateKey(dir);
    const { response, offsetMs } = await send('POST', '/auth/login', {
      key,
      body: { email: values.email, password: await readPassword(), client: values.client },
    });
    if (!response.ok) await fail(response);
    const session = remember(await response.json(), offsetMs);
    const binding = session.token_type === 'DPoP' ? `bound to key ${key.jkt}` : 'not bound (latchkey answered Bearer)';
    console.log(`signed in: session ${session.session_id}, ${binding}`);
  },
  async me() {
    const session = requireSession();
    const { response } = await send('GET', '/api/me', { session, key: await loadOrCreateKey(dir) });
    if (!response.ok) await fail(response);
    console.log(JSON.stringify(await response.json(), null, 2));
  },
  async renew() {
    const session = requireSession();
    const { response, offsetMs } = await send('POST', '/auth/renew', { session, key: await loadOrCreateKey(dir) });
    if (!response.ok) await fail(response);
    const renewed = remember(await response.json(), offsetMs);
    console.log(`renewed: session ${renewed.session_id}, token valid until ${renewed.expires_at}`);
  },
  async logout() {
    const session = loadSession(dir);
    try {
      if (session) {
        const { response } = await send('POST', '/auth/logout', { session, key: await loadOrCreateKey(dir) });
        if (!response.ok && response.status !== 401) await fail(response);
      }
    } finally {
      forgetSession(dir);
      forgetKey(dir);
    }
    console.log('signed out; the key is deleted');
  },
};

const command = commands[positionals[0]];
if (!command) {
  console.error('usage: cli.mjs <login|me|renew|logout> [--base URL] [--dir DIR] [--email EMAIL]');
  process.exit(2);
}
try {
  await command();
} catch (error) {
  console.error(`latchkey: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
