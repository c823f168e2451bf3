// schema.sql: D1's whole schema in one file, made from migrations/ (the one source: wrangler
// applies those, in order, in `npm start`, the tests and `npm run deploy`). For reading the schema
// at a glance, or for creating a fresh database with `wrangler d1 execute DB --file schema.sql`.
// `node scripts/schema.mjs` writes it; `--check` (in CI) fails when it no longer matches.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const migrations = join(root, 'migrations');
const target = join(root, 'schema.sql');

const parts = readdirSync(migrations)
  .filter((name) => name.endsWith('.sql'))
  .sort()
  .map((name) => `-- ---- migrations/${name} ----\n\n${readFileSync(join(migrations, name), 'utf8').trim()}\n`);
const schema = [
  '-- latchkey: D1\'s schema, every migration in order. Made by `npm run schema` from migrations/,',
  '-- which is what wrangler applies; edit a migration (or add one), never this file.',
  '',
  ...parts,
].join('\n');

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    // Missing: reported below.
  }
  if (current !== schema) {
    console.error('schema.sql does not match migrations/: run `npm run schema` and commit it.');
    process.exit(1);
  }
  console.log(`schema.sql: the ${parts.length} migrations, in order.`);
} else {
  writeFileSync(target, schema);
  console.log(`wrote schema.sql from ${parts.length} migrations`);
}
