/**
 * examples/cli-client on disk: the private key in an owner-only file, refused when others can
 * read it, and proofs from it that latchkey's check accepts for the key the session is bound to.
 * Then the client itself, command by command, against latchkey under `npm start`.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  forgetKey,
  loadOrCreateKey,
  loadSession,
  makeProof,
  openDirectory,
  saveSession,
  serverOffsetOf,
  // @ts-expect-error: a plain ES module without types, run by Node as it is.
} from '../../examples/cli-client/session-files.mjs';
import { verifyDpopProof } from '../../packages/verify/src/dpop/proof';
// @ts-expect-error: a plain ES module without types, shared with the browser tests.
import { PORTS, startLatchkey } from '../support/browser-harness.mjs';

const CLI = fileURLToPath(new URL('../../examples/cli-client/cli.mjs', import.meta.url));
const run = promisify(execFile);

let dir: string;

beforeEach(() => {
  dir = openDirectory(join(mkdtempSync(join(tmpdir(), 'latchkey-cli-')), 'state'));
});

afterEach(() => {
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe('the command-line client', () => {
  it('keeps its key in a 0600 file in a 0700 directory, and reads the same key back', async () => {
    const made = await loadOrCreateKey(dir);
    expect(modeOf(dir)).toBe(0o700);
    expect(modeOf(made.path)).toBe(0o600);
    expect((await loadOrCreateKey(dir)).jkt).toBe(made.jkt);
    forgetKey(dir);
    expect((await loadOrCreateKey(dir)).jkt).not.toBe(made.jkt);
  });

  it('refuses a key or session file that others can read', async () => {
    const { path } = await loadOrCreateKey(dir);
    chmodSync(path, 0o644);
    await expect(loadOrCreateKey(dir)).rejects.toThrow(/readable by others/);
    saveSession(dir, { access_token: 'x' });
    expect(modeOf(join(dir, 'session.json'))).toBe(0o600);
    chmodSync(join(dir, 'session.json'), 0o640);
    expect(() => loadSession(dir)).toThrow(/readable by others/);
  });

  it("signs proofs latchkey accepts for its key, dated by the server's clock", async () => {
    const key = await loadOrCreateKey(dir);
    const url = 'https://auth.example.test/auth/renew';
    const serverOffsetMs = 2 * 3_600_000;
    const proof = await makeProof(key, { method: 'POST', url, accessToken: 'the.token', serverOffsetMs });
    const nowMs = Date.now() + serverOffsetMs;
    expect(await verifyDpopProof(proof, { method: 'POST', url, nowMs, accessToken: 'the.token', jkt: key.jkt })).toMatchObject({
      ok: true,
      jkt: key.jkt,
    });
    expect(await verifyDpopProof(proof, { method: 'POST', url, nowMs: Date.now(), accessToken: 'the.token' })).toEqual({
      ok: false,
      reason: 'iat',
    });
    const offset = serverOffsetOf(new Response(null, { headers: { date: new Date(nowMs).toUTCString() } }));
    expect(Math.abs(offset - serverOffsetMs)).toBeLessThan(2_000);
  });
});

describe('the command-line client against npm start', () => {
  let server: { url: string; stop: () => Promise<void> } | undefined;

  beforeAll(async () => {
    // Its own ports (the browser tests' port + 4, inspector + 1), so it never meets their server.
    // Tokens live a minute: each command is a Node start-up, and on a loaded machine a few of them
    // in a row could outlast a short lifetime (the client renews only when told to).
    server = await startLatchkey({ port: PORTS.cli, inspectorPort: PORTS.cliInspector, ttlSeconds: 60, logName: 'latchkey-cli.log' });
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
  }, 30_000);

  it('logs in bound to its key file (token_type DPoP), reads /api/me, renews and logs out', async () => {
    if (server === undefined) throw new Error('npm start did not come up');
    const base = server.url;
    const email = `cli-${Date.now().toString(36)}@example.com`;
    const password = 'correct horse battery staple';
    const registered = await fetch(`${base}/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
    });
    expect(registered.status).toBe(201);
    const cli = async (...args: string[]) =>
      (await run(process.execPath, [CLI, ...args, '--base', base, '--dir', dir], { env: { ...process.env, LATCHKEY_PASSWORD: password } }))
        .stdout;

    const loggedIn = await cli('login', '--email', email);
    const key = await loadOrCreateKey(dir);
    expect(loggedIn).toContain(`bound to key ${key.jkt}`);
    expect([modeOf(dir), modeOf(key.path), modeOf(join(dir, 'session.json'))]).toEqual([0o700, 0o600, 0o600]);
    const session = loadSession(dir);
    expect(session.token_type).toBe('DPoP');
    expect(decodeJwt(session.access_token).cnf).toEqual({ jkt: key.jkt });
    // The token alone, without a proof of the key in the file, is refused.
    const bare = await fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${session.access_token}` } });
    expect([bare.status, ((await bare.json()) as { code: string }).code]).toEqual([401, 'invalid_dpop_proof']);

    expect(JSON.parse(await cli('me'))).toMatchObject({ user_id: decodeJwt(session.access_token).sub, session_id: session.session_id });

    expect(await cli('renew')).toContain(`renewed: session ${session.session_id}`);
    const renewed = loadSession(dir);
    expect(renewed.access_token).not.toBe(session.access_token);
    expect(renewed.token_type).toBe('DPoP');
    expect(decodeJwt(renewed.access_token)).toMatchObject({ sid: session.session_id, cnf: { jkt: key.jkt } });
    expect(modeOf(join(dir, 'session.json'))).toBe(0o600);
    expect(JSON.parse(await cli('me')).session_id).toBe(session.session_id);

    expect(await cli('logout')).toContain('signed out');
    expect([existsSync(key.path), existsSync(join(dir, 'session.json'))]).toEqual([false, false]);
    // The session is over at latchkey, not only on disk: the last token with a fresh proof of the
    // (now deleted) key is refused by a strict route.
    const url = `${base}/api/account`;
    const after = await fetch(url, {
      headers: {
        authorization: `DPoP ${renewed.access_token}`,
        dpop: await makeProof(key, { method: 'GET', url, accessToken: renewed.access_token }),
      },
    });
    expect([after.status, ((await after.json()) as { code: string }).code]).toEqual([401, 'session_revoked']);
    await expect(cli('me')).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('not signed in') });
  }, 60_000);
});
