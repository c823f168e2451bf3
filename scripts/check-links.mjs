#!/usr/bin/env node
// `npm run check:links`: fails when a relative markdown link in README.md or docs/ points at a
// file or folder that does not exist, or outside the repository. Only links count: `[text](path)`,
// `![alt](path)` and reference definitions `[label]: path`, outside code. A file named in prose or
// in backticks is not a link. Web addresses and same-page anchors are not checked. CI runs it.
// Option: --root <dir> (default: the repository).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** Blanks code (fenced blocks and inline spans) so that links inside it are not read, keeping line numbers. */
function withoutCode(markdown) {
  const lines = markdown.split('\n');
  let fence;
  return lines
    .map((line) => {
      const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
      if (fence !== undefined) {
        if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
        return '';
      }
      if (marker !== undefined) {
        fence = marker;
        return '';
      }
      return line.replace(/(`+)[\s\S]*?\1/g, (span) => ' '.repeat(span.length));
    })
    .join('\n');
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

/** A target this check has to resolve: not a web address, not an anchor on the same page. */
function isRelativePath(target) {
  return target !== '' && !target.startsWith('#') && !target.startsWith('//') && !/^[a-z][a-z0-9+.-]*:/i.test(target);
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
  for (const file of files) {
    for (const { target, line } of findLinks(readFileSync(file, 'utf8'))) {
      if (!isRelativePath(target)) continue;
      let path = target.replace(/[?#].*$/, '');
      try {
        path = decodeURIComponent(path);
      } catch {
        // Not percent-encoded after all: check it as written.
      }
      // A leading slash means the repository's root, as on GitHub.
      const resolved = path.startsWith('/') ? join(root, path) : resolve(dirname(file), path);
      const where = { file: relative(root, file), line, target };
      if (resolved !== resolve(root) && !resolved.startsWith(resolve(root) + sep)) {
        broken.push({ ...where, reason: 'outside the repository' });
      } else if (!existsSync(resolved)) {
        broken.push({ ...where, reason: 'no such file' });
      }
    }
  }
  return broken;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { root: { type: 'string' } } });
  const root = values.root ? resolve(values.root) : join(dirname(fileURLToPath(import.meta.url)), '..');
  const files = markdownFiles(root);
  const broken = brokenLinks(root, files);
  for (const { file, line, target, reason } of broken) console.error(`${file}:${line}: ${target} (${reason})`);
  if (broken.length > 0) {
    console.error(`${broken.length} broken link${broken.length === 1 ? '' : 's'} in ${files.length} files.`);
    process.exit(1);
  }
  console.log(`Links: ${files.length} files, no broken relative link.`);
}
