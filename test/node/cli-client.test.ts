/**
 * examples/cli-client on disk: the private key in an owner-only file, refused when others can
 * read it, and proofs from it that latchkey's check accepts for the key the session is bound to.
 */
import { mkdtempSync, rmSync, statSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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
import { verifyDpopProof } from '../../src/dpop/proof';

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
