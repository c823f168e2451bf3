#!/usr/bin/env node
// `npm run load`: a bounded load and soak run against `npm start` on loopback (ports 8811/9311, or
// --port and --inspector-port).
//
// Many users, each with several clients (tabs, phones) renewing on a short ACCESS_TOKEN_TTL, some
// of them firing two or three renewals of one token at once or retrying a renewal whose answer
// they pretend to have lost; meanwhile a replayer steals superseded tokens of a few victim users
// and presents them. At the end it prints requests by status and the figures that must be zero
// (5xx, generations minted twice, benign renewals refused) or complete (thefts detected), with
// renewal latency, and exits non-zero if any of them is wrong.
//
//   npm run load [-- --seconds 60 --users 24 --clients 3 --victims 4 --port 8811 --inspector-port 9311]
import { startLocalServer } from '../scripts/local-server.mjs';
import { BENCH_LOG_LEVEL, machine, percentile } from './lib/report.mjs';

const options = {};
for (let index = 2; index < process.argv.length; index++) {
  const arg = process.argv[index];
  if (arg.startsWith('--')) options[arg.slice(2)] = process.argv[index + 1];
}
const SECONDS = Number(options.seconds ?? 60);
const USERS = Number(options.users ?? 24);
const CLIENTS = Number(options.clients ?? 3);
const VICTIMS = Number(options.victims ?? 4);
const TTL = 3;
// Long enough for two tabs and a retry after a lost answer (well under a second apart here),
// shorter than the renewal interval so that a replay of an older token is always caught.
const GRACE = 2;
const PASSWORD = 'correct horse battery staple';

const PORT = Number(options.port ?? 8811);

const server = await startLocalServer({
  args: BENCH_LOG_LEVEL,
  port: PORT,
  inspectorPort: Number(options['inspector-port'] ?? 9311),
  // This run signs every user and client in from one address, many at once, and counts any 503 as
  // a failure: the per-address limit and the hash budget (test-only switches) are off. What it
  // checks is the renewal protocol under concurrency; `npm run bench` measures the login storm.
  vars: {
    ACCESS_TOKEN_TTL: String(TTL),
    REUSE_GRACE: String(GRACE),
    LOGIN_MAX_FAILURES: '1000',
    ADDRESS_RATE_LIMIT: 'off',
    HASH_BUDGET: 'off',
  },
  maxSeconds: SECONDS + 120,
});

// ---------------------------------------------------------------------------------------------
// Bookkeeping

const byStatus = new Map();
const renewLatencies = [];
/** Every token answered, by "sid.gen": invariant 1 says each set holds one token. */
const minted = new Map();
const wronglyRefused = new Map();
/** 5xx answers by origin and text: latchkey's own problem documents, or the local dev proxy's. */
const latchkey5xx = new Map();
const proxy5xx = new Map();
let thefts = 0;
let detected = 0;
const theftOutcomes = new Map();
let benignRenewals = 0;
let bursts = 0;
let retries = 0;
let victimRelogins = 0;

const count = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const between = (min, max) => min + Math.random() * (max - min);

function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

function remember(token) {
  const { sid, gen } = claimsOf(token);
  const key = `${sid}.${gen}`;
  if (!minted.has(key)) minted.set(key, new Set());
  minted.get(key).add(token);
}

async function request(path, { token, json } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  const started = performance.now();
  let response;
  try {
    response = await fetch(`${server.url}${path}`, {
      method: json !== undefined || path.startsWith('/auth/') ? 'POST' : 'GET',
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
    });
  } catch (error) {
    count(byStatus, 'network error');
    throw error;
  }
  const text = await response.text();
  const ms = performance.now() - started;
  count(byStatus, response.status);
  if (response.status >= 500) {
    // latchkey answers every failure with a problem document; anything else came from the local
    // dev stack in front of it (wrangler's proxy), and is reported apart, verbatim.
    const fromLatchkey = response.headers.get('content-type') === 'application/problem+json';
    count(fromLatchkey ? latchkey5xx : proxy5xx, `${path} ${response.status}: ${text.slice(0, 160)}`);
  }
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (body?.access_token) remember(body.access_token);
  return { status: response.status, body, ms };
}

/** A renewal as a careful client makes it: a 5xx is retried at once with the same token (the
 *  answer may be lost after the server committed; REUSE_GRACE covers a prompt retry). */
async function renew(token) {
  for (let attempt = 1; ; attempt++) {
    let answer;
    try {
      answer = await request('/auth/renew', { token });
    } catch (error) {
      if (attempt === 3) throw error;
      continue;
    }
    renewLatencies.push(answer.ms);
    if (answer.status < 500 || attempt === 3) return answer;
  }
}

/** Runs `work` over `items` with at most `limit` in flight (logins are scrypt-bound). */
async function pool(items, limit, work) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (queue.length > 0) await work(queue.shift());
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Users and clients

const run = Math.random().toString(36).slice(2, 8);
const users = Array.from({ length: USERS }, (_, index) => ({
  email: `load-${run}-${index}@example.com`,
  victim: index < VICTIMS,
  /** When a theft against this user was last detected (ms). */
  lastDetection: 0,
  clients: [],
}));

async function signIn(user, client) {
  const answer = await request('/auth/login', { json: { email: user.email, password: PASSWORD, client: client.label } });
  if (answer.status !== 200) throw new Error(`login answered ${answer.status}`);
  client.token = answer.body.access_token;
  client.sessionStartedAt = Date.now();
  client.history = [];
  client.renewedInSession = 0;
}

const startedSetup = Date.now();
await pool(users, 4, async (user) => {
  const answer = await request('/auth/register', { json: { email: user.email, password: PASSWORD } });
  if (answer.status !== 201) throw new Error(`register answered ${answer.status}`);
});
const allClients = users.flatMap((user) =>
  Array.from({ length: CLIENTS }, (_, index) => {
    const client = { user, label: `client ${index}`, token: '', history: [], sessionStartedAt: 0, renewedInSession: 0 };
    user.clients.push(client);
    return client;
  }),
);
await pool(allClients, 4, (client) => signIn(client.user, client));
const setupSeconds = (Date.now() - startedSetup) / 1000;

// ---------------------------------------------------------------------------------------------
// The run

const deadline = Date.now() + SECONDS * 1000;

/** A benign refusal: counted against the service unless the client is a victim's. */
async function refused(client, code) {
  if (!client.user.victim) {
    count(wronglyRefused, code ?? 'no code');
    return;
  }
  // A theft against this user revoked the session (and maybe the user's others): sign in again.
  victimRelogins += 1;
  await signIn(client.user, client);
}

function advance(client, token) {
  client.history.push({ token: client.token, supersededAt: Date.now() });
  client.token = token;
  client.renewedInSession += 1;
}

async function clientLoop(client) {
  try {
    await renewLoop(client);
  } catch (error) {
    count(wronglyRefused, `client stopped: ${error.message}`);
  }
}

async function renewLoop(client) {
  await sleep(between(0, TTL * 1000));
  while (Date.now() < deadline) {
    await sleep(between(0.5 * TTL * 1000, TTL * 1000));
    if (Date.now() >= deadline) break;
    const roll = Math.random();
    if (roll < 0.15) {
      // Two or three tabs renew the same token at the same moment.
      bursts += 1;
      const copies = Math.random() < 0.5 ? 2 : 3;
      const answers = await Promise.all(Array.from({ length: copies }, () => renew(client.token)));
      benignRenewals += copies;
      const tokens = new Set(answers.filter((a) => a.status === 200).map((a) => a.body.access_token));
      const failure = answers.find((a) => a.status !== 200);
      if (failure) await refused(client, failure.body?.code);
      else if (tokens.size === 1) advance(client, [...tokens][0]);
      else count(wronglyRefused, 'burst answered different tokens');
    } else if (roll < 0.22) {
      // A renewal whose answer was lost, retried with the same token a moment later.
      retries += 1;
      const first = await renew(client.token);
      await sleep(between(100, 800));
      const again = await renew(client.token);
      benignRenewals += 2;
      if (first.status !== 200 || again.status !== 200) await refused(client, (first.status !== 200 ? first : again).body?.code);
      else if (first.body.access_token !== again.body.access_token) count(wronglyRefused, 'retry answered a different token');
      else advance(client, again.body.access_token);
    } else {
      const answer = await renew(client.token);
      benignRenewals += 1;
      if (answer.status === 200) advance(client, answer.body.access_token);
      else await refused(client, answer.body?.code);
      if (Math.random() < 0.1) await request('/api/me', { token: client.token });
    }
  }
}

/** Steals a superseded token of a victim's live session and presents it, well past REUSE_GRACE. */
async function replayer() {
  await sleep(3 * TTL * 1000);
  while (Date.now() < deadline - 2000) {
    await sleep(between(1000, 2000));
    const now = Date.now();
    const candidates = users
      .filter((user) => user.victim)
      .flatMap((user) =>
        user.clients.filter(
          (client) =>
            // A session opened after the user's last detection, so nothing revoked it since,
            // with a token superseded long enough ago that no grace can apply.
            client.sessionStartedAt > user.lastDetection &&
            client.history.some((entry) => now - entry.supersededAt > (GRACE + 2) * 1000),
        ),
      );
    if (candidates.length === 0) continue;
    const client = candidates[Math.floor(Math.random() * candidates.length)];
    const stolen = client.history.find((entry) => now - entry.supersededAt > (GRACE + 2) * 1000);
    thefts += 1;
    client.user.lastDetection = Date.now();
    const answer = await request('/auth/renew', { token: stolen.token });
    count(theftOutcomes, answer.status === 200 ? 'renewed (undetected)' : answer.body?.code ?? String(answer.status));
    if (answer.status === 401 && answer.body?.code === 'token_reused') detected += 1;
    client.user.lastDetection = Date.now();
  }
}

const started = Date.now();
await Promise.all([...allClients.map(clientLoop), replayer()]);
const elapsed = (Date.now() - started) / 1000;
await server.stop();

// ---------------------------------------------------------------------------------------------
// The report

const sorted = [...renewLatencies].sort((a, b) => a - b);
const twice = [...minted.values()].filter((tokens) => tokens.size > 1).length;
const sum = (map) => [...map.values()].reduce((total, n) => total + n, 0);
const fiveXx = sum(latchkey5xx);
const networkErrors = byStatus.get('network error') ?? 0;
const wrong = [...wronglyRefused.values()].reduce((sum, n) => sum + n, 0);
const total = [...byStatus.values()].reduce((sum, n) => sum + n, 0);
const m = await machine();

console.log(`\nlatchkey load run: ${USERS} users x ${CLIENTS} clients (${VICTIMS} victim users), ${elapsed.toFixed(0)} s of renewals after ${setupSeconds.toFixed(0)} s of sign-ups`);
console.log(`ACCESS_TOKEN_TTL=${TTL} REUSE_GRACE=${GRACE}; machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, node ${m.node}, ${m.platform}`);
console.log(`\nrequests: ${total} (${(total / (elapsed + setupSeconds)).toFixed(0)}/s overall)`);
for (const [status, n] of [...byStatus].sort((a, b) => String(a[0]).localeCompare(String(b[0])))) console.log(`  ${status}: ${n}`);
console.log(`renewals by benign clients: ${benignRenewals} (bursts of 2-3 tabs: ${bursts}, retries after a lost answer: ${retries})`);
console.log(`victim clients signed in again after a theft revoked them: ${victimRelogins}`);
console.log('');
console.log(`5xx answers from latchkey:        ${fiveXx}${networkErrors ? ` (+${networkErrors} network errors)` : ''}   (must be 0)`);
if (sum(proxy5xx) > 0) console.log(`5xx from wrangler dev's proxy:    ${sum(proxy5xx)}   (not latchkey's; the client retried them, see below)`);
console.log(`generations minted twice:         ${twice} of ${minted.size}   (must be 0)`);
console.log(`benign renewals wrongly refused:  ${wrong}${wrong ? ` ${JSON.stringify(Object.fromEntries(wronglyRefused))}` : ''}   (must be 0)`);
console.log(`thefts detected / injected:       ${detected} / ${thefts}   (must be all) ${JSON.stringify(Object.fromEntries(theftOutcomes))}`);
console.log(`renewal latency:                  p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(1)} ms over ${sorted.length} renewals`);

for (const [line, n] of [...latchkey5xx, ...proxy5xx]) console.log(`  ${n} x ${line}`);

const ok = fiveXx === 0 && networkErrors === 0 && twice === 0 && wrong === 0 && thefts > 0 && detected === thefts;
console.log(`\n${ok ? 'PASS' : 'FAIL'}`);
process.exitCode = ok ? 0 : 1;
