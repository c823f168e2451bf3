#!/usr/bin/env node
// `npm run keys -- <command>`: rotates SIGNING_KEYS without signing anyone out (docs/KEY-ROTATION.md).
// Works on a dotenv file (default .dev.vars); for production, keep the key set in such a file
// outside the repository and pipe `export` into `wrangler secret put SIGNING_KEYS`.
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { generateSigningKey } from './signing-key.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * How long a key is published before it may sign: latchkey's JWKS says `max-age=300`, and common
 * JWKS clients (jose's createRemoteJWKSet) cache for up to 10 minutes. After this, every verifier
 * that refreshes on schedule already holds the key, so none depends on an unknown-`kid` refetch.
 */
export const PUBLISH_BEFORE_SIGNING_MS = 10 * 60 * 1000;

export class KeysCommandError extends Error {}

const USAGE = `Usage: npm run keys -- <command> [--file <path>] [--force]

  list            the keys of SIGNING_KEYS and what each does
  add             generate an Ed25519 key and append it as the next key: published, not signing
  promote [kid]   make the next key (or the key kid) the signer; the old signer keeps verifying
  retire <kid>    remove a key that no longer signs, once no renewable token can carry it
  export          print the value of SIGNING_KEYS, to pipe into \`wrangler secret put SIGNING_KEYS\`

  --file <path>   dotenv file holding SIGNING_KEYS (default .dev.vars); add creates it if missing
  --force         skip the waiting-time checks of promote and retire (retire never removes the signer)`;

// ---- the key set, as pure functions ---------------------------------------------------------

/** The timing policy of retire, in seconds: latchkey's ACCESS_TOKEN_TTL and RENEW_WINDOW. */
export function readPolicy(wranglerToml) {
  const number = (name, fallback) => {
    const match = new RegExp(`^\\s*${name}\\s*=\\s*"?(\\d+)"?`, 'm').exec(wranglerToml);
    return match ? Number(match[1]) : fallback;
  };
  return { accessTokenTtlSeconds: number('ACCESS_TOKEN_TTL', 300), renewWindowSeconds: number('RENEW_WINDOW', 1209600) };
}

/** When a key demoted at `demotedAt` can no longer be on any renewable token. */
export function retirableAt(demotedAtMs, policy) {
  return demotedAtMs + (policy.accessTokenTtlSeconds + policy.renewWindowSeconds) * 1000;
}

function kids(set) {
  return set.keys.map((key) => key.kid);
}

function find(set, kid) {
  const index = set.keys.findIndex((key) => key.kid === kid);
  if (index < 0) throw new KeysCommandError(`no key with kid ${kid} (keys: ${kids(set).join(', ')})`);
  return index;
}

const iso = (ms) => new Date(ms).toISOString();

/** Appends a fresh key. It is published in the JWKS at once and signs only once promoted. */
export function addKey(set, nowMs, generate = generateSigningKey) {
  const key = { ...generate(), added_at: iso(nowMs) };
  return { keys: [...set.keys, key] };
}

/**
 * Moves a key to the front, where it signs. The default is the newest key (the last one). The
 * key that signed until now stays, as a verifier, marked with when it stopped signing.
 */
export function promoteKey(set, kid, nowMs, { force = false } = {}) {
  if (set.keys.length < 2) throw new KeysCommandError('there is no other key to promote: run `add` first');
  const index = kid === undefined ? set.keys.length - 1 : find(set, kid);
  if (index === 0) throw new KeysCommandError(`key ${set.keys[0].kid} already signs`);
  const key = set.keys[index];
  const addedAt = key.added_at ? Date.parse(key.added_at) : Number.NaN;
  if (!force && Number.isFinite(addedAt) && nowMs < addedAt + PUBLISH_BEFORE_SIGNING_MS) {
    throw new KeysCommandError(
      `key ${key.kid} was added ${Math.round((nowMs - addedAt) / 1000)} s ago; verifiers may not have fetched it yet. ` +
        `Deploy the set with the key in it, then promote after ${iso(addedAt + PUBLISH_BEFORE_SIGNING_MS)} (or pass --force).`,
    );
  }
  const { demoted_at: _previousDemotion, ...promoted } = key;
  const demoted = { ...set.keys[0], demoted_at: iso(nowMs) };
  const rest = set.keys.filter((_, i) => i !== 0 && i !== index);
  return { keys: [promoted, demoted, ...rest] };
}

/**
 * Removes a key that does not sign. Safe once no token it signed can still be renewed: it stopped
 * signing at `demoted_at`, its last token expired ACCESS_TOKEN_TTL later, and that token could be
 * renewed for RENEW_WINDOW after its expiry. Earlier, every session idle since the promotion is
 * signed out (`invalid_token` on renewal): refused without --force. A key that never signed
 * (added, not promoted) goes at once.
 */
export function retireKey(set, kid, nowMs, policy, { force = false } = {}) {
  if (kid === undefined) throw new KeysCommandError('retire needs the kid of the key to remove');
  const index = find(set, kid);
  if (index === 0) throw new KeysCommandError(`key ${kid} is the signer; promote another key first`);
  const key = set.keys[index];
  const neverSigned = key.added_at !== undefined && key.demoted_at === undefined;
  if (!force && !neverSigned) {
    const demotedAt = key.demoted_at ? Date.parse(key.demoted_at) : Number.NaN;
    if (!Number.isFinite(demotedAt)) {
      throw new KeysCommandError(
        `key ${kid} has no demoted_at: when it last signed is unknown. Pass --force if it stopped signing at least ` +
          `ACCESS_TOKEN_TTL + RENEW_WINDOW (${policy.accessTokenTtlSeconds + policy.renewWindowSeconds} s) ago.`,
      );
    }
    const safeAt = retirableAt(demotedAt, policy);
    if (nowMs < safeAt) {
      throw new KeysCommandError(
        `key ${kid} signed until ${key.demoted_at}; tokens it signed can be renewed until ${iso(safeAt)} ` +
          '(ACCESS_TOKEN_TTL + RENEW_WINDOW). Retiring it now signs out every session idle since then. ' +
          'Wait, or pass --force (for a compromised key).',
      );
    }
  }
  return { keys: set.keys.filter((_, i) => i !== index) };
}

/** One line per key: kid, role, and for old keys when they can be retired. */
export function describeKeys(set, policy) {
  return set.keys.map((key, index) => {
    if (index === 0) return `  ${key.kid}  signs`;
    if (key.demoted_at === undefined) {
      return `  ${key.kid}  next: published, not signing${key.added_at ? ` (added ${key.added_at})` : ''}`;
    }
    const safeAt = iso(retirableAt(Date.parse(key.demoted_at), policy));
    return `  ${key.kid}  verifies only (stopped signing ${key.demoted_at}; retire after ${safeAt})`;
  });
}

// ---- the dotenv file ------------------------------------------------------------------------

const LINE = /^(\s*(?:export\s+)?SIGNING_KEYS\s*=\s*)(.*)$/m;

function unquote(raw) {
  const value = raw.trim();
  if (value.startsWith("'") && value.endsWith("'") && value.length >= 2) return value.slice(1, -1);
  if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) return JSON.parse(value);
  return value;
}

/** The key set in a dotenv text, or an empty set when it has no SIGNING_KEYS line. */
export function readKeySet(text) {
  const match = LINE.exec(text);
  if (!match) return { keys: [] };
  let set;
  try {
    set = JSON.parse(unquote(match[2]));
  } catch {
    throw new KeysCommandError('SIGNING_KEYS is not valid JSON');
  }
  if (!Array.isArray(set?.keys) || set.keys.some((key) => typeof key?.kid !== 'string' || typeof key.d !== 'string')) {
    throw new KeysCommandError('SIGNING_KEYS must be {"keys": [private JWKs, each with a kid]}');
  }
  return set;
}

/** The dotenv text with SIGNING_KEYS replaced (or appended), single-quoted as `npm start` writes it. */
export function writeKeySet(text, set) {
  const json = JSON.stringify(set);
  if (json.includes("'")) throw new KeysCommandError('a key contains a single quote; refusing to write it unquoted');
  const line = `SIGNING_KEYS='${json}'`;
  if (LINE.test(text)) return text.replace(LINE, (_, prefix) => `${prefix}'${json}'`);
  return `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${line}\n`;
}

// ---- the command ----------------------------------------------------------------------------

function saveAtomically(path, text) {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

/**
 * Key ids are RFC 7638 thumbprints in base64url, so one in 64 starts with "-". Every option here is
 * long ("--file"), so an argument with a single leading dash is a kid, never an option: mark it as
 * positional before parsing rather than make people remember `-- <kid>`.
 */
function kidsAsPositionals(argv) {
  const options = [];
  const positionals = [];
  for (const argument of argv) {
    if (/^-[^-]/.test(argument)) positionals.push(argument);
    else options.push(argument);
  }
  return positionals.length === 0 ? argv : [...options, '--', ...positionals];
}

function main(argv) {
  const { values, positionals } = parseArgs({
    args: kidsAsPositionals(argv),
    allowPositionals: true,
    options: { file: { type: 'string', default: '.dev.vars' }, force: { type: 'boolean', default: false }, help: { type: 'boolean' } },
  });
  const [command, argument] = positionals;
  if (values.help || command === undefined) {
    console.log(USAGE);
    return;
  }
  const file = resolve(values.file);
  const exists = existsSync(file);
  if (!exists && command !== 'add') throw new KeysCommandError(`${values.file} does not exist (npm start writes .dev.vars; add creates a file)`);
  const text = exists ? readFileSync(file, 'utf8') : '';
  const set = readKeySet(text);
  const policy = readPolicy(existsSync(join(root, 'wrangler.toml')) ? readFileSync(join(root, 'wrangler.toml'), 'utf8') : '');
  const nowMs = Date.now();
  const options = { force: values.force };

  let next;
  switch (command) {
    case 'list':
      if (set.keys.length === 0) console.log(`${values.file} has no SIGNING_KEYS`);
      else console.log(describeKeys(set, policy).join('\n'));
      return;
    case 'export':
      if (set.keys.length === 0) throw new KeysCommandError(`${values.file} has no SIGNING_KEYS`);
      process.stdout.write(JSON.stringify(set));
      return;
    case 'add':
      next = addKey(set, nowMs);
      break;
    case 'promote':
      next = promoteKey(set, argument, nowMs, options);
      break;
    case 'retire':
      next = retireKey(set, argument, nowMs, policy, options);
      break;
    default:
      throw new KeysCommandError(`unknown command ${command}\n\n${USAGE}`);
  }
  saveAtomically(file, writeKeySet(text, next));
  console.log(`SIGNING_KEYS in ${values.file}:\n${describeKeys(next, policy).join('\n')}\n`);
  console.log('Local: restart `npm start` to load it.');
  console.log('Production (the value never appears on screen):');
  console.log(`  node scripts/keys.mjs export --file ${values.file} | npx wrangler secret put SIGNING_KEYS --env production`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof KeysCommandError) && !String(error?.code).startsWith('ERR_PARSE_ARGS')) throw error;
    console.error(`keys: ${error.message}`);
    process.exit(1);
  }
}
