#!/usr/bin/env node
// Finds import cycles among the TypeScript modules of src/ and packages/*/src, type-only imports
// included: a cycle is one for a reader whatever the compiler erases. Exits 1 and prints each
// cycle as a path when there is one. Usage: node scripts/check-cycles.mjs [root]
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));

/** The folders whose modules are checked, relative to the root. */
function sourceRoots() {
  const roots = [join(root, 'src')];
  const packages = join(root, 'packages');
  if (existsSync(packages)) {
    for (const name of readdirSync(packages).sort()) roots.push(join(packages, name, 'src'));
  }
  return roots.filter((dir) => existsSync(dir) && statSync(dir).isDirectory());
}

function tsFiles(dir) {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...tsFiles(path));
    else if (/\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts')) files.push(path);
  }
  return files;
}

// `import ... from '...'`, `import '...'`, `export ... from '...'`, `import('...')`: the statement's
// clauses may span lines, so the pattern reads up to the `from` without crossing a semicolon.
const SPECIFIERS = [
  /^\s*(?:import|export)\s+(?:type\s+)?[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm,
  /^\s*import\s*['"]([^'"]+)['"]/gm,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
];

function withoutComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, (block) => block.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

function specifiers(text) {
  const found = new Set();
  const code = withoutComments(text);
  for (const pattern of SPECIFIERS) {
    for (const match of code.matchAll(pattern)) found.add(match[1]);
  }
  return [...found];
}

/** The module a relative specifier names: the file itself, with .ts, or its folder's index.ts. */
function resolveSpecifier(from, specifier) {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(dirname(from), specifier);
  const candidates = [base, `${base}.ts`, `${base}.tsx`, join(base, 'index.ts'), join(base, 'index.tsx')];
  if (/\.js$/.test(base)) candidates.unshift(base.replace(/\.js$/, '.ts'));
  return candidates.find((path) => existsSync(path) && statSync(path).isFile() && /\.tsx?$/.test(path));
}

const files = sourceRoots().flatMap(tsFiles);
const graph = new Map();
for (const file of files) {
  const targets = specifiers(readFileSync(file, 'utf8'))
    .map((specifier) => resolveSpecifier(file, specifier))
    .filter((target) => target !== undefined);
  graph.set(file, [...new Set(targets)]);
}
for (const targets of [...graph.values()]) {
  for (const target of targets) if (!graph.has(target)) graph.set(target, []);
}

/**
 * Tarjan's strongly connected components: every module of a component with more than one
 * member, or one that imports itself, lies on a cycle.
 */
function components() {
  let counter = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    // Iterative, so that a deep chain of imports cannot overflow the call stack.
    const work = [{ node: start, next: 0 }];
    index.set(start, counter);
    low.set(start, counter);
    counter += 1;
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const targets = graph.get(frame.node);
      if (frame.next < targets.length) {
        const target = targets[frame.next];
        frame.next += 1;
        if (!index.has(target)) {
          index.set(target, counter);
          low.set(target, counter);
          counter += 1;
          stack.push(target);
          onStack.add(target);
          work.push({ node: target, next: 0 });
        } else if (onStack.has(target)) {
          low.set(frame.node, Math.min(low.get(frame.node), index.get(target)));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent), low.get(frame.node)));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component = [];
        let member;
        do {
          member = stack.pop();
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        if (component.length > 1 || graph.get(frame.node).includes(frame.node)) found.push(component);
      }
    }
  }
  return found;
}

/** Every elementary cycle through a component's modules, each once, starting at its first module in path order. */
function cyclesIn(component) {
  const members = new Set(component);
  const order = [...component].sort();
  const cycles = [];
  for (const [position, start] of order.entries()) {
    // Cycles through earlier modules were listed from those; stay among the later ones.
    const allowed = new Set(order.slice(position));
    const path = [start];
    const visit = (node) => {
      for (const target of graph.get(node)) {
        if (!members.has(target) || !allowed.has(target)) continue;
        if (target === start) cycles.push([...path, start]);
        else if (!path.includes(target)) {
          path.push(target);
          visit(target);
          path.pop();
        }
      }
    };
    visit(start);
  }
  return cycles;
}

const cycles = components().flatMap(cyclesIn);
const show = (file) => relative(root, file).split('\\').join('/');
if (cycles.length > 0) {
  console.error(`${cycles.length} import cycle${cycles.length === 1 ? '' : 's'}:`);
  for (const cycle of cycles) console.error(`  ${cycle.map(show).join(' > ')}`);
  process.exit(1);
}
console.log(`check-cycles: no import cycle among ${files.length} modules of ${sourceRoots().map(show).join(', ')}`);
