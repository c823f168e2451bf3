#!/usr/bin/env node
// `npm run check:links`: fails when a relative markdown link in README.md or docs/ points at a
// file or folder that does not exist, outside the repository, or at a `#fragment` that no heading
// of the markdown file it names has (GitHub's anchors: `[rule 7](PROTOCOL.md#renewal-rules)`,
// `[Quick start](#quick-start)`). Only links count: `[text](path)`, `![alt](path)` and reference
// definitions `[label]: path`, outside code. A file named in prose or in backticks is not a link.
// Web addresses are not checked, nor fragments of files that are not markdown.
// It also fails when a path of the repository named in backticks (`src/sessions/decide.ts`,
// `test/worker/`, `scripts/*.mjs`) no longer exists: the docs name files to point a reader at
// them, and a file that moved must not leave them pointing at nothing.
// It also fails when docs/API.md does not document every configuration variable src/config.ts
// reads, each in a row of a table (`| \`NAME\` | default | ...`) whose default is src/config.ts's.
// CI runs it. Option: --root <dir> (default: the repository).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** The lines of a markdown text with fenced code blocks blanked, keeping line numbers. */
function withoutFences(markdown) {
  let fence;
  return markdown.split('\n').map((line) => {
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence !== undefined) {
      if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      return '';
    }
    if (marker !== undefined) {
      fence = marker;
      return '';
    }
    return line;
  });
}

/** Blanks code (fenced blocks and inline spans) so that links inside it are not read, keeping line numbers. */
function withoutCode(markdown) {
  return withoutFences(markdown)
    .map((line) => line.replace(/(`+)[\s\S]*?\1/g, (span) => ' '.repeat(span.length)))
    .join('\n');
}

/**
 * The anchor GitHub gives a heading: its text as rendered (link text kept, markup dropped),
 * lower-cased, every character but letters, digits, `_`, `-` and spaces removed, spaces made `-`.
 */
export function slugOf(heading) {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]*>/g, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
    .replace(/ /g, '-');
}

/**
 * The anchors a markdown text offers: one per ATX heading outside code (a repeated slug gets
 * `-1`, `-2`, ... as on GitHub), and every `<a id>` or `<a name>`.
 */
export function anchorsOf(markdown) {
  const anchors = new Set();
  const seen = new Map();
  for (const line of withoutFences(markdown)) {
    const heading = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/.exec(line);
    if (heading) {
      const slug = slugOf(heading[1]);
      const count = seen.get(slug) ?? 0;
      seen.set(slug, count + 1);
      anchors.add(count === 0 ? slug : `${slug}-${count}`);
    }
    for (const match of line.matchAll(/<a\s[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']/gi)) anchors.add(match[1]);
  }
  return anchors;
}

/** The link targets of a markdown text, with their line numbers. */
export function findLinks(markdown) {
  const links = [];
  const lines = withoutCode(markdown).split('\n');
  lines.forEach((line, index) => {
    for (const match of line.matchAll(/\]\(\s*(?:<([^>]*)>|([^\s)]+))(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)) {
      links.push({ target: match[1] ?? match[2], line: index + 1 });
    }
    const definition = /^ {0,3}\[[^\]]+\]:\s*(?:<([^>]*)>|(\S+))/.exec(line);
    if (definition) links.push({ target: definition[1] ?? definition[2], line: index + 1 });
  });
  return links;
}

/** A target this check has to resolve: not a web address (nor `mailto:` and the like). */
function isRelativePath(target) {
  return target !== '' && !target.startsWith('//') && !/^[a-z][a-z0-9+.-]*:/i.test(target);
}

/** The markdown files checked: README.md and every .md under docs/. */
export function markdownFiles(root) {
  const files = existsSync(join(root, 'README.md')) ? [join(root, 'README.md')] : [];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (entry.endsWith('.md')) files.push(path);
    }
  };
  walk(join(root, 'docs'));
  return files;
}

/** Every broken relative link of `files`: `{ file, line, target, reason }`, file relative to root. */
export function brokenLinks(root, files = markdownFiles(root)) {
  const broken = [];
  const anchorCache = new Map();
  const anchorsIn = (path) => {
    if (!anchorCache.has(path)) anchorCache.set(path, anchorsOf(readFileSync(path, 'utf8')));
    return anchorCache.get(path);
  };
  for (const file of files) {
    for (const { target, line } of findLinks(readFileSync(file, 'utf8'))) {
      if (!isRelativePath(target)) continue;
      const hashAt = target.indexOf('#');
      let path = target.slice(0, hashAt === -1 ? undefined : hashAt).replace(/\?.*$/, '');
      let fragment = hashAt === -1 ? undefined : target.slice(hashAt + 1);
      try {
        path = decodeURIComponent(path);
        if (fragment !== undefined) fragment = decodeURIComponent(fragment);
      } catch {
        // Not percent-encoded after all: check it as written.
      }
      // A leading slash means the repository's root, as on GitHub; no path at all, this file.
      const resolved = path === '' ? file : path.startsWith('/') ? join(root, path) : resolve(dirname(file), path);
      const where = { file: relative(root, file), line, target };
      if (resolved !== resolve(root) && !resolved.startsWith(resolve(root) + sep)) {
        broken.push({ ...where, reason: 'outside the repository' });
      } else if (!existsSync(resolved)) {
        broken.push({ ...where, reason: 'no such file' });
      } else if (
        fragment !== undefined &&
        fragment !== '' &&
        resolved.endsWith('.md') &&
        statSync(resolved).isFile() &&
        !anchorsIn(resolved).has(fragment)
      ) {
        broken.push({ ...where, reason: 'no such heading' });
      }
    }
  }
  return broken;
}

/** The top-level folders whose files the docs name in backticks. */
const NAMED_ROOTS = ['src', 'test', 'bench', 'scripts', 'packages', 'client', 'examples', 'migrations', 'docs', 'public'];

/** The repository paths a markdown text names in backticks (outside fenced blocks), with their line numbers. */
export function findNamedPaths(markdown) {
  const named = [];
  const pattern = new RegExp(`^(?:${NAMED_ROOTS.join('|')})/[\\w@.*/-]*$`);
  withoutFences(markdown).forEach((line, index) => {
    for (const match of line.matchAll(/`([^`\s]+)`/g)) {
      if (pattern.test(match[1])) named.push({ path: match[1], line: index + 1 });
    }
  });
  return named;
}

/**
 * Every path named in backticks that does not exist: `{ file, line, target, reason }`. A name with
 * `*` stands for files of a folder: the folder before the first `*` must exist.
 */
export function missingNamedPaths(root, files = markdownFiles(root)) {
  const missing = [];
  for (const file of files) {
    for (const { path, line } of findNamedPaths(readFileSync(file, 'utf8'))) {
      const fixed = path.includes('*') ? path.slice(0, path.indexOf('*')).replace(/[^/]*$/, '') : path;
      if (!existsSync(join(root, fixed))) missing.push({ file: relative(root, file), line, target: path, reason: 'no such path' });
    }
  }
  return missing;
}

/** Every variable src/config.ts reads, with its default where it has one (undefined for secrets). */
export function configVariables(configSource) {
  const variables = new Map();
  const defaults = /const DEFAULTS = \{([\s\S]*?)\n\}/.exec(configSource)?.[1] ?? '';
  for (const match of defaults.matchAll(/^\s*([A-Z][A-Z0-9_]*):\s*'([^']*)'/gm)) variables.set(match[1], match[2]);
  // Read without a default: `raw.SIGNING_KEYS`, and names held in constants (`= 'LATCHKEY_DEV_SERVER_PORT'`).
  for (const match of configSource.matchAll(/\braw\.([A-Z][A-Z0-9_]*)\b/g)) {
    if (!variables.has(match[1])) variables.set(match[1], undefined);
  }
  for (const match of configSource.matchAll(/\bconst [A-Z][A-Z0-9_]* = '([A-Z][A-Z0-9_]*)'/g)) {
    if (!variables.has(match[1])) variables.set(match[1], undefined);
  }
  return variables;
}

/** The table rows of a markdown text whose first cell is one `` `NAME` ``: NAME → its second cell. */
function documentedVariables(markdown) {
  const rows = new Map();
  for (const line of withoutFences(markdown)) {
    const row = /^\s*\|\s*`([A-Z][A-Z0-9_]*)`\s*\|([^|]*)\|/.exec(line);
    if (row && !rows.has(row[1])) rows.set(row[1], row[2].trim());
  }
  return rows;
}

/**
 * What docs/API.md misses of src/config.ts: `{ name, reason }` for every variable without a row in
 * its tables, or whose row's default (backticks aside) does not start with the one the code uses.
 * Nothing when the repository has no src/config.ts.
 */
export function undocumentedConfig(root) {
  const configPath = join(root, 'src', 'config.ts');
  if (!existsSync(configPath)) return [];
  const variables = configVariables(readFileSync(configPath, 'utf8'));
  if (variables.size === 0) return [{ name: 'src/config.ts', reason: 'no variables found: has the shape of DEFAULTS changed?' }];
  const apiPath = join(root, 'docs', 'API.md');
  if (!existsSync(apiPath)) return [{ name: 'docs/API.md', reason: 'missing' }];
  const documented = documentedVariables(readFileSync(apiPath, 'utf8'));
  const problems = [];
  for (const [name, value] of variables) {
    const cell = documented.get(name);
    if (cell === undefined) problems.push({ name, reason: 'not in a table of docs/API.md' });
    else if (value !== undefined && !cell.replace(/`/g, '').trim().startsWith(value)) {
      problems.push({ name, reason: `docs/API.md gives the default ${JSON.stringify(cell)}, src/config.ts ${JSON.stringify(value)}` });
    }
  }
  return problems;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { root: { type: 'string' } } });
  const root = values.root ? resolve(values.root) : join(dirname(fileURLToPath(import.meta.url)), '..');
  const files = markdownFiles(root);
  const broken = [...brokenLinks(root, files), ...missingNamedPaths(root, files)];
  for (const { file, line, target, reason } of broken) console.error(`${file}:${line}: ${target} (${reason})`);
  const undocumented = undocumentedConfig(root);
  for (const { name, reason } of undocumented) console.error(`configuration ${name}: ${reason}`);
  if (broken.length > 0) {
    console.error(`${broken.length} broken link${broken.length === 1 ? '' : 's'} or named path${broken.length === 1 ? '' : 's'} in ${files.length} files.`);
  }
  if (undocumented.length > 0) {
    console.error(`${undocumented.length} configuration variable${undocumented.length === 1 ? '' : 's'} not documented as src/config.ts reads ${undocumented.length === 1 ? 'it' : 'them'}.`);
  }
  if (broken.length > 0 || undocumented.length > 0) process.exit(1);
  console.log(`Links: ${files.length} files, no broken relative link or anchor, every path named in backticks exists; docs/API.md documents every configuration variable.`);
}
