/** `npm run keys`: the rotation steps as pure functions, and the command on a real file. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseSigningKeys } from '../../src/tokens/keys';
import {
  addKey,
  describeKeys,
  KeysCommandError,
  PUBLISH_BEFORE_SIGNING_MS,
  promoteKey,
  readKeySet,
  readPolicy,
  retireKey,
  writeKeySet,
  // @ts-expect-error: a plain ES module without types.
} from '../../scripts/keys.mjs';
// @ts-expect-error: as above.
import { generateSigningKey } from '../../scripts/signing-key.mjs';

interface Key {
  kid: string;
  d: string;
  added_at?: string;
  demoted_at?: string;
}
interface KeySet {
  keys: Key[];
}

const T0 = Date.UTC(2026, 0, 1);
const MINUTE = 60_000;
const POLICY = { accessTokenTtlSeconds: 300, renewWindowSeconds: 1_209_600 };
const SAFE_WAIT_MS = (300 + 1_209_600) * 1000;

function oneKey(): KeySet {
  return { keys: [generateSigningKey()] };
}

/** A set mid-rotation: `next` added at T0, promoted at T0 + 10 min; `old` signed until then. */
function promotedAtTenMinutes(): { set: KeySet; old: string; next: string } {
  const added: KeySet = addKey(oneKey(), T0);
  const [old, next] = added.keys.map((key) => key.kid) as [string, string];
  return { set: promoteKey(added, undefined, T0 + PUBLISH_BEFORE_SIGNING_MS), old, next };
}

describe('add', () => {
  it('appends a fresh Ed25519 key after the signer, marked with when it was added', () => {
    const before = oneKey();
    const after: KeySet = addKey(before, T0);
    expect(after.keys[0]).toEqual(before.keys[0]);
    expect(after.keys[1]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', added_at: new Date(T0).toISOString() });
    expect(after.keys[1]?.kid).not.toBe(before.keys[0]?.kid);
  });

  it('leaves a set latchkey accepts, whose JWKS carries neither d nor the rotation dates', () => {
    const set: KeySet = promotedAtTenMinutes().set;
    const parsed = parseSigningKeys(JSON.stringify(set));
    expect(parsed.map((key) => key.kid)).toEqual(set.keys.map((key) => key.kid));
    for (const { publicJwk } of parsed) expect(Object.keys(publicJwk).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
  });
});

describe('promote', () => {
  it('makes the newest key the signer and keeps the old signer as a verifier, marked with when it stopped', () => {
    const added: KeySet = addKey(oneKey(), T0);
    const [old, next] = added.keys.map((key) => key.kid);
    const promoted: KeySet = promoteKey(added, undefined, T0 + PUBLISH_BEFORE_SIGNING_MS);
    expect(promoted.keys.map((key) => key.kid)).toEqual([next, old]);
    expect(promoted.keys[1]?.demoted_at).toBe(new Date(T0 + PUBLISH_BEFORE_SIGNING_MS).toISOString());
  });

  it('refuses a key published less than ten minutes ago, unless forced', () => {
    const added: KeySet = addKey(oneKey(), T0);
    const early = T0 + PUBLISH_BEFORE_SIGNING_MS - 1;
    expect(() => promoteKey(added, undefined, early)).toThrow(/verifiers may not have fetched it yet/);
    expect(promoteKey(added, undefined, early, { force: true }).keys[0].kid).toBe(added.keys[1]?.kid);
  });

  it('promotes a key named by kid, and refuses the signer, an unknown kid and a lone key', () => {
    const set: KeySet = addKey(addKey(oneKey(), T0), T0);
    const middle = set.keys[1]?.kid as string;
    expect(promoteKey(set, middle, T0 + 11 * MINUTE).keys[0].kid).toBe(middle);
    expect(() => promoteKey(set, set.keys[0]?.kid, T0 + 11 * MINUTE)).toThrow(/already signs/);
    expect(() => promoteKey(set, 'nope', T0 + 11 * MINUTE)).toThrow(/no key with kid nope/);
    expect(() => promoteKey(oneKey(), undefined, T0)).toThrow(/run `add` first/);
  });
});

describe('retire', () => {
  it('never removes the signer, forced or not', () => {
    const { set, next } = promotedAtTenMinutes();
    expect(() => retireKey(set, next, T0 + 10 * SAFE_WAIT_MS, POLICY, { force: true })).toThrow(/is the signer/);
  });

  it('refuses until ACCESS_TOKEN_TTL + RENEW_WINDOW after the key stopped signing, then removes it', () => {
    const { set, old, next } = promotedAtTenMinutes();
    const stoppedAt = T0 + PUBLISH_BEFORE_SIGNING_MS;
    expect(() => retireKey(set, old, stoppedAt + SAFE_WAIT_MS - 1, POLICY)).toThrow(KeysCommandError);
    expect(() => retireKey(set, old, stoppedAt + SAFE_WAIT_MS - 1, POLICY)).toThrow(/signs out every session idle/);
    expect(retireKey(set, old, stoppedAt + SAFE_WAIT_MS, POLICY).keys.map((key: Key) => key.kid)).toEqual([next]);
  });

  it('removes at once, when forced (a compromised key)', () => {
    const { set, old } = promotedAtTenMinutes();
    expect(retireKey(set, old, T0 + PUBLISH_BEFORE_SIGNING_MS, POLICY, { force: true }).keys).toHaveLength(1);
  });

  it('removes a next key that never signed at once', () => {
    const added: KeySet = addKey(oneKey(), T0);
    expect(retireKey(added, added.keys[1]?.kid, T0, POLICY).keys).toEqual([added.keys[0]]);
  });

  it('refuses a key whose last signing is unknown, unless forced', () => {
    const set: KeySet = { keys: [generateSigningKey(), generateSigningKey()] };
    expect(() => retireKey(set, set.keys[1]?.kid, T0, POLICY)).toThrow(/no demoted_at/);
    expect(retireKey(set, set.keys[1]?.kid, T0, POLICY, { force: true }).keys).toHaveLength(1);
  });
});

describe('the file and the policy', () => {
  it("reads ACCESS_TOKEN_TTL and RENEW_WINDOW from wrangler.toml's [vars], with API.md's defaults", () => {
    expect(readPolicy('[vars]\nACCESS_TOKEN_TTL = "120"\nRENEW_WINDOW = "3600"\n')).toEqual({
      accessTokenTtlSeconds: 120,
      renewWindowSeconds: 3600,
    });
    expect(readPolicy('')).toEqual(POLICY);
  });

  it('replaces the SIGNING_KEYS line and leaves every other line alone', () => {
    const set = oneKey();
    const text = `# local\nSIGNING_KEYS='${JSON.stringify(set)}'\nADMIN_TOKEN=abc\n`;
    const next: KeySet = addKey(readKeySet(text), T0);
    const written = writeKeySet(text, next);
    expect(written.split('\n')[0]).toBe('# local');
    expect(written.split('\n')[2]).toBe('ADMIN_TOKEN=abc');
    expect(readKeySet(written)).toEqual(next);
  });

  it('reads double-quoted and bare values, and appends the line to a file without one', () => {
    const set = oneKey();
    expect(readKeySet(`SIGNING_KEYS=${JSON.stringify(JSON.stringify(set))}`)).toEqual(set);
    expect(readKeySet(`SIGNING_KEYS=${JSON.stringify(set)}`)).toEqual(set);
    expect(readKeySet(writeKeySet('ADMIN_TOKEN=abc', set))).toEqual(set);
    expect(readKeySet('ADMIN_TOKEN=abc')).toEqual({ keys: [] });
  });

  it('lists each key with its role', () => {
    const added: KeySet = addKey(oneKey(), T0);
    expect(describeKeys(added, POLICY)).toEqual([
      `  ${added.keys[0]?.kid}  signs`,
      `  ${added.keys[1]?.kid}  next: published, not signing (added 2026-01-01T00:00:00.000Z)`,
    ]);
    const { set, old } = promotedAtTenMinutes();
    expect(describeKeys(set, POLICY)[1]).toBe(
      `  ${old}  verifies only (stopped signing 2026-01-01T00:10:00.000Z; retire after 2026-01-15T00:15:00.000Z)`,
    );
  });
});

describe('npm run keys, on a file', () => {
  const run = promisify(execFile);
  let dir: string;
  let file: string;
  const keys = (...args: string[]) => run(process.execPath, ['scripts/keys.mjs', ...args, '--file', file]);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-keys-'));
    file = join(dir, '.dev.vars');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('adds, promotes and retires, keeping the file private and printing the production step', async () => {
    const first = generateSigningKey() as Key;
    writeFileSync(file, `SIGNING_KEYS='${JSON.stringify({ keys: [first] })}'\nADMIN_TOKEN=${'a'.repeat(40)}\n`, { mode: 0o644 });
    const added = await keys('add');
    expect(added.stdout).toContain(`node scripts/keys.mjs export --file ${file} | npx wrangler secret put SIGNING_KEYS`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toContain(`ADMIN_TOKEN=${'a'.repeat(40)}`);

    await expect(keys('promote')).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('verifiers may not') });
    await keys('promote', '--force');
    await expect(keys('retire', (readKeySet(readFileSync(file, 'utf8')) as KeySet).keys[0]?.kid as string)).rejects.toMatchObject({
      stderr: expect.stringContaining('is the signer'),
    });
    await expect(keys('retire', first.kid)).rejects.toMatchObject({ stderr: expect.stringContaining('signs out every session idle') });
    await keys('retire', first.kid, '--force');

    const exported = (await keys('export')).stdout;
    const set = JSON.parse(exported) as KeySet;
    expect(set.keys).toHaveLength(1);
    expect(set.keys[0]?.kid).not.toBe(first.kid);
    expect(parseSigningKeys(exported)).toHaveLength(1);
  });

  it('takes a kid that starts with a dash as a kid, not an option (thumbprints are base64url)', async () => {
    const signer = { ...(generateSigningKey() as Key), kid: '-signer' };
    const old = { ...(generateSigningKey() as Key), kid: '-mOld' };
    writeFileSync(file, `SIGNING_KEYS='${JSON.stringify({ keys: [signer, old] })}'\n`);
    await expect(keys('retire', '-signer')).rejects.toMatchObject({ stderr: expect.stringContaining('is the signer') });
    await keys('retire', '-mOld', '--force');
    expect((JSON.parse((await keys('export')).stdout) as KeySet).keys.map((key) => key.kid)).toEqual(['-signer']);
  });

  it('creates the file on add when it does not exist, and the first key signs', async () => {
    await keys('add');
    const { stdout } = await keys('list');
    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(stdout).toMatch(/ signs$/m);
  });

  it('refuses other commands on a missing file', async () => {
    await expect(keys('list')).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('does not exist') });
  });
});
