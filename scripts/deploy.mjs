#!/usr/bin/env node
// `npm run deploy`: publishes latchkey with the [env.production] section of wrangler.toml.
//
//   1. checks that section and refuses, before anything is uploaded, a placeholder database_id, an
//      ISSUER that is local, plain http or still the example, the dev-server variable, a test-only
//      switch turned off and a missing rate-limit binding;
//   2. checks that the Worker has its SIGNING_KEYS secret (`wrangler secret list`);
//   3. applies D1's new migrations (`schemaCommand` below: the one place that knows how);
//   4. runs `wrangler deploy --env production`.
//
// Options: --config <path> (default wrangler.toml). README "Deploying" has the whole recipe.
import { spawnSync } from 'node:child_process';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export const ENVIRONMENT = 'production';
/** What wrangler.toml ships with; no real database has it. */
export const PLACEHOLDER_DATABASE_ID = '00000000-0000-0000-0000-000000000000';
/** src/config.ts: set by `npm start` only. */
const DEV_SERVER_PORT_VAR = 'LATCHKEY_DEV_SERVER_PORT';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** localhost and loopback addresses, which no one else can reach. */
function isLocalHost(hostname) {
  return (
    hostname === 'localhost' ||
    hostname.endsWith('.localhost') ||
    /^127\.\d+\.\d+\.\d+$/.test(hostname) ||
    hostname === '0.0.0.0' ||
    hostname === '[::1]' ||
    hostname === '[::]'
  );
}

/** Names reserved for documentation (RFC 2606, RFC 6761): a value copied from an example. */
function isExampleHost(hostname) {
  return /(^|\.)example\.(com|net|org)$/.test(hostname) || /\.(example|test|invalid)$/.test(hostname);
}

/**
 * What is wrong with a resolved production configuration (`unstable_readConfig` with
 * `env: "production"`): `problems` refuse the deploy, `warnings` are printed and let it go on.
 */
export function checkProduction(config) {
  const problems = [];
  const warnings = [];
  const section = `[env.${ENVIRONMENT}]`;

  const db = (config.d1_databases ?? []).find((database) => database.binding === 'DB');
  if (!db) {
    problems.push(`${section} has no D1 binding "DB": add a [[env.${ENVIRONMENT}.d1_databases]] block.`);
  } else if (!db.database_id || db.database_id === PLACEHOLDER_DATABASE_ID || !UUID.test(db.database_id)) {
    problems.push(
      `${section} D1 "DB" has the placeholder database_id ${JSON.stringify(db.database_id ?? '')}: run ` +
        `\`npx wrangler d1 create ${db.database_name ?? 'latchkey'}\` and put the database_id it prints into ` +
        `[[env.${ENVIRONMENT}.d1_databases]] in wrangler.toml.`,
    );
  }

  const vars = config.vars ?? {};
  const issuer = typeof vars.ISSUER === 'string' ? vars.ISSUER.trim() : '';
  const issuerHint = "set it to the Worker's public URL, e.g. https://auth.your-domain.com or https://latchkey.<your-subdomain>.workers.dev";
  let issuerUrl;
  try {
    issuerUrl = new URL(issuer);
  } catch {
    issuerUrl = undefined;
  }
  if (issuer === '') {
    problems.push(`${section} vars has no ISSUER: ${issuerHint}.`);
  } else if (!issuerUrl) {
    problems.push(`${section} ISSUER ${JSON.stringify(issuer)} is not a URL: ${issuerHint}.`);
  } else if (isLocalHost(issuerUrl.hostname)) {
    problems.push(`${section} ISSUER is ${JSON.stringify(issuer)}, a local address no one else can reach: ${issuerHint}.`);
  } else if (issuerUrl.protocol !== 'https:') {
    problems.push(`${section} ISSUER ${JSON.stringify(issuer)} is not https: ${issuerHint}.`);
  } else if (isExampleHost(issuerUrl.hostname)) {
    problems.push(`${section} ISSUER is still the example ${JSON.stringify(issuer)}: ${issuerHint}.`);
  }

  if (vars[DEV_SERVER_PORT_VAR] !== undefined) {
    problems.push(`${section} sets ${DEV_SERVER_PORT_VAR}, which only npm start may set: remove it.`);
  }
  // Switches for test suites and load runs that sign many users in from one address (src/config.ts).
  for (const name of ['ADDRESS_RATE_LIMIT', 'HASH_BUDGET']) {
    if (vars[name] !== undefined && vars[name] !== 'on') {
      problems.push(`${section} sets ${name} to ${JSON.stringify(vars[name])}: it is a test-only switch, keep it "on".`);
    }
  }
  if (!(config.ratelimits ?? []).some((limit) => limit.name === 'ADDRESS_RATE_LIMITER')) {
    problems.push(
      `${section} has no ADDRESS_RATE_LIMITER binding: copy the [[ratelimits]] block into [[env.${ENVIRONMENT}.ratelimits]].`,
    );
  }

  const origins = typeof vars.ALLOWED_ORIGINS === 'string' ? vars.ALLOWED_ORIGINS.split(',') : [];
  for (const origin of origins.map((entry) => entry.trim()).filter(Boolean)) {
    let hostname;
    try {
      hostname = new URL(origin).hostname;
    } catch {
      continue; // The Worker refuses it at load, naming ALLOWED_ORIGINS.
    }
    if (isLocalHost(hostname)) {
      warnings.push(`${section} ALLOWED_ORIGINS lists ${origin}, a page on the visitor's own machine. Intended?`);
    } else if (isExampleHost(hostname)) {
      warnings.push(`${section} ALLOWED_ORIGINS still lists the example ${origin}: list your pages' origins (or none).`);
    }
  }
  return { problems, warnings };
}

// ---- The schema step ---------------------------------------------------------------------------
// The one place that knows how the remote D1 gets its tables: the migrations in migrations/ that
// this database has not seen yet (D1 records the applied ones), before the code that needs them.
export function schemaCommand(target) {
  return ['d1', 'migrations', 'apply', 'DB', '--remote', ...target];
}
// ------------------------------------------------------------------------------------------------

/** Runs wrangler: inheriting the terminal, or capturing its output (`capture`). */
function runWrangler(args, { capture = false } = {}) {
  const result = spawnSync(join(root, 'node_modules', '.bin', 'wrangler'), args, {
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
    stdio: capture ? ['inherit', 'pipe', 'pipe'] : 'inherit',
    encoding: 'utf8',
  });
  return { status: result.status ?? 1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

async function readProductionConfig(configPath) {
  const { unstable_readConfig } = await import('wrangler');
  return unstable_readConfig({ config: configPath, env: ENVIRONMENT });
}

/**
 * The deploy, with wrangler and the configuration reader passed in (tests pass fakes).
 * Returns the exit status; nothing is uploaded unless every check passed.
 */
export async function deploy({
  configPath = join(root, 'wrangler.toml'),
  readConfig = readProductionConfig,
  run = runWrangler,
  log = console.log,
  error = console.error,
} = {}) {
  const target = ['--env', ENVIRONMENT, '--config', configPath];
  const shownPath = relative(process.cwd(), configPath) || configPath;

  let config;
  try {
    config = await readConfig(configPath);
  } catch (cause) {
    error(`latchkey: cannot read the production configuration of ${shownPath}:\n${cause.message ?? cause}`);
    error('Nothing was uploaded.');
    return 1;
  }
  const { problems, warnings } = checkProduction(config);
  for (const warning of warnings) error(`latchkey: warning: ${warning}`);
  if (problems.length > 0) {
    error(`latchkey: npm run deploy refuses ${shownPath} as it is. Nothing was uploaded.`);
    for (const problem of problems) error(`  - ${problem}`);
    error('README, "Deploying", has the steps.');
    return 1;
  }

  const putKeys = `node scripts/keys.mjs export --file prod.vars | npx wrangler secret put SIGNING_KEYS --env ${ENVIRONMENT}`;
  const secrets = run(['secret', 'list', ...target], { capture: true });
  if (secrets.status !== 0) {
    error(`${secrets.stdout}${secrets.stderr}`);
    error(
      `latchkey: could not list the Worker's secrets (above). Log in with \`npx wrangler login\` or set CLOUDFLARE_API_TOKEN. ` +
        `If the Worker does not exist yet, put SIGNING_KEYS first (wrangler offers to create the Worker): ${putKeys}`,
    );
    error('Nothing was uploaded.');
    return 1;
  }
  let names;
  try {
    const json = secrets.stdout.slice(secrets.stdout.indexOf('['));
    names = JSON.parse(json).map((secret) => secret.name);
  } catch {
    error(`latchkey: unexpected answer from \`wrangler secret list\`:\n${secrets.stdout}`);
    return 1;
  }
  if (!names.includes('SIGNING_KEYS')) {
    error(`latchkey: the Worker has no SIGNING_KEYS secret, so it could not sign a token. Put it first: ${putKeys}`);
    error('Nothing was uploaded.');
    return 1;
  }

  log("latchkey: applying migrations/ to the remote D1");
  const schema = run(schemaCommand(target));
  if (schema.status !== 0) {
    error('latchkey: the schema step failed (above); the Worker was not deployed.');
    return schema.status;
  }
  log(`latchkey: deploying with [env.${ENVIRONMENT}]`);
  return run(['deploy', ...target]).status;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  process.exit(await deploy(values.config ? { configPath: resolve(values.config) } : {}));
}
