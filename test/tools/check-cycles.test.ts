/** `npm run check:cycles`: the import cycles it finds, type-only ones included, and the exit codes CI reads. */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'check-cycles.mjs');

let root: string;

function write(path: string, text: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

async function check(): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [SCRIPT, root]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'check-cycles-'));
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('check-cycles', () => {
  it('passes a tree whose imports go one way, and says how many modules it read', async () => {
    write('src/a.ts', "import { b } from './b';\nexport const a = b;\n");
    write('src/b.ts', "import { c } from './lib';\nexport const b = c;\n");
    write('src/lib/index.ts', "export const c = 1;\n");
    write('packages/p/src/x.ts', "import { a } from '../../../src/a';\nexport const x = a;\n");
    const result = await check();
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/no import cycle among 4 modules/);
  });

  it('fails on a cycle through a folder index and a type-only import, printing the cycle as a path', async () => {
    write('src/a.ts', "import { b } from './b';\nexport const a = b;\n");
    write('src/b.ts', "import type { C } from './lib';\nexport const b: C = 1;\n");
    write('src/lib/index.ts', "export type C = number;\nexport { a } from '../a';\n");
    write('src/apart.ts', "import { a } from './a';\nexport const apart = a;\n");
    const result = await check();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('1 import cycle:');
    expect(result.stderr).toContain('src/a.ts > src/b.ts > src/lib/index.ts > src/a.ts');
    expect(result.stderr).not.toContain('apart');
  });

  it('finds a cycle that crosses from a package into src, with multi-line import clauses', async () => {
    write('src/a.ts', "import {\n  x,\n} from '../packages/p/src/x';\nexport const a = x;\n");
    write('packages/p/src/x.ts', "export { a as x } from '../../../src/a';\n");
    const result = await check();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('packages/p/src/x.ts > src/a.ts > packages/p/src/x.ts');
  });

  it('ignores imports in comments and of packages', async () => {
    write('src/a.ts', "// import { b } from './b';\nimport { Hono } from 'hono';\nexport const a = Hono;\n");
    write('src/b.ts', "import { a } from './a';\nexport const b = a;\n");
    const result = await check();
    expect(result.code).toBe(0);
  });
});
