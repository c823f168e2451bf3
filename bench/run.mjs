#!/usr/bin/env node
// `npm run bench`: latchkey against the floors it cannot beat, side by side, in interleaved rounds;
// renewals, strict checks and logins again with D1 a network round trip away; and renewals of users
// whose objects were evicted; and a login storm. Options: --rounds N (7), --seconds S per timed run
// (1.2), --only NAME (only the pairs whose scenario contains NAME: me, account, renew, login,
// bound; `shape` for the breakdown alone, `d1` for the runs with D1 delayed, `wake` for the
// evicted objects alone, `storm` for the login storm rows alone), --d1-delay MS (25; 0 leaves the
// delayed runs out), --out FILE (also write the markdown report there), --port P (8821) and
// --inspector-port Q (9321) where the workerd it starts listens, --inspect (workerd's inspector on),
// --persist DIR (D1 and Durable Object storage in DIR, kept; by default a fresh directory in
// /dev/shm, deleted at the end, or in the system's temporary directory where there is no /dev/shm),
// --users N (1,000; fewer only for a quick try: the token cycle then fits in the verified-token
// cache). BENCH_RAW=FILE writes every round's req/s, p50 and CPU per request of every run as JSON;
// BENCH_TRACE=1 logs each run's duration; BENCH_LOG=1 shows workerd's own output.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateSigningKey } from '../scripts/signing-key.mjs';
import { fmt, median, startDriver } from './common.mjs';
import { bundle, root, startMiniflare, workerdVersion } from './host.mjs';
import { seedBound } from './bound.mjs';
import { requestJson } from './http.mjs';
import { cpuMs, workerdPids } from './proc.mjs';

const { values: options } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    seconds: { type: 'string', default: '1.2' },
    out: { type: 'string' },
    port: { type: 'string', default: '8821' },
    inspect: { type: 'boolean', default: false },
    'inspector-port': { type: 'string', default: '9321' },
    persist: { type: 'string' },
    only: { type: 'string' },
    'd1-delay': { type: 'string', default: '25' },
    users: { type: 'string', default: '1000' },
  },
});
const ROUNDS = Number(options.rounds);
const SECONDS = Number(options.seconds);
const D1_DELAY_MS = Number(options['d1-delay']);
const USERS = Number(options.users);
// 10 sessions a user: session 0 is renewed, session 1 of the first 64 users is presented again and
// again, and the other 8,936 first tokens are the "different token every request" cycle.
const SESSIONS_PER_USER = 10;
const REUSED_TOKENS = 64;
const SOLO_SESSIONS = 32;
/** Users whose objects the runtime may evict: each is renewed once cold and once warm per round. */
const EVICTABLE_USERS = 200;
const LOGINS_PER_RUN = 8;
const BREAKDOWN_ROUNDS = 3;
const PASSWORD = 'correct horse battery staple';

/** Floor against subject, in the same round. */
const PAIRS = [
  { op: 'stateless GET /api/me, each client reuses its token', floor: 'health', subject: 'me-reuse', connections: 1 },
  { op: 'stateless GET /api/me, each client reuses its token', floor: 'health', subject: 'me-reuse', connections: 32, target: { rps: 0.9 } },
  { op: 'stateless GET /api/me, a different token every request', floor: 'health', subject: 'me-distinct', connections: 32, target: { rps: 0.65 } },
  { op: 'stateless GET /api/me, a different token every request', floor: 'signature-distinct', subject: 'me-distinct', connections: 32 },
  { op: 'strict GET /api/account', floor: 'health', subject: 'account-reuse', connections: 1, delayed: {} },
  { op: 'strict GET /api/account', floor: 'health', subject: 'account-reuse', connections: 32 },
  { op: 'POST /auth/renew over 1,000 users', floor: 'floor-spread', subject: 'renew-spread', connections: 1, target: { p50: 1.25 }, delayed: { flat: true } },
  { op: 'POST /auth/renew over 1,000 users', floor: 'floor-spread', subject: 'renew-spread', connections: 32, target: { rps: 0.9, p50: 1.25 }, delayed: { flat: true } },
  { op: 'POST /auth/renew of one user (32 sessions)', floor: 'floor-one', subject: 'renew-one', connections: 32 },
  // The login's own cost over its hash: the hash budget, which would space these logins out, is
  // off for these requests (the storm rows below measure it).
  { op: 'POST /auth/login (hash budget off)', floor: 'hash', subject: 'login-unbudgeted', connections: 1, amount: LOGINS_PER_RUN, delayed: {} },
  // A renewal of a session bound to a DPoP key, with a fresh proof each, against an unbound renewal
  // of the same users: what binding adds (the proof's check, its jti recorded in the user's object).
  { op: 'POST /auth/renew, bound to a DPoP key, 64 users', floor: 'renew-unbound', subject: 'renew-bound', connections: 1 },
  { op: 'POST /auth/renew, bound to a DPoP key, 64 users', floor: 'renew-unbound', subject: 'renew-bound', connections: 32 },
];
/** Scenarios whose sessions bench/bound.mjs makes through the API; the others need seed(). */
const BOUND_SCENARIOS = new Set(['renew-unbound', 'renew-bound']);
/**
 * The login storm: each subject quiet, then with two logins continuously in flight with the hash
 * budget on (as deployed), then the same with it off, in the same round. Logins are scrypt-bound:
 * without the budget, two in flight keep the isolate's one thread hashing. The target is on the
 * budgeted run against the quiet one.
 */
const STORM_CONNECTIONS = 8;
const STORM_LOGINS_IN_FLIGHT = 2;
const STORMS = [
  { op: 'stateless GET /api/me, each client reuses its token', subject: 'me-reuse', target: { rps: 0.5 } },
  { op: 'POST /auth/renew over 1,000 users', subject: 'renew-spread', target: { rps: 0.5 } },
];
const STORM_SIDES = [
  { side: 'quiet' },
  { side: 'budget', background: { name: 'login', connections: STORM_LOGINS_IN_FLIGHT } },
  { side: 'unbudgeted', background: { name: 'login-unbudgeted', connections: STORM_LOGINS_IN_FLIGHT } },
];
const FLOOR_NAMES = {
  health: 'GET /health',
  'signature-distinct': 'Ed25519 verify of the presented token alone',
  'floor-spread': 'verify + object writes its SQLite + sign, 1,000 keys',
  'floor-one': 'verify + object writes its SQLite + sign, 1 key',
  hash: 'scrypt verify alone',
  'renew-unbound': 'POST /auth/renew, unbound, same users',
};
/**
 * Pairs with `delayed` run their subject a third time, with every D1 call held back by
 * D1_DELAY_MS, right after the subject at 0 ms. `flat`: the delay must not show. This one runs
 * alone, at 0 ms and then delayed: the floor with a D1 write instead of the object's own storage.
 */
const DELAYED_ALONE = {
  op: 'the renewal floor with a D1 write instead of the object\'s own (a renewal\'s shape when its state was in D1)',
  subject: 'shape-d1',
  connections: 1,
};
/** Where a renewal's time goes: the floor's object doing less or more, 1,000 keys, 32 connections. */
const SHAPES = ['shape-call', 'shape-write', 'shape-transaction', 'shape-d1'];
const BREAKDOWN_NAMES = {
  health: 'GET /health (no object, no storage, no crypto)',
  'shape-call': 'object call alone',
  'shape-write': 'object call + 1 write to its own SQLite',
  'floor-spread': 'Ed25519 verify + object call + 1 write to its own SQLite + Ed25519 sign (the floor)',
  'shape-transaction': 'the floor with a renewal\'s transaction (1 read, 2 writes) instead of 1 write',
  'shape-d1': 'the floor with 1 D1 write instead of the object\'s own (a renewal when its state was in D1)',
  'renew-spread': 'POST /auth/renew',
};

/** The order of the delayed rows in the report: renewals first, then what still goes to D1. */
const DELAY_ORDER = ['renew-spread', 'shape-d1', 'account-reuse', 'login-unbudgeted'];

const matches = (name) => !options.only || name.includes(options.only);
const pairs = PAIRS.filter((pair) => matches(pair.subject) || (options.only === 'd1' && pair.delayed));
const delayedAlone = D1_DELAY_MS > 0 && (options.only === 'd1' || matches(DELAYED_ALONE.subject)) ? [DELAYED_ALONE] : [];
const wake = !options.only || options.only === 'wake' || matches('renew-cold');
const breakdownNames = !options.only || options.only === 'shape' ? SHAPES : [];
const runStorms = !options.only || options.only === 'storm';

/** The storm rows: medians over the rounds of each side, and of the ratios taken within a round. */
function stormRows(stormResults) {
  return STORMS.map((storm, index) => {
    const runs = stormResults[index];
    const rpsOf = (side) => median(runs[side].map((run) => run.rps));
    const ratios = (side) => runs[side].map((run, round) => run.rps / runs.quiet[round].rps);
    const background = (side) => runs[side].map((run) => run.background);
    const statusCounts = (side) => {
      const total = {};
      for (const load of background(side)) for (const [status, n] of Object.entries(load.statuses)) total[status] = (total[status] ?? 0) + n;
      return total;
    };
    return {
      ...storm,
      quiet: { rps: rpsOf('quiet'), p50: median(runs.quiet.map((run) => run.p50)), p99: median(runs.quiet.map((run) => run.p99)) },
      ...Object.fromEntries(
        ['budget', 'unbudgeted'].map((side) => [
          side,
          {
            rps: rpsOf(side),
            ratio: median(ratios(side)),
            ratioMin: Math.min(...ratios(side)),
            ratioMax: Math.max(...ratios(side)),
            p50: median(runs[side].map((run) => run.p50)),
            p99: median(runs[side].map((run) => run.p99)),
            loginsPerSecond: median(background(side).map((load) => load.rps)),
            loginP50: median(background(side).map((load) => load.p50)),
            loginStatuses: statusCounts(side),
          },
        ]),
      ),
    };
  });
}

function stormReport(rows, context) {
  const lines = [];
  lines.push(
    `A login storm: each operation at ${STORM_CONNECTIONS} connections, quiet and with ${STORM_LOGINS_IN_FLIGHT} logins continuously in flight, hash budget on (as deployed) and off, side by side in each round (medians of ${context.rounds} rounds; ratios against the quiet run of the same round):`,
  );
  lines.push('');
  lines.push('| operation | quiet req/s | quiet p50 / p99 ms | storm, budget on: req/s | ratio (min–max) | p50 / p99 ms | logins/s (p50 ms) | login answers | storm, budget off: req/s | ratio (min–max) | p50 / p99 ms | logins/s (p50 ms) | target | met |');
  lines.push('|---|---:|---|---:|---|---|---|---|---:|---|---|---|---|---|');
  const answers = (statuses) => Object.entries(statuses).map(([status, n]) => `${n} × ${status}`).join(', ');
  for (const row of rows) {
    const { quiet, budget, unbudgeted } = row;
    const met = budget.ratio >= row.target.rps;
    lines.push(
      [
        '',
        row.op,
        fmt(quiet.rps),
        `${fmt(quiet.p50, 2)} / ${fmt(quiet.p99, 2)}`,
        fmt(budget.rps),
        `**${fmt(budget.ratio, 2)}** (${fmt(budget.ratioMin, 2)}–${fmt(budget.ratioMax, 2)})`,
        `${fmt(budget.p50, 2)} / ${fmt(budget.p99, 2)}`,
        `${fmt(budget.loginsPerSecond, 1)} (${fmt(budget.loginP50)})`,
        answers(budget.loginStatuses),
        fmt(unbudgeted.rps),
        `**${fmt(unbudgeted.ratio, 2)}** (${fmt(unbudgeted.ratioMin, 2)}–${fmt(unbudgeted.ratioMax, 2)})`,
        `${fmt(unbudgeted.p50, 2)} / ${fmt(unbudgeted.p99, 2)}`,
        `${fmt(unbudgeted.loginsPerSecond, 1)} (${fmt(unbudgeted.loginP50)})`,
        `≥ ${row.target.rps}× req/s, budget on`,
        met ? 'yes' : '**no**',
        '',
      ]
        .join(' | ')
        .trim(),
    );
  }
  return lines.join('\n');
}

const log = (...args) => console.error('bench:', ...args);
const postJson = (url, path, body) => requestJson(`${url}${path}`, { method: 'POST', body });

/** Every migration in migrations/, in order: D1 as `wrangler d1 migrations apply` leaves it. */
function migrations() {
  const dir = join(root, 'migrations');
  return readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .sort()
    .map((file) => readFileSync(join(dir, file), 'utf8'));
}

async function seedUsers(url, prefix, count, sessions, evictable = false) {
  const users = [];
  for (let start = 0; start < count; start += 100) {
    const chunk = Array.from({ length: Math.min(100, count - start) }, (_, i) => ({ email: `${prefix}-${start + i}@bench.test`, sessions }));
    users.push(...(await postJson(url, '/bench/seed', { password: PASSWORD, users: chunk, evictable })).users);
  }
  return users;
}

async function seed(url) {
  await postJson(url, '/bench/setup');
  const runId = Math.random().toString(36).slice(2, 8);
  const users = await seedUsers(url, `user-${runId}`, USERS, SESSIONS_PER_USER);
  const [solo] = await seedUsers(url, `solo-${runId}`, 1, SOLO_SESSIONS);
  const evictable = wake ? await seedUsers(url, `evictable-${runId}`, EVICTABLE_USERS, 1, true) : [];
  // The login user is registered through the API: its hash is made exactly as production makes it.
  const loginEmail = `login-${runId}@bench.test`;
  await postJson(url, '/auth/register', { email: loginEmail, password: PASSWORD });

  const reuse = users.slice(0, REUSED_TOKENS).map((user) => user.sessions[1].token);
  const reused = new Set(reuse);
  const distinct = users.flatMap((user) => user.sessions.slice(1).map((session) => session.token)).filter((token) => !reused.has(token));
  const { capacity } = (await requestJson(`${url}/bench/isolate`)).verifiedTokens;
  if (distinct.length <= 2 * capacity) {
    const problem = `${distinct.length} distinct tokens, not more than twice the verified-token cache (${capacity})`;
    if (USERS >= 1000) throw new Error(problem);
    log(`${problem}: the "different token every request" runs will hit it (--users ${USERS})`);
  }
  const session = (user) => ({ sid: user.sessions[0].sessionId, token: user.sessions[0].token });
  return {
    reuse,
    distinct,
    renewSpread: users.map(session),
    renewOne: solo.sessions.map((s) => ({ sid: s.sessionId, token: s.token })),
    renewEvictable: evictable.map(session),
    // The floor presents each key's first token: only its signature is checked, so it never changes.
    floor: users.map((user) => ({ key: user.id, token: user.sessions[0].token })),
    floorOne: { key: solo.id, token: solo.sessions[0].token },
    login: { email: loginEmail, password: PASSWORD },
  };
}

let currentDelayMs = 0;
async function setD1Delay(url, delayMs) {
  if (delayMs === currentDelayMs) return;
  await postJson(url, '/bench/d1', { delayMs });
  currentDelayMs = delayMs;
}

/**
 * One timed run, with what workerd spent on it: CPU (read by the driver at the run's stop), and
 * from the isolate's own counters, D1 calls, verified-token cache hits and objects constructed.
 */
async function measure(driver, url, { delayMs = 0, ...spec }) {
  await setD1Delay(url, delayMs);
  const before = await requestJson(`${url}/bench/isolate`);
  const started = performance.now();
  const result = await driver.run({ ...spec, serverPids: workerdPids() });
  const after = await requestJson(`${url}/bench/isolate`);
  const label = `${spec.name}@${spec.connections}${delayMs ? ` (D1 +${delayMs} ms)` : ''}`;
  if (process.env.BENCH_TRACE) {
    const load = result.background ? `, beside ${result.background.name}: ${JSON.stringify(result.background.statuses)} in ${fmt(result.background.seconds, 1)} s` : '';
    log(`${label}: ${fmt(performance.now() - started)} ms, autocannon ${fmt(result.elapsedMs)} ms, ${result.ok} ok, driver CPU ${fmt((result.driverCpuMs * 1000) / Math.max(1, result.ok))} µs/req, workerd CPU ${fmt((result.serverCpuMs * 1000) / Math.max(1, result.ok))} µs/req${load}`);
  }
  const handled = result.ok + result.non2xx;
  if (result.non2xx > 0 || result.errors > 0 || result.lost.length > 0) {
    log(`${label}: ${result.non2xx} non-2xx, ${result.errors} errors`, JSON.stringify(result.lost.slice(0, 3)));
  }
  return {
    ...result,
    delayMs,
    workerdCpuUsPerRequest: handled > 0 ? (result.serverCpuMs * 1000) / handled : Number.NaN,
    // Share of one core workerd used during the run: near 100 % means the run was CPU-bound.
    workerdBusy: result.serverCpuMs / (result.seconds * 1000),
    // Per request the Worker served, counted by the isolate: requests the client gave up on at the
    // stop still reached D1.
    d1CallsPerRequest: (after.d1.calls - before.d1.calls) / Math.max(1, after.requests - before.requests),
    cacheHits: after.verifiedTokens.hits - before.verifiedTokens.hits,
    cacheMisses: after.verifiedTokens.misses - before.verifiedTokens.misses,
    wakesPerRequest: (after.constructed.evictableUsers - before.constructed.evictableUsers) / Math.max(1, after.requests - before.requests),
  };
}

/** The loops of /bench/loop and how many iterations each runs (about 0.1 to 0.4 s each). */
const LOOPS = {
  subtle: { n: 4000, label: 'Ed25519 verify alone (crypto.subtle.verify)' },
  jose: { n: 4000, label: 'jose compactVerify (JWS parsing + Ed25519)' },
  verify: { n: 4000, label: 'latchkey verifyAccessToken (every check)' },
  cached: { n: 200000, label: 'verified-token cache hit' },
  sign: { n: 4000, label: 'latchkey signAccessToken (Ed25519, as a renewal signs)' },
  'dpop-proof': { n: 2000, label: 'a DPoP proof checked (ES256 key from the proof, signature, claims, ath, thumbprint): what a bound request adds' },
  'app-health': { n: 20000, label: 'the Worker handling GET /health (fetch handler called directly)' },
  'app-health-bearer': { n: 20000, label: 'the same, the request carrying a bearer token' },
  'app-me': { n: 20000, label: 'the Worker handling GET /api/me, token in the cache' },
  'app-me-distinct': { n: 4000, label: 'the Worker handling GET /api/me, a different token each time' },
  'app-renew': { n: 600, label: 'the Worker handling POST /auth/renew, unbound session (a proof signed in the loop, ignored)' },
  'app-renew-bound': { n: 600, label: "the same, the session bound to the proof's key: the difference is what binding costs a renewal" },
  'object-call': { n: 2000, label: 'a call to an object over RPC, doing nothing' },
  'object-floor': { n: 500, label: "the floor's object: 1 write to its own SQLite + Ed25519 sign, over RPC" },
  'object-transaction': { n: 500, label: "the same with a renewal's transaction (1 read, 2 writes) instead of 1 write" },
  'object-transaction-claims': { n: 500, label: 'the same, signed as a renewal signs (signAccessToken over access-token claims)' },
  'object-renew': { n: 500, label: "UserAuthority.renew of one user's session over RPC (the object's part of a renewal)" },
};

async function loops(url) {
  const results = {};
  for (const [op, { n }] of Object.entries(LOOPS)) {
    const pids = workerdPids();
    const before = cpuMs(pids);
    const started = performance.now();
    const body = await requestJson(`${url}/bench/loop?op=${op}&n=${n}`);
    if (body.ok !== n) throw new Error(`loop ${op}: ${JSON.stringify(body)}`);
    results[op] = { wallUs: ((performance.now() - started) * 1000) / n, cpuUs: ((cpuMs(pids) - before) * 1000) / n };
  }
  return results;
}

const runsMedian = (runs, pick) => median(runs.map(pick));

/** The medians of a floor/subject pair over the rounds, and of their per-round ratios. */
function summarize(floor, subject) {
  const ratios = subject.map((run, round) => run.rps / floor[round].rps);
  return {
    floorRps: runsMedian(floor, (run) => run.rps),
    rps: runsMedian(subject, (run) => run.rps),
    ratio: median(ratios),
    ratioMin: Math.min(...ratios),
    ratioMax: Math.max(...ratios),
    floorP50: runsMedian(floor, (run) => run.p50),
    floorP99: runsMedian(floor, (run) => run.p99),
    p50: runsMedian(subject, (run) => run.p50),
    p99: runsMedian(subject, (run) => run.p99),
    p50Ratio: median(subject.map((run, round) => run.p50 / floor[round].p50)),
    // Each side's best round against the other's: load from elsewhere on the machine only ever
    // slows a run down, so the best rounds are the least disturbed ones.
    bestRatio: Math.max(...subject.map((run) => run.rps)) / Math.max(...floor.map((run) => run.rps)),
    bestP50Ratio: Math.min(...subject.map((run) => run.p50)) / Math.min(...floor.map((run) => run.p50)),
    p50Deltas: subject.map((run, round) => run.p50 - floor[round].p50),
    floorCpu: runsMedian(floor, (run) => run.workerdCpuUsPerRequest),
    cpu: runsMedian(subject, (run) => run.workerdCpuUsPerRequest),
    cpuRatio: median(subject.map((run, round) => run.workerdCpuUsPerRequest / floor[round].workerdCpuUsPerRequest)),
    floorBusy: runsMedian(floor, (run) => run.workerdBusy),
    busy: runsMedian(subject, (run) => run.workerdBusy),
    floorD1: runsMedian(floor, (run) => run.d1CallsPerRequest),
    d1: runsMedian(subject, (run) => run.d1CallsPerRequest),
  };
}

const verdict = (checks) => [checks.map((check) => check.text).join(', '), checks.map((check) => (check.met ? 'yes' : '**no**')).join(', ')];

function report({ pairRows, delayRows, wakeRuns, scaling, breakdown, inIsolate, context }) {
  const lines = [];
  const push = (...more) => lines.push(...more);
  if (pairRows.length > 0) {
    push('| operation | conns | floor | floor req/s | req/s | ratio (min–max) | floor p50 / p99 ms | p50 / p99 ms | p50 ratio | best rounds: ratio, p50 ratio | workerd CPU µs/req, floor → op | workerd busy | D1 calls/req | target | met |');
    push('|---|---:|---|---:|---:|---|---|---|---:|---|---|---|---:|---|---|');
    for (const row of pairRows) {
      const checks = [];
      if (row.target?.rps) checks.push({ text: `≥ ${row.target.rps}× req/s`, met: row.ratio >= row.target.rps });
      if (row.target?.p50) checks.push({ text: `p50 ≤ ${row.target.p50}×`, met: row.p50Ratio <= row.target.p50 });
      const cpuCell = row.amount
        ? `${fmt(row.floorCpu / 1000, 1)} ms → ${fmt(row.cpu / 1000, 1)} ms (${fmt(row.cpuRatio, 2)}×)`
        : `${fmt(row.floorCpu)} → ${fmt(row.cpu)} (${fmt(row.cpuRatio, 2)}×)`;
      push(
        [
          '',
          row.op,
          row.connections,
          FLOOR_NAMES[row.floor],
          fmt(row.floorRps, row.floorRps < 100 ? 1 : 0),
          fmt(row.rps, row.rps < 100 ? 1 : 0),
          `**${fmt(row.ratio, 2)}** (${fmt(row.ratioMin, 2)}–${fmt(row.ratioMax, 2)})`,
          `${fmt(row.floorP50, 2)} / ${fmt(row.floorP99, 2)}`,
          `${fmt(row.p50, 2)} / ${fmt(row.p99, 2)}`,
          `**${fmt(row.p50Ratio, 2)}**`,
          `${fmt(row.bestRatio, 2)}, ${fmt(row.bestP50Ratio, 2)}`,
          cpuCell,
          `${fmt(100 * row.floorBusy)} → ${fmt(100 * row.busy)} %`,
          fmt(row.d1, 2),
          ...verdict(checks),
          '',
        ]
          .join(' | ')
          .trim(),
      );
    }
  }
  if (delayRows.length > 0) {
    push('');
    push(`With every D1 call held back by ${context.delayMs} ms, as a D1 primary in another region would hold it (each operation run with D1 at 0 ms, then ${context.delayMs} ms away, in the same round; medians):`);
    push('');
    push(`| operation | conns | p50 ms, D1 local | p50 ms, D1 +${context.delayMs} ms | p50 moved by ms (min–max) | D1 calls/req | expected move (calls × delay) | req/s, local → +${context.delayMs} ms | target | met |`);
    push('|---|---:|---:|---:|---|---:|---:|---|---|---|');
    for (const row of delayRows) {
      const moved = median(row.p50Deltas);
      // At 1 connection the p50 is the request's own time. At 32 it is mostly time queued behind
      // the other 31 (latency = connections / throughput), which a wait that uses no CPU hardly
      // changes: there, only "no D1 call" is a check.
      const checks = row.flat
        ? [
            ...(row.connections === 1 ? [{ text: `moves < ${fmt(context.delayMs / 5, 0)} ms`, met: Math.abs(moved) < context.delayMs / 5 }] : []),
            { text: 'no D1 call', met: row.d1 === 0 && row.floorD1 === 0 },
          ]
        : [];
      push(
        [
          '',
          row.op,
          row.connections,
          fmt(row.floorP50, 2),
          fmt(row.p50, 2),
          `**${fmt(moved, 2)}** (${fmt(Math.min(...row.p50Deltas), 2)}–${fmt(Math.max(...row.p50Deltas), 2)})`,
          fmt(row.d1, 2),
          fmt(row.d1 * context.delayMs, 1),
          `${fmt(row.floorRps, row.floorRps < 100 ? 1 : 0)} → ${fmt(row.rps, row.rps < 100 ? 1 : 0)}`,
          ...verdict(checks),
          '',
        ]
          .join(' | ')
          .trim(),
      );
    }
  }
  if (wakeRuns) {
    const { cold, warm } = wakeRuns;
    push('');
    push(`Renewing a user whose object was evicted (idle since the round before, longer than local workerd keeps an idle object): each of ${EVICTABLE_USERS} users renewed once cold, then at once again warm, 1 connection, every round (medians):`);
    push('');
    push('| renewal | p50 / p99 ms | workerd CPU µs/req | objects constructed per request | D1 calls/req |');
    push('|---|---|---:|---:|---:|');
    for (const [label, runs] of [['object evicted (woken by the renewal)', cold], ['object in memory', warm]]) {
      push(
        `| ${label} | ${fmt(runsMedian(runs, (run) => run.p50), 2)} / ${fmt(runsMedian(runs, (run) => run.p99), 2)} | ${fmt(runsMedian(runs, (run) => run.workerdCpuUsPerRequest))} | ${fmt(runsMedian(runs, (run) => run.wakesPerRequest), 2)} | ${fmt(runsMedian(runs, (run) => run.d1CallsPerRequest), 2)} |`,
      );
    }
    push('');
    push(`Waking costs ${fmt(median(cold.map((run, round) => run.p50 - warm[round].p50)), 2)} ms of p50 and ${fmt(median(cold.map((run, round) => run.workerdCpuUsPerRequest - warm[round].workerdCpuUsPerRequest)))} µs of workerd CPU per renewal (medians of the per-round differences).`);
  }
  if (scaling.some(([, , runs]) => runs)) {
    push('');
    push('Renewals as connections grow: across users they scale until workerd\'s one thread is busy; one user\'s are serialized by its object (medians):');
    push('');
    push('| renewals | conns | req/s | p50 ms | workerd busy (share of one core) |');
    push('|---|---:|---:|---:|---:|');
    for (const [label, connections, runs] of scaling) {
      if (!runs) continue;
      push(`| ${label} | ${connections} | ${fmt(runsMedian(runs, (run) => run.rps))} | ${fmt(runsMedian(runs, (run) => run.p50), 2)} | ${fmt(100 * runsMedian(runs, (run) => run.workerdBusy))} % |`);
    }
  }
  if (Object.keys(breakdown).length > 0) {
    push('');
    push(`Where a renewal's time goes: the floor's object doing less or more, 1,000 keys, 32 connections (medians of ${Math.min(context.rounds, BREAKDOWN_ROUNDS)} rounds; the floor and the renewal from the pairs above):`);
    push('');
    push('| request | req/s | p50 ms | workerd CPU µs/req |');
    push('|---|---:|---:|---:|');
    for (const [name, label] of Object.entries(BREAKDOWN_NAMES)) {
      const runs = breakdown[name];
      if (!runs) continue;
      push(`| ${label} | ${fmt(runsMedian(runs, (run) => run.rps))} | ${fmt(runsMedian(runs, (run) => run.p50), 2)} | ${fmt(runsMedian(runs, (run) => run.workerdCpuUsPerRequest))} |`);
    }
  }
  if (inIsolate.length > 0) {
    push('');
    push(`Inside the isolate, in tight loops (medians of ${inIsolate.length} rounds; CPU of workerd from /proc, wall from the client):`);
    push('');
    push('| operation | µs/op CPU | µs/op wall |');
    push('|---|---:|---:|');
    for (const [op, { label }] of Object.entries(LOOPS)) {
      push(`| ${label} | ${fmt(runsMedian(inIsolate, (round) => round[op].cpuUs), 2)} | ${fmt(runsMedian(inIsolate, (round) => round[op].wallUs), 2)} |`);
    }
  }
  if (context.storms) {
    push('');
    push(context.storms);
  }
  push('');
  push(`Rounds: ${context.rounds}, ${context.seconds} s per timed run, ${LOGINS_PER_RUN} requests per login/hash run.`);
  push(context.distinctCheck);
  push(`Per-isolate counters at the end: ${JSON.stringify(context.isolate)}`);
  push(`Errors: ${context.errors}`);
  return lines.join('\n');
}

async function main() {
  const startedAt = new Date();
  const began = performance.now();
  log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}, ${cpus().length} CPUs`);
  const work = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  // Storage in memory (tmpfs) unless asked otherwise: on a shared machine's disk an fsync took 7 to
  // 14 ms under other people's load, and every run that writes then measured the disk instead of
  // the code (bench/RESULTS.md, "How it is measured").
  const storage = options.persist ?? mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'latchkey-bench-storage-'));
  const signingKeys = JSON.stringify({ keys: [generateSigningKey()] });
  // Tokens that outlive the run, so stateless runs late in it still present unexpired tokens.
  // Every request of the benchmark comes from one address: the per-address limit would refuse the
  // logins after 30 a minute. The storm stands for many addresses, which that limit does not stop;
  // what bounds it is the hash budget, on as deployed.
  const vars = {
    SIGNING_KEYS: signingKeys,
    ACCESS_TOKEN_TTL: '3600',
    ADDRESS_RATE_LIMIT: 'off',
    BENCH_MIGRATIONS: JSON.stringify(migrations()),
  };
  let host;
  let driver;
  try {
    const script = await bundle('bench/worker.ts', join(work, 'worker.js'));
    // Miniflare driven directly: bench/hosts.mjs measures why not `wrangler dev`.
    host = await startMiniflare({
      script,
      port: Number(options.port),
      bindings: vars,
      durableObjects: {
        USER_AUTHORITY: { className: 'BenchUserAuthority', useSQLite: true },
        USER_AUTHORITY_EVICTABLE: { className: 'EvictableUserAuthority', useSQLite: true, evictable: true },
        BENCH_FLOOR: { className: 'BenchFloor', useSQLite: true },
      },
      persistTo: storage,
      inspectorPort: options.inspect ? Number(options['inspector-port']) : undefined,
      keepObjects: true,
    });
    const url = host.url;
    log(`serving at ${url}, workerd pids ${workerdPids().join(' ')}`);
    const seedCpuBefore = cpuMs(workerdPids());
    const seedStarted = performance.now();
    // Only the bound pair asked for: its users are all it needs.
    const onlyBound =
      !runStorms && !wake && breakdownNames.length === 0 && delayedAlone.length === 0 && pairs.every((pair) => BOUND_SCENARIOS.has(pair.subject));
    const sets = onlyBound ? await postJson(url, '/bench/setup').then(() => ({})) : await seed(url);
    if (pairs.some((pair) => BOUND_SCENARIOS.has(pair.subject))) {
      Object.assign(sets, await seedBound(url, { password: PASSWORD, runId: Math.random().toString(36).slice(2, 8) }));
    }
    const seeded = [
      onlyBound ? '' : `${USERS} users x ${SESSIONS_PER_USER} sessions, one user with ${SOLO_SESSIONS}, ${sets.renewEvictable.length} evictable users`,
      sets.renewBound ? `${sets.renewBound.length} users with a bound and an unbound session` : '',
    ]
      .filter(Boolean)
      .join(', ');
    log(
      `seeded ${seeded} in ${fmt((performance.now() - seedStarted) / 1000, 1)} s (workerd CPU ${fmt((cpuMs(workerdPids()) - seedCpuBefore) / 1000, 1)} s)`,
    );
    driver = startDriver();
    await driver.init(url, sets);

    // What each round runs, as units of runs kept together: a pair is its floor then its subject
    // (then its subject with D1 delayed).
    const spec = (entry, name, delayMs = 0) => ({
      name,
      connections: entry.connections,
      delayMs,
      ...(entry.amount ? { amount: entry.amount } : { seconds: SECONDS }),
    });
    const units = [
      ...pairs.map((pair) => ({
        kind: 'pair',
        entry: pair,
        specs: [spec(pair, pair.floor), spec(pair, pair.subject), ...(pair.delayed && D1_DELAY_MS > 0 ? [spec(pair, pair.subject, D1_DELAY_MS)] : [])],
      })),
      ...delayedAlone.map((entry) => ({ kind: 'delayed', entry, specs: [spec(entry, entry.subject), spec(entry, entry.subject, D1_DELAY_MS)] })),
      ...(wake
        ? [{ kind: 'wake', specs: [{ name: 'renew-cold', connections: 1, amount: EVICTABLE_USERS }, { name: 'renew-warm', connections: 1, amount: EVICTABLE_USERS }] }]
        : []),
    ];

    // Warm-up: JIT, and every object the runs address is in memory before anything counts (and
    // stays there: keepObjects), so the floor's objects and the users' objects are equally warm.
    // The evictable users' objects are left alone: their first renewal is a round away.
    const names = new Set([...units.filter((unit) => unit.kind !== 'wake').flatMap((unit) => unit.specs.map((spec) => spec.name)), ...breakdownNames]);
    if (runStorms) for (const name of ['login', 'login-unbudgeted', ...STORMS.map((storm) => storm.subject)]) names.add(name);
    if ([...names].some((name) => name === 'floor-spread' || name.startsWith('shape-'))) {
      await driver.run({ name: 'floor-spread', connections: 32, amount: USERS });
    }
    if (names.has('renew-spread')) await driver.run({ name: 'renew-spread', connections: 32, amount: USERS });
    for (const name of names) {
      if (name === 'hash' || name.startsWith('login')) await driver.run({ name, connections: 1, amount: 2 });
      else await driver.run({ name, connections: 32, seconds: 0.5 });
    }
    await requestJson(`${url}/bench/loop?op=subtle&n=1`);
    log(`warmed up at ${fmt((performance.now() - began) / 1000, 1)} s`);

    const results = units.map((unit) => unit.specs.map(() => []));
    const stormResults = STORMS.map(() => Object.fromEntries(STORM_SIDES.map(({ side }) => [side, []])));
    const inIsolate = [];
    const breakdown = {};
    for (let round = 1; round <= ROUNDS; round++) {
      log(`round ${round}/${ROUNDS}, load average ${loadavg()[0].toFixed(2)}`);
      // Each round starts one unit later, so that no unit always runs right after the same one
      // (a garbage collection owed by a run that churns the cache lands on whichever runs next).
      for (let step = 0; step < units.length; step++) {
        const index = (step + round - 1) % units.length;
        for (const [position, spec] of units[index].specs.entries()) results[index][position].push(await measure(driver, url, spec));
      }
      if (runStorms) {
        for (const [index, storm] of STORMS.entries()) {
          // Each round starts on another side, so that none always follows the same run.
          for (let step = 0; step < STORM_SIDES.length; step++) {
            const { side, background } = STORM_SIDES[(step + round - 1) % STORM_SIDES.length];
            const stormSpec = { name: storm.subject, connections: STORM_CONNECTIONS, seconds: SECONDS, ...(background ? { background } : {}) };
            stormResults[index][side].push(await measure(driver, url, stormSpec));
          }
        }
      }
      // The breakdown and the loops explain the pairs; three rounds of them are enough.
      if (round > BREAKDOWN_ROUNDS || options.only === 'storm') continue;
      for (const name of breakdownNames) {
        breakdown[name] = [...(breakdown[name] ?? []), await measure(driver, url, { name, connections: 32, seconds: Math.min(1, SECONDS) })];
      }
      if (!options.only) inIsolate.push(await loops(url));
    }
    await setD1Delay(url, 0);
    const isolate = await requestJson(`${url}/bench/isolate`);

    let errors = 0;
    const allRuns = [...results.flat(2), ...Object.values(breakdown).flat()];
    for (const run of allRuns) errors += run.non2xx + run.errors + run.lost.length;
    for (const sides of stormResults) for (const runs of Object.values(sides)) for (const run of runs) errors += run.non2xx + run.errors + run.lost.length;
    const storms = runStorms ? stormReport(stormRows(stormResults), { rounds: ROUNDS }) : undefined;
    // The "different token every request" runs must all miss the verified-token cache.
    const distinctRuns = results.flatMap((unitRuns, index) => units[index].specs.flatMap((spec, position) => (spec.name === 'me-distinct' ? unitRuns[position] : [])));
    const distinctHits = distinctRuns.reduce((sum, run) => sum + run.cacheHits, 0);
    const distinctMisses = distinctRuns.reduce((sum, run) => sum + run.cacheMisses, 0);
    if (distinctHits > 0) {
      log(`the verified-token cache answered ${distinctHits} requests of the "different token every request" runs`);
      errors += distinctHits;
    }
    const distinctCheck =
      distinctRuns.length > 0
        ? `Verified-token cache during the ${distinctRuns.length} timed "different token every request" runs: ${distinctHits} hits, ${fmt(distinctMisses)} misses (one cycle of ${fmt(sets.distinct.length)} tokens across all runs, cache capacity ${fmt(isolate.verifiedTokens.capacity)}).`
        : '';

    const pairRows = units.flatMap((unit, index) => (unit.kind === 'pair' ? [{ ...unit.entry, ...summarize(results[index][0], results[index][1]) }] : []));
    // Local against delayed, in the same rounds: a pair's subject and its third run, or a unit's two.
    const delayRows = units
      .flatMap((unit, index) => {
        if (unit.specs.length === 3) return [{ ...unit.entry, ...unit.entry.delayed, ...summarize(results[index][1], results[index][2]) }];
        if (unit.kind === 'delayed') return [{ ...unit.entry, ...summarize(results[index][0], results[index][1]) }];
        return [];
      })
      .sort((a, b) => DELAY_ORDER.indexOf(a.subject) - DELAY_ORDER.indexOf(b.subject));
    const runsOf = (kind, predicate, position) => {
      const index = units.findIndex((unit) => unit.kind === kind && predicate(unit.entry ?? {}));
      return index < 0 ? undefined : results[index][position];
    };
    const renewAt32 = runsOf('pair', (pair) => pair.subject === 'renew-spread' && pair.connections === 32, 1);
    if (Object.keys(breakdown).length > 0) {
      const healthAt32 = runsOf('pair', (pair) => pair.floor === 'health' && pair.connections === 32, 0);
      const floorAt32 = runsOf('pair', (pair) => pair.subject === 'renew-spread' && pair.connections === 32, 0);
      if (healthAt32) breakdown.health = healthAt32;
      if (floorAt32) breakdown['floor-spread'] = floorAt32;
      if (renewAt32) breakdown['renew-spread'] = renewAt32;
    }
    const wakeIndex = units.findIndex((unit) => unit.kind === 'wake');
    const table = report({
      pairRows,
      delayRows,
      wakeRuns: wakeIndex < 0 ? undefined : { cold: results[wakeIndex][0], warm: results[wakeIndex][1] },
      scaling: [
        ['over 1,000 users', 1, runsOf('pair', (pair) => pair.subject === 'renew-spread' && pair.connections === 1, 1)],
        ['over 1,000 users', 32, renewAt32],
        ['of one user', 32, runsOf('pair', (pair) => pair.subject === 'renew-one', 1)],
      ],
      breakdown,
      inIsolate,
      context: { rounds: ROUNDS, seconds: SECONDS, delayMs: D1_DELAY_MS, isolate, errors, distinctCheck, storms },
    });
    const header = [
      `Run ${startedAt.toISOString()}, ${fmt((performance.now() - began) / 1000, 0)} s, Miniflare driven directly` +
        ` (storage in ${options.persist ?? storage.replace(/[^/]*$/, '')})` +
        `; node ${process.version}, workerd ${workerdVersion()},` +
        ` ${cpus().length} CPUs, ${fmt(totalmem() / 2 ** 30, 0)} GiB; load average at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')}.`,
      '',
      '',
    ].join('\n');
    console.log(header + table);
    if (process.env.BENCH_RAW) {
      const raw = units.map((unit, index) => ({
        runs: unit.specs.map((spec) => `${spec.name}@${spec.connections}${spec.delayMs ? `+${spec.delayMs}ms` : ''}`),
        rounds: results[index][0].map((_, round) =>
          results[index].map((runs) => [runs[round].rps, runs[round].p50, runs[round].workerdCpuUsPerRequest].map((x) => Math.round(x * 100) / 100)),
        ),
      }));
      writeFileSync(process.env.BENCH_RAW, JSON.stringify(raw, null, 1));
    }
    if (options.out) writeFileSync(options.out, `${header}${table}\n`);
    if (errors > 0) process.exitCode = 1;
  } finally {
    driver?.stop();
    await host?.stop();
    rmSync(work, { recursive: true, force: true });
    if (!options.persist) rmSync(storage, { recursive: true, force: true });
  }
}

await main();
