/** `npm run deploy`: what it refuses before uploading anything, and the order of its steps. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module without types.
import { checkProduction, deploy, PLACEHOLDER_DATABASE_ID, schemaCommand } from '../../scripts/deploy.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DATABASE_ID = '3f6a1c2e-8b1d-4c55-9e0a-2d7b6f1e9a10';

interface ProductionConfig {
  d1_databases?: { binding: string; database_name?: string; database_id?: string }[];
  ratelimits?: { name: string }[];
  vars?: Record<string, string>;
}

const RATE_LIMITS = [{ name: 'ADDRESS_RATE_LIMITER' }];

function production(overrides: { databaseId?: string; vars?: Record<string, string> } = {}): ProductionConfig {
  return {
    d1_databases: [{ binding: 'DB', database_name: 'latchkey', database_id: overrides.databaseId ?? DATABASE_ID }],
    ratelimits: RATE_LIMITS,
    vars: { ISSUER: 'https://auth.acme.dev', ALLOWED_ORIGINS: 'https://app.acme.dev', ...overrides.vars },
  };
}

describe('checkProduction', () => {
  it('accepts a real database id and a public https ISSUER', () => {
    expect(checkProduction(production())).toEqual({ problems: [], warnings: [] });
    expect(checkProduction(production({ vars: { ADDRESS_RATE_LIMIT: 'on', HASH_BUDGET: 'on' } })).problems).toEqual([]);
  });

  it.each([
    ['the placeholder database_id', production({ databaseId: PLACEHOLDER_DATABASE_ID }), /placeholder database_id.*wrangler d1 create latchkey/],
    ['a database_id that is no id', production({ databaseId: 'latchkey' }), /placeholder database_id/],
    ['no D1 binding', { ratelimits: RATE_LIMITS, vars: production().vars }, /no D1 binding "DB"/],
    ['no rate-limit binding', { ...production(), ratelimits: [] }, /no ADDRESS_RATE_LIMITER binding/],
    ['the address limit off', production({ vars: { ADDRESS_RATE_LIMIT: 'off' } }), /ADDRESS_RATE_LIMIT to "off": it is a test-only switch/],
    ['the hash budget off', production({ vars: { HASH_BUDGET: 'off' } }), /HASH_BUDGET to "off"/],
    ['a localhost ISSUER', production({ vars: { ISSUER: 'http://localhost:8787' } }), /ISSUER is "http:\/\/localhost:8787", a local address/],
    ['a loopback ISSUER', production({ vars: { ISSUER: 'https://127.0.0.1' } }), /a local address/],
    ['an IPv6 loopback ISSUER', production({ vars: { ISSUER: 'https://[::1]:8787' } }), /a local address/],
    ['a plain http ISSUER', production({ vars: { ISSUER: 'http://auth.acme.dev' } }), /is not https/],
    ['the example ISSUER', production({ vars: { ISSUER: 'https://auth.example.com' } }), /still the example/],
    ['no ISSUER', { ...production(), vars: {} }, /has no ISSUER/],
    ['an ISSUER that is no URL', production({ vars: { ISSUER: 'auth.acme.dev' } }), /is not a URL/],
    ['the dev-server variable', production({ vars: { LATCHKEY_DEV_SERVER_PORT: '8787' } }), /LATCHKEY_DEV_SERVER_PORT, which only npm start may set/],
  ])('refuses %s', (_name, config, message) => {
    const { problems } = checkProduction(config);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
  });

  it('warns about, but allows, local and example origins in ALLOWED_ORIGINS', () => {
    const { problems, warnings } = checkProduction(
      production({ vars: { ALLOWED_ORIGINS: 'https://app.acme.dev, http://localhost:3000, https://app.example.com' } }),
    );
    expect(problems).toEqual([]);
    expect(warnings).toEqual([expect.stringMatching(/localhost:3000/), expect.stringMatching(/example https:\/\/app\.example\.com/)]);
  });
});

describe('deploy', () => {
  function recorder(secretNames = ['SIGNING_KEYS', 'ADMIN_TOKEN']) {
    const calls: string[][] = [];
    const run = (args: string[]) => {
      calls.push(args);
      if (args[0] === 'secret') {
        return { status: 0, stdout: JSON.stringify(secretNames.map((name) => ({ name, type: 'secret_text' }))), stderr: '' };
      }
      return { status: 0, stdout: '', stderr: '' };
    };
    const messages: string[] = [];
    return { calls, run, messages, log: (line: string) => messages.push(line), error: (line: string) => messages.push(line) };
  }

  it('refuses before running wrangler at all', async () => {
    const fake = recorder();
    const status = await deploy({ configPath: 'wrangler.toml', readConfig: async () => production({ databaseId: PLACEHOLDER_DATABASE_ID }), ...fake });
    expect(status).toBe(1);
    expect(fake.calls).toEqual([]);
    expect(fake.messages.join('\n')).toMatch(/Nothing was uploaded/);
  });

  it('checks the secret, applies the schema, then deploys, all with --env production', async () => {
    const fake = recorder();
    const status = await deploy({ configPath: '/x/wrangler.toml', readConfig: async () => production(), ...fake });
    expect(status).toBe(0);
    const target = ['--env', 'production', '--config', '/x/wrangler.toml'];
    expect(fake.calls).toEqual([['secret', 'list', ...target], schemaCommand(target), ['deploy', ...target]]);
  });

  it('stops before the schema and the upload when SIGNING_KEYS is not set', async () => {
    const fake = recorder(['ADMIN_TOKEN']);
    const status = await deploy({ readConfig: async () => production(), ...fake });
    expect(status).toBe(1);
    expect(fake.calls.map((args) => args[0])).toEqual(['secret']);
    expect(fake.messages.join('\n')).toMatch(/no SIGNING_KEYS secret.*wrangler secret put SIGNING_KEYS --env production/);
  });

  it('does not deploy when the schema step fails', async () => {
    const fake = recorder();
    const run = (args: string[]) => (args[0] === 'd1' ? { status: 7, stdout: '', stderr: '' } : fake.run(args));
    const status = await deploy({ readConfig: async () => production(), ...fake, run });
    expect(status).toBe(7);
    expect(fake.calls.map((args) => args[0])).toEqual(['secret']);
  });
});

describe('npm run deploy on a configuration file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-deploy-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function runScript(args: string[]) {
    try {
      const { stdout, stderr } = await promisify(execFile)('node', [join(ROOT, 'scripts/deploy.mjs'), ...args], { cwd: ROOT });
      return { code: 0, output: stdout + stderr };
    } catch (failure) {
      const { code, stdout, stderr } = failure as { code: number; stdout: string; stderr: string };
      return { code, output: stdout + stderr };
    }
  }

  it("refuses the repository's own wrangler.toml as shipped, naming both placeholders", async () => {
    const { code, output } = await runScript([]);
    expect(code).toBe(1);
    expect(output).toMatch(/placeholder database_id "00000000-0000-0000-0000-000000000000"/);
    expect(output).toMatch(/ISSUER is still the example "https:\/\/auth\.example\.com"/);
    expect(output).toMatch(/Nothing was uploaded/);
  }, 30_000);

  it('refuses a localhost ISSUER read through wrangler, production section and all', async () => {
    const config = join(dir, 'wrangler.toml');
    writeFileSync(
      config,
      [
        'name = "latchkey"',
        'main = "src/index.ts"',
        'compatibility_date = "2026-04-20"',
        '[vars]',
        'ISSUER = "https://auth.acme.dev"',
        '[env.production]',
        '[[env.production.ratelimits]]',
        'name = "ADDRESS_RATE_LIMITER"',
        'namespace_id = "1001"',
        'simple = { limit = 30, period = 60 }',
        '[[env.production.d1_databases]]',
        'binding = "DB"',
        'database_name = "latchkey"',
        `database_id = "${DATABASE_ID}"`,
        '[env.production.vars]',
        'ISSUER = "http://localhost:8787"',
        '',
      ].join('\n'),
    );
    const { code, output } = await runScript(['--config', config]);
    expect(code).toBe(1);
    expect(output).toMatch(/ISSUER is "http:\/\/localhost:8787", a local address/);
    expect(output).not.toMatch(/database_id/);
  }, 30_000);

  it('refuses a configuration without the production section', async () => {
    const config = join(dir, 'wrangler.toml');
    writeFileSync(config, 'name = "latchkey"\nmain = "src/index.ts"\ncompatibility_date = "2026-04-20"\n');
    const { code, output } = await runScript(['--config', config]);
    expect(code).toBe(1);
    expect(output).toMatch(/No environment found in configuration with name "production"/);
    expect(output).toMatch(/Nothing was uploaded/);
  }, 30_000);
});
