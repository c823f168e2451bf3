/** `npm run check:links`: which links it reads, what it reports as broken, and the configuration it requires documented. */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module without types.
import { anchorsOf, brokenLinks, configVariables, findLinks, findNamedPaths, missingNamedPaths, slugOf, undocumentedConfig } from '../../scripts/check-links.mjs';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'check-links.mjs');

const targets = (markdown: string): string[] => findLinks(markdown).map((link: { target: string }) => link.target);

describe('findLinks', () => {
  it('reads inline links, images, titles, angle brackets and reference definitions', () => {
    const markdown = [
      'See [the API](docs/API.md) and ![a diagram](img/flow.svg "Flow").',
      'Also [spaced](<docs/a b.md>) and [titled](SECURITY.md#threats \'t\').',
      '[ref]: docs/REF.md',
    ].join('\n');
    expect(targets(markdown)).toEqual(['docs/API.md', 'img/flow.svg', 'docs/a b.md', 'SECURITY.md#threats', 'docs/REF.md']);
  });

  it('ignores file names in prose, in backticks and in code blocks', () => {
    const markdown = [
      'The contract is API.md; `[x](inline-code.md)` is code.',
      '```md',
      '[inside](fenced.md)',
      '```',
      '~~~',
      '[tilde](fenced-too.md)',
      '~~~',
      '[after](real.md)',
    ].join('\n');
    expect(findLinks(markdown)).toEqual([{ target: 'real.md', line: 8 }]);
  });
});

describe('brokenLinks', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'latchkey-links-'));
    mkdirSync(join(root, 'docs', 'deep'), { recursive: true });
    writeFileSync(join(root, 'docs', 'SECURITY.md'), '# Security\n\n## Threats\n');
    mkdirSync(join(root, 'examples'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('reports missing files and links out of the repository, relative to each file', () => {
    writeFileSync(
      join(root, 'README.md'),
      [
        '[ok](docs/SECURITY.md#threats) [folder](examples/) [anchor](#quick-start) [web](https://example.com/x.md)',
        '[mail](mailto:a@example.com) [rooted](/docs/SECURITY.md)',
        '[missing](docs/PROTOCOL.md)',
        '## Quick start',
      ].join('\n'),
    );
    writeFileSync(join(root, 'docs', 'deep', 'NOTES.md'), '[up](../SECURITY.md) [gone](API.md)\n[away](../../../shared/API.md)\n');
    expect(brokenLinks(root)).toEqual([
      { file: 'README.md', line: 3, target: 'docs/PROTOCOL.md', reason: 'no such file' },
      { file: join('docs', 'deep', 'NOTES.md'), line: 1, target: 'API.md', reason: 'no such file' },
      { file: join('docs', 'deep', 'NOTES.md'), line: 2, target: '../../../shared/API.md', reason: 'outside the repository' },
    ]);
  });

  it('exits 1 and names file, line and target; exits 0 once the file exists', async () => {
    writeFileSync(join(root, 'README.md'), 'Rules: [PROTOCOL](docs/PROTOCOL.md).\n');
    const run = promisify(execFile);
    const failure = await run('node', [SCRIPT, '--root', root]).catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({ code: 1, stderr: expect.stringContaining('README.md:1: docs/PROTOCOL.md (no such file)') });
    writeFileSync(join(root, 'docs', 'PROTOCOL.md'), '# Protocol\n');
    const { stdout } = await run('node', [SCRIPT, '--root', root]);
    expect(stdout).toMatch(/no broken relative link/);
  });
});

describe('paths named in backticks', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'latchkey-named-'));
    mkdirSync(join(root, 'src', 'sessions'), { recursive: true });
    writeFileSync(join(root, 'src', 'sessions', 'decide.ts'), '');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('reads backticked paths under the repository\'s folders, not other code spans nor fenced blocks', () => {
    const markdown = ['`src/sessions/decide.ts` and `npm test` and `test/*.json`', '```', '`src/fenced.ts`', '```', '`docs/`'].join('\n');
    expect(findNamedPaths(markdown)).toEqual([
      { path: 'src/sessions/decide.ts', line: 1 },
      { path: 'test/*.json', line: 1 },
      { path: 'docs/', line: 5 },
    ]);
  });

  it('reports a named file that moved, and a glob whose folder is gone', () => {
    writeFileSync(join(root, 'README.md'), 'Rules: `src/sessions/decide.ts`, `src/sessions/*.ts`.\nOld: `src/renewal/decide.ts`, `test/attacks/*.json`.\n');
    expect(missingNamedPaths(root)).toEqual([
      { file: 'README.md', line: 2, target: 'src/renewal/decide.ts', reason: 'no such path' },
      { file: 'README.md', line: 2, target: 'test/attacks/*.json', reason: 'no such path' },
    ]);
  });
});

describe('anchors', () => {
  it('slugs headings as GitHub does: lower case, punctuation dropped, spaces to hyphens, link text kept', () => {
    expect(slugOf('The renewal rules')).toBe('the-renewal-rules');
    expect(slugOf("Consistency between the user's object and D1")).toBe('consistency-between-the-users-object-and-d1');
    expect(slugOf('GET /.well-known/jwks.json')).toBe('get-well-knownjwksjson');
    expect(slugOf('Other Workers: the `LatchkeyInternal` entrypoint')).toBe('other-workers-the-latchkeyinternal-entrypoint');
    expect(slugOf('See [the API](API.md) and snake_case')).toBe('see-the-api-and-snake_case');
  });

  it('offers one anchor per heading outside code, numbers repeats, and reads <a id> and <a name>', () => {
    const markdown = [
      '# Title',
      '## Rules ##',
      '```sh',
      '# not a heading',
      '```',
      '### Rules',
      '#not-a-heading-either',
      'Text <a id="row-1b"></a> and <a name=\'old\'></a>.',
    ].join('\n');
    expect([...anchorsOf(markdown)].sort()).toEqual(['old', 'row-1b', 'rules', 'rules-1', 'title']);
  });

  it('reports a fragment that no heading of the markdown file it names has, on this page or another', () => {
    const root = mkdtempSync(join(tmpdir(), 'latchkey-anchors-'));
    try {
      mkdirSync(join(root, 'docs'));
      mkdirSync(join(root, 'src'));
      writeFileSync(join(root, 'src', 'app.ts'), '');
      writeFileSync(join(root, 'docs', 'PROTOCOL.md'), '# The renewal protocol\n\n## Invariants\n');
      writeFileSync(
        join(root, 'README.md'),
        [
          '## Quick start',
          '[ok](docs/PROTOCOL.md#invariants) [here](#quick-start) [code](src/app.ts#L1) [top](docs/PROTOCOL.md#)',
          '[stale](docs/PROTOCOL.md#rules) [gone](#tests) [encoded](docs/PROTOCOL.md#the%20renewal%20protocol)',
        ].join('\n'),
      );
      writeFileSync(join(root, 'docs', 'NOTES.md'), 'See [invariant 7](PROTOCOL.md#invariants) and [rule 6](PROTOCOL.md#the-grace-window).\n');
      expect(brokenLinks(root)).toEqual([
        { file: 'README.md', line: 3, target: 'docs/PROTOCOL.md#rules', reason: 'no such heading' },
        { file: 'README.md', line: 3, target: '#tests', reason: 'no such heading' },
        { file: 'README.md', line: 3, target: 'docs/PROTOCOL.md#the%20renewal%20protocol', reason: 'no such heading' },
        { file: join('docs', 'NOTES.md'), line: 1, target: 'PROTOCOL.md#the-grace-window', reason: 'no such heading' },
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('configuration documented in docs/API.md', () => {
  const CONFIG = [
    "export const DEV_SERVER_PORT = 'LATCHKEY_DEV_SERVER_PORT';",
    'const DEFAULTS = {',
    "  ISSUER: 'http://localhost:8787',",
    "  ACCESS_TOKEN_TTL: '300',",
    "  RENEW_WINDOW: '1209600',",
    '} as const;',
    'const keys = raw.SIGNING_KEYS;',
    'const admin = raw.ADMIN_TOKEN;',
  ].join('\n');

  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'latchkey-config-'));
    mkdirSync(join(root, 'src'));
    mkdirSync(join(root, 'docs'));
    writeFileSync(join(root, 'src', 'config.ts'), CONFIG);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('reads every variable of src/config.ts: the defaults, the secrets read from raw, the names held in constants', () => {
    expect([...configVariables(CONFIG)]).toEqual([
      ['ISSUER', 'http://localhost:8787'],
      ['ACCESS_TOKEN_TTL', '300'],
      ['RENEW_WINDOW', '1209600'],
      ['SIGNING_KEYS', undefined],
      ['ADMIN_TOKEN', undefined],
      ['LATCHKEY_DEV_SERVER_PORT', undefined],
    ]);
  });

  it('reports a variable without a table row, and a row whose default is not the code\'s', () => {
    writeFileSync(
      join(root, 'docs', 'API.md'),
      [
        '| name | default | meaning |',
        '|---|---|---|',
        '| `ISSUER` | `http://localhost:8787` | iss |',
        '| `ACCESS_TOKEN_TTL` | 600 | lifetime |',
        '| `RENEW_WINDOW` | 1209600 (14 days) | idle limit |',
        '| `SIGNING_KEYS` | none: required | keys |',
        'Prose naming `ADMIN_TOKEN` is not a row.',
        '```',
        '| `LATCHKEY_DEV_SERVER_PORT` | unset | in code |',
        '```',
      ].join('\n'),
    );
    expect(undocumentedConfig(root)).toEqual([
      { name: 'ACCESS_TOKEN_TTL', reason: 'docs/API.md gives the default "600", src/config.ts "300"' },
      { name: 'ADMIN_TOKEN', reason: 'not in a table of docs/API.md' },
      { name: 'LATCHKEY_DEV_SERVER_PORT', reason: 'not in a table of docs/API.md' },
    ]);
  });

  it('fails the run when docs/API.md is missing or a variable is undocumented, and passes once all are', async () => {
    const run = promisify(execFile);
    const missing = await run('node', [SCRIPT, '--root', root]).catch((error: { code: number; stderr: string }) => error);
    expect(missing).toMatchObject({ code: 1, stderr: expect.stringContaining('configuration docs/API.md: missing') });
    const rows = ['ISSUER', 'ACCESS_TOKEN_TTL', 'RENEW_WINDOW', 'SIGNING_KEYS', 'ADMIN_TOKEN'];
    const table = (names: string[]) =>
      names
        .map((name) => `| \`${name}\` | ${{ ISSUER: 'http://localhost:8787', ACCESS_TOKEN_TTL: '300', RENEW_WINDOW: '1209600' }[name] ?? 'unset'} | x |`)
        .join('\n');
    writeFileSync(join(root, 'docs', 'API.md'), table(rows));
    const partial = await run('node', [SCRIPT, '--root', root]).catch((error: { code: number; stderr: string }) => error);
    expect(partial).toMatchObject({ code: 1, stderr: expect.stringContaining('configuration LATCHKEY_DEV_SERVER_PORT: not in a table') });
    writeFileSync(join(root, 'docs', 'API.md'), table([...rows, 'LATCHKEY_DEV_SERVER_PORT']));
    const { stdout } = await run('node', [SCRIPT, '--root', root]);
    expect(stdout).toMatch(/documents every configuration variable/);
  });

  it('checks nothing in a repository without src/config.ts', () => {
    rmSync(join(root, 'src', 'config.ts'));
    expect(undocumentedConfig(root)).toEqual([]);
  });
});
