#!/usr/bin/env node
// `npm run bench`: latchkey against the floors it cannot beat, side by side, in interleaved rounds.
// Options: --rounds N (7), --seconds S per timed run (1.2), --only NAME (only the pairs whose scenario
// contains NAME: me, account, renew, login, bound; `shape` for the breakdown alone; `storm` for the
// login storm rows alone),
// --out FILE (also write the markdown report there), --inspect (workerd inspector on 9321),
// --persist DIR (keep D1 and Durable Object storage on disk, as `wrangler dev` does, instead of in memory),
// --port P (8821) and --inspector-port Q (9321) where the workerd it starts listens.
// BENCH_RAW=FILE writes every round's req/s and CPU per request of each pair as JSON; BENCH_TRACE=1
// logs each run's duration; BENCH_LOG=1 shows workerd's own output.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateSigningKey } from '../scripts/signing-key.mjs';
import { fmt, median, startDriver } from './common.mjs';
import { bundle, startMiniflare, workerdVersion } from './host.mjs';
import { cpuMs, workerdPids } from './proc.mjs';
import { requestJson } from './http.mjs';
import { seedBound } from './bound.mjs';

const { values: options } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    seconds: { type: 'string', default: '1.2' },
    out: { type: 'string' },
    inspect: { type: 'boolean', default: false },
    persist: { type: 'string' },
    only: { type: 'string' },
    port: { type: 'string', default: '8821' },
    'inspector-port': { type: 'string', default: '9321' },
  },
});
const ROUNDS = Number(options.rounds);
const SECONDS = Number(options.seconds);
const PORT = Number(options.port);
const INSPECTOR_PORT = Number(options['inspector-port']);
const USERS = 1000;
// 5 sessions a user: 5,000 distinct tokens, more than the verified-token cache holds (4,096).
const SESSIONS_PER_USER = 5;
const SOLO_SESSIONS = 32;
const LOGINS_PER_RUN = 8;
const BREAKDOWN_ROUNDS = 3;
const PASSWORD = 'correct horse battery staple';

/** The measured pairs: a floor and the operation measured against it, in the same round. */
const PAIRS = [
  { op: 'stateless GET /api/me, each client reuses its token', floor: 'health', subject: 'me-reuse', connections: 1 },
  { op: 'stateless GET /api/me, each client reuses its token', floor: 'health', subject: 'me-reuse', connections: 32, target: { rps: 0.9 } },
  { op: 'stateless GET /api/me, a different token every request', floor: 'health', subject: 'me-distinct', connections: 32, target: { rps: 0.65 } },
  { op: 'stateless GET /api/me, a different token every request', floor: 'signature-distinct', subject: 'me-distinct', connections: 32 },
  { op: 'strict GET /api/account', floor: 'health', subject: 'account-reuse', connections: 1 },
  { op: 'strict GET /api/account', floor: 'health', subject: 'account-reuse', connections: 32 },
  { op: 'POST /auth/renew over 1,000 users', floor: 'floor-spread', subject: 'renew-spread', connections: 1, target: { p50: 1.3 } },
  // p50 is judged at 1 connection: at 32 the median is mostly time queued behind other requests,
  // which the throughput ratio already measures.
  { op: 'POST /auth/renew over 1,000 users', floor: 'floor-spread', subject: 'renew-spread', connections: 32, target: { rps: 0.75 } },
  { op: 'POST /auth/renew of one user (32 sessions)', floor: 'floor-one', subject: 'renew-one', connections: 32 },
  // The login's own cost over its hash: the hash budget, which would space these logins out, is
  // off for these requests (the storm rows below measure it).
  { op: 'POST /auth/login (hash budget off)', floor: 'hash', subject: 'login-unbudgeted', connections: 1, amount: LOGINS_PER_RUN },
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
const runStorms = !options.only || options.only === 'storm';
/** Where a renewal's storage time goes: the floor's object with less, or more, D1 work (32 connections). */
const SHAPES = ['shape-call', 'shape-write', 'shape-returning', 'shape-batch', 'shape-read-write'];
if (options.only) PAIRS.splice(0, PAIRS.length, ...PAIRS.filter((pair) => pair.subject.includes(options.only)));
const FLOOR_NAMES = {
  health: 'GET /health',
  'signature-distinct': 'Ed25519 verify of the presented token alone',
  'floor-spread': 'DO call + D1 write, 1,000 keys',
  'floor-one': 'DO call + D1 write, 1 key',
  hash: 'scrypt verify alone',
  'renew-unbound': 'POST /auth/renew, unbound, same users',
};

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

function postJson(url, path, body) {
  return requestJson(`${url}${path}`, { method: 'POST', body });
}

async function seed(url) {
  await postJson(url, '/bench/setup');
  const runId = Math.random().toString(36).slice(2, 8);
  const users = [];
  for (let start = 0; start < USERS; start += 100) {
    const chunk = Array.from({ length: Math.min(100, USERS - start) }, (_, i) => ({
      email: `user-${start + i}-${runId}@bench.test`,
      sessions: SESSIONS_PER_USER,
    }));
    users.push(...(await postJson(url, '/bench/seed', { password: PASSWORD, users: chunk })).users);
  }
  const [solo] = (await postJson(url, '/bench/seed', { password: PASSWORD, users: [{ email: `solo-${runId}@bench.test`, sessions: SOLO_SESSIONS }] })).users;
  // The login user is registered through the API: its hash is made exactly as production makes it.
  const loginEmail = `login-${runId}@bench.test`;
  await postJson(url, '/auth/register', { email: loginEmail, password: PASSWORD });
  return {
    reuse: users.slice(0, 64).map((user) => user.sessions[1].token),
    distinct: users.flatMap((user) => user.sessions.map((session) => session.token)),
    renewSpread: users.map((user) => ({ sid: user.sessions[0].sessionId, token: user.sessions[0].token })),
    renewOne: solo.sessions.map((session) => ({ sid: session.sessionId, token: session.token })),
    floorKeys: users.map((user) => user.id),
    oneKey: solo.id,
    login: { email: loginEmail, password: PASSWORD },
  };
}

/** One timed run, with the CPU time workerd spent on it (read by the driver at the run's stop). */
async function measure(driver, spec) {
  const started = performance.now();
  const result = await driver.run({ ...spec, serverPids: workerdPids() });
  if (process.env.BENCH_TRACE) {
    const load = result.background ? `, beside ${result.background.name}: ${JSON.stringify(result.background.statuses)} in ${fmt(result.background.seconds, 1)} s` : '';
    log(`${spec.name}@${spec.connections}: ${fmt(performance.now() - started)} ms, autocannon ${fmt(result.elapsedMs)} ms, ${result.ok} ok${load}`);
  }
  const handled = result.ok + result.non2xx;
  if (result.non2xx > 0 || result.errors > 0 || result.lost.length > 0) {
    log(`${spec.name}@${spec.connections}: ${result.non2xx} non-2xx, ${result.errors} errors`, JSON.stringify(result.lost.slice(0, 3)));
  }
  return {
    ...result,
    workerdCpuUsPerRequest: handled > 0 ? (result.serverCpuMs * 1000) / handled : Number.NaN,
    // Share of one core workerd used during the run: near 100 % means the run was CPU-bound.
    workerdBusy: result.serverCpuMs / (result.seconds * 1000),
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
  'app-renew-bound': { n: 600, label: 'the same, the session bound to the proof\'s key: the difference is what binding costs a renewal' },
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

const BREAKDOWN_NAMES = {
  health: 'GET /health (no object, no D1)',
  'shape-call': 'object call, no D1',
  'shape-write': 'object call + 1 D1 write by primary key (the floor)',
  'shape-returning': 'object call + 1 guarded D1 write returning the row (the shape of a renewal\'s statement)',
  'shape-batch': 'object call + D1 read and write in one batch (1 round trip)',
  'shape-read-write': 'object call + D1 read, then write (2 round trips: renewal before)',
  'renew-spread': 'POST /auth/renew',
};

function report(rows, inIsolate, breakdown, scaling, context) {
  const lines = [];
  if (rows.length > 0) {
    lines.push(`| operation | conns | floor | floor req/s | req/s | ratio (min–max) | floor p50 / p99 ms | p50 / p99 ms | p50 ratio | workerd CPU µs/req, floor → op | workerd busy | target | met |`);
    lines.push('|---|---:|---|---:|---:|---|---|---|---:|---|---|---|---|');
  }
  for (const row of rows) {
    const checks = [];
    if (row.target?.rps) checks.push({ text: `≥ ${row.target.rps}× req/s`, met: row.ratio >= row.target.rps });
    if (row.target?.p50) checks.push({ text: `p50 ≤ ${row.target.p50}×`, met: row.p50Ratio <= row.target.p50 });
    const cpuCell = row.amount
      ? `${fmt(row.floorCpu / 1000, 1)} ms → ${fmt(row.cpu / 1000, 1)} ms (${fmt(row.cpuRatio, 2)}×)`
      : `${fmt(row.floorCpu)} → ${fmt(row.cpu)} (${fmt(row.cpuRatio, 2)}×)`;
    const busyCell = `${fmt(100 * row.floorBusy)} → ${fmt(100 * row.busy)} %`;
    lines.push(
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
        fmt(row.p50Ratio, 2),
        cpuCell,
        busyCell,
        checks.map((check) => check.text).join(', ') || '',
        checks.map((check) => (check.met ? 'yes' : '**no**')).join(', ') || '',
        '',
      ]
        .join(' | ')
        .trim(),
    );
  }
  if (Object.values(scaling).some(Boolean)) {
    lines.push('');
    lines.push('Renewals as connections grow: across users they scale until workerd\'s one thread is busy; one user\'s are serialized by its object (medians):');
    lines.push('');
    lines.push('| renewals | conns | req/s | p50 ms | workerd busy (share of one core) |');
    lines.push('|---|---:|---:|---:|---:|');
    for (const [key, runs] of Object.entries(scaling)) {
      if (!runs) continue;
      const [name, connections] = key.split(' ');
      const label = name === 'renew-spread' ? 'over 1,000 users' : 'of one user';
      lines.push(`| ${label} | ${connections} | ${fmt(median(runs.map((run) => run.rps)))} | ${fmt(median(runs.map((run) => run.p50)), 2)} | ${fmt(100 * median(runs.map((run) => run.workerdBusy)))} % |`);
    }
  }
  if (inIsolate.length > 0) {
    lines.push('');
    lines.push(`Inside the isolate, in tight loops (medians of ${inIsolate.length} rounds; CPU of workerd from /proc, wall from the client):`);
    lines.push('');
    lines.push('| operation | µs/op CPU | µs/op wall |');
    lines.push('|---|---:|---:|');
    for (const [op, { label }] of Object.entries(LOOPS)) {
      lines.push(`| ${label} | ${fmt(median(inIsolate.map((round) => round[op].cpuUs)), 2)} | ${fmt(median(inIsolate.map((round) => round[op].wallUs)), 2)} |`);
    }
  }
  if (Object.keys(breakdown).length > 0) {
    lines.push('');
    lines.push(`Where a renewal's time goes: the floor's object doing less or more D1 work, 1,000 keys, 32 connections (medians of ${Math.min(context.rounds, BREAKDOWN_ROUNDS)} rounds):`);
    lines.push('');
    lines.push('| request | req/s | p50 ms | workerd CPU µs/req |');
    lines.push('|---|---:|---:|---:|');
    for (const [name, label] of Object.entries(BREAKDOWN_NAMES)) {
      const runs = breakdown[name];
      if (!runs) continue;
      lines.push(`| ${label} | ${fmt(median(runs.map((run) => run.rps)))} | ${fmt(median(runs.map((run) => run.p50)), 2)} | ${fmt(median(runs.map((run) => run.workerdCpuUsPerRequest)))} |`);
    }
  }
  if (context.storms) {
    lines.push('');
    lines.push(context.storms);
  }
  lines.push('');
  lines.push(`Rounds: ${context.rounds}, ${context.seconds} s per timed run, ${LOGINS_PER_RUN} requests per login/hash run.`);
  lines.push(`Per-isolate caches: ${JSON.stringify(context.isolate)}`);
  lines.push(`Errors: ${context.errors}`);
  return lines.join('\n');
}

async function main() {
  const startedAt = new Date();
  const began = performance.now();
  log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}, ${cpus().length} CPUs`);
  const work = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  const signingKeys = JSON.stringify({ keys: [generateSigningKey()] });
  // Tokens that outlive the run, so stateless runs late in it still present unexpired tokens.
  // Every request of the benchmark comes from one address: the per-address limit would refuse the
  // logins after 30 a minute. The storm stands for many addresses, which that limit does not stop;
  // what bounds it is the hash budget, on as deployed.
  const vars = { SIGNING_KEYS: signingKeys, ACCESS_TOKEN_TTL: '3600', ADDRESS_RATE_LIMIT: 'off' };
  let host;
  let driver;
  try {
    const script = await bundle('bench/worker.ts', join(work, 'worker.js'));
    // Miniflare driven directly: bench/hosts.mjs measures why not `wrangler dev`.
    host = await startMiniflare({
      script,
      port: PORT,
      bindings: vars,
      durableObjects: { BENCH_FLOOR: { className: 'BenchFloor', useSQLite: true } },
      persistTo: options.persist,
      inspectorPort: options.inspect ? INSPECTOR_PORT : undefined,
      keepObjects: true,
    });
    log(`serving at ${host.url}, workerd pids ${workerdPids().join(' ')}`);
    const scenarios = PAIRS.flatMap((pair) => [pair.floor, pair.subject]);
    const onlyBound = !runStorms && options.only !== 'shape' && scenarios.every((name) => BOUND_SCENARIOS.has(name));
    const sets = onlyBound ? await postJson(host.url, '/bench/setup').then(() => ({})) : await seed(host.url);
    if (scenarios.some((name) => BOUND_SCENARIOS.has(name))) {
      Object.assign(sets, await seedBound(host.url, { password: PASSWORD, runId: Math.random().toString(36).slice(2, 8) }));
    }
    const seeded = [onlyBound ? '' : `${USERS} users x ${SESSIONS_PER_USER} sessions and one user with ${SOLO_SESSIONS}`, sets.renewBound ? `${sets.renewBound.length} users with a bound and an unbound session` : '']
      .filter(Boolean)
      .join(', ');
    log(`seeded ${seeded} in ${fmt((performance.now() - began) / 1000, 1)} s`);
    driver = startDriver();
    await driver.init(host.url, sets);

    // Warm-up: JIT, and every object the runs address is in memory before anything counts (and
    // stays there: keepObjects), so the floor's objects and the users' objects are equally warm.
    const breakdownNames = !options.only || options.only === 'shape' ? SHAPES : [];
    const names = new Set([...PAIRS.flatMap((pair) => [pair.floor, pair.subject]), ...breakdownNames]);
    if (runStorms) for (const name of ['login', 'login-unbudgeted', ...STORMS.map((storm) => storm.subject)]) names.add(name);
    // One request per key first: every floor object and every user's object wakes up here.
    if ([...names].some((name) => name === 'floor-spread' || name.startsWith('shape-'))) {
      await driver.run({ name: 'floor-spread', connections: 32, amount: USERS });
    }
    if (names.has('renew-spread')) await driver.run({ name: 'renew-spread', connections: 32, amount: USERS });
    for (const name of names) {
      if (name === 'hash' || name.startsWith('login')) await driver.run({ name, connections: 1, amount: 2 });
      else await driver.run({ name, connections: 32, seconds: 0.5 });
    }
    await requestJson(`${host.url}/bench/loop?op=subtle&n=1`);
    log(`warmed up at ${fmt((performance.now() - began) / 1000, 1)} s`);

    const results = PAIRS.map(() => ({ floor: [], subject: [] }));
    const stormResults = STORMS.map(() => Object.fromEntries(STORM_SIDES.map(({ side }) => [side, []])));
    const inIsolate = [];
    const breakdown = {};
    for (let round = 1; round <= ROUNDS; round++) {
      log(`round ${round}/${ROUNDS}, load average ${loadavg()[0].toFixed(2)}`);
      // Each round starts one pair later, so that no pair always runs right after the same one
      // (a garbage collection owed by a run that churns the cache lands on whichever runs next).
      for (let step = 0; step < PAIRS.length; step++) {
        const index = (step + round - 1) % PAIRS.length;
        const pair = PAIRS[index];
        const spec = (name) => (pair.amount ? { name, connections: pair.connections, amount: pair.amount } : { name, connections: pair.connections, seconds: SECONDS });
        results[index].floor.push(await measure(driver, spec(pair.floor)));
        results[index].subject.push(await measure(driver, spec(pair.subject)));
      }
      if (runStorms) {
        for (const [index, storm] of STORMS.entries()) {
          // Each round starts on another side, so that none always follows the same run.
          for (let step = 0; step < STORM_SIDES.length; step++) {
            const { side, background } = STORM_SIDES[(step + round - 1) % STORM_SIDES.length];
            const spec = { name: storm.subject, connections: STORM_CONNECTIONS, seconds: SECONDS, ...(background ? { background } : {}) };
            stormResults[index][side].push(await measure(driver, spec));
          }
        }
      }
      // The breakdown and the loops explain the pairs; three rounds of them are enough.
      if (round > BREAKDOWN_ROUNDS || options.only === 'storm') continue;
      for (const name of breakdownNames) {
        breakdown[name] = [...(breakdown[name] ?? []), await measure(driver, { name, connections: 32, seconds: Math.min(1, SECONDS) })];
      }
      inIsolate.push(await loops(host.url));
    }
    const isolate = await requestJson(`${host.url}/bench/isolate`);

    let errors = 0;
    const rows = PAIRS.map((pair, index) => {
      const { floor, subject } = results[index];
      for (const run of [...floor, ...subject]) errors += run.non2xx + run.errors;
      const ratios = subject.map((run, round) => run.rps / floor[round].rps);
      const p50Ratios = subject.map((run, round) => run.p50 / floor[round].p50);
      return {
        ...pair,
        floorRps: median(floor.map((run) => run.rps)),
        rps: median(subject.map((run) => run.rps)),
        ratio: median(ratios),
        ratioMin: Math.min(...ratios),
        ratioMax: Math.max(...ratios),
        floorP50: median(floor.map((run) => run.p50)),
        floorP99: median(floor.map((run) => run.p99)),
        p50: median(subject.map((run) => run.p50)),
        p99: median(subject.map((run) => run.p99)),
        p50Ratio: median(p50Ratios),
        floorCpu: median(floor.map((run) => run.workerdCpuUsPerRequest)),
        cpu: median(subject.map((run) => run.workerdCpuUsPerRequest)),
        cpuRatio: median(subject.map((run, round) => run.workerdCpuUsPerRequest / floor[round].workerdCpuUsPerRequest)),
        floorBusy: median(floor.map((run) => run.workerdBusy)),
        busy: median(subject.map((run) => run.workerdBusy)),
        driverCpu: median(subject.map((run) => (run.driverCpuMs * 1000) / Math.max(1, run.ok))),
      };
    });
    for (const runs of Object.values(breakdown)) for (const run of runs) errors += run.non2xx + run.errors;
    const runsOf = (predicate, side) => results[PAIRS.findIndex(predicate)]?.[side];
    const healthAt32 = runsOf((pair) => pair.floor === 'health' && pair.connections === 32, 'floor');
    const renewAt32 = runsOf((pair) => pair.subject === 'renew-spread' && pair.connections === 32, 'subject');
    if (Object.keys(breakdown).length > 0) {
      if (healthAt32) breakdown.health = healthAt32;
      if (renewAt32) breakdown['renew-spread'] = renewAt32;
    }
    const scaling = {
      'renew-spread 1': runsOf((pair) => pair.subject === 'renew-spread' && pair.connections === 1, 'subject'),
      'renew-spread 32': renewAt32,
      'renew-one 32': runsOf((pair) => pair.subject === 'renew-one', 'subject'),
    };
    for (const sides of stormResults) for (const runs of Object.values(sides)) for (const run of runs) errors += run.non2xx + run.errors;
    const storms = runStorms ? stormReport(stormRows(stormResults), { rounds: ROUNDS }) : undefined;
    const table = report(rows, inIsolate, breakdown, scaling, { rounds: ROUNDS, seconds: SECONDS, isolate, errors, storms });
    const header = [
      `Run ${startedAt.toISOString()}, ${fmt((performance.now() - began) / 1000, 0)} s, Miniflare driven directly` +
        `${options.persist ? ' (storage on disk)' : ' (storage in memory)'}; node ${process.version}, workerd ${workerdVersion()},` +
        ` ${cpus().length} CPUs, ${fmt(totalmem() / 2 ** 30, 0)} GiB; load average at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')}.`,
      '',
    ].join('\n');
    console.log(header + table);
    if (process.env.BENCH_RAW) {
      const raw = PAIRS.map((pair, index) => ({
        pair: `${pair.subject}@${pair.connections}`,
        rounds: results[index].floor.map((floor, round) => {
          const subject = results[index].subject[round];
          return [floor.rps, subject.rps, floor.workerdCpuUsPerRequest, subject.workerdCpuUsPerRequest].map(Math.round);
        }),
      }));
      writeFileSync(process.env.BENCH_RAW, JSON.stringify(raw, null, 1));
    }
    if (options.out) writeFileSync(options.out, `${header}${table}\n`);
    if (errors > 0) process.exitCode = 1;
  } finally {
    driver?.stop();
    await host?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
