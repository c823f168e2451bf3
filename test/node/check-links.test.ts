/** `npm run check:links`: which links it reads, and what it reports as broken. */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module without types.
import { brokenLinks, findLinks } from '../../scripts/check-links.mjs';

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
    writeFileSync(join(root, 'docs', 'SECURITY.md'), '# Security\n');
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
