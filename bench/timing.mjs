#!/usr/bin/env node
// Timing of the answers that must not tell an attacker which emails have accounts: two kinds of
// request, one for an email with an account and one without, interleaved one request at a time
// against `npm start` on loopback; the medians are compared, and the run exits non-zero if they
// differ by more than the mode allows. Ports: the mode's (below), or LATCHKEY_BENCH_PORT and
// LATCHKEY_BENCH_INSPECTOR_PORT.
//
// - `login`: failed logins, an unknown email against a wrong password for a real account (limit:
//   20%). Failures never lock anything out here: the throttle is tested elsewhere, and a 429 costs
//   no hash.
// - `forgot`: POST /auth/password/forgot for an email with an account and for one without (limit:
//   20% and 1 ms). The known emails are spread over enough accounts that every request for one of
//   them really issues a link and sends a message (the per-email allowance is 3 an hour): the case
//   where the most work follows the answer. With --no-mail, one account takes every known request,
//   so past its first three nothing is sent: a control, where the work after the answer is one D1
//   batch for both kinds.
//
// Every request comes from one address, one at a time: the per-address limit would refuse all but
// 30 a minute, and the hash budget would add its waits to both kinds alike
// (test/worker/login-storm.test.ts proves it treats them alike); both test-only switches are off,
// so what is timed is the work.
//
//   node bench/timing.mjs login|forgot [samples per kind, default 150] [--no-mail]
import { startLocalServer } from '../scripts/local-server.mjs';
import { BENCH_LOG_LEVEL, machine, percentile } from './lib/report.mjs';

const args = process.argv.slice(2);
const MODE = args[0];
const NO_MAIL = args.includes('--no-mail');
const SAMPLES = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 150);
const WARMUP = 10;
const PASSWORD = 'correct horse battery staple';
const MESSAGES_PER_ACCOUNT = 3;

const MODES = {
  login: {
    ports: [8812, 9312],
    vars: { LOGIN_MAX_FAILURES: '1000' },
    maxSeconds: 300,
    accounts: 5,
    emailPrefix: 'timing',
    kinds: ['unknown', 'wrong'],
    request: (kind, { run, accounts, count }) => ({
      path: '/auth/login',
      body:
        kind === 'unknown'
          ? { email: `nobody-${run}-${count(kind)}@example.com`, password: PASSWORD }
          : { email: accounts[count(kind) % accounts.length], password: `${PASSWORD} (wrong)` },
    }),
    answered: ({ status, text }) => status === 401 && text.includes('"invalid_credentials"'),
    expected: '401 invalid_credentials',
    title: 'login timing',
    heading: 'failed login',
    labels: { unknown: 'unknown email', wrong: 'wrong password' },
    limit: '20%',
    passes: ({ difference }) => difference <= 0.2,
  },
  forgot: {
    ports: [8813, 9313],
    vars: {},
    maxSeconds: 420,
    accounts: NO_MAIL ? 1 : Math.ceil((SAMPLES + WARMUP + 1) / MESSAGES_PER_ACCOUNT),
    emailPrefix: 'forgot',
    kinds: ['unknown', 'known'],
    request: (kind, { run, accounts, count }) => ({
      path: '/auth/password/forgot',
      body: { email: kind === 'unknown' ? `nobody-${run}-${count(kind)}@example.com` : accounts[count(kind) % accounts.length] },
    }),
    answered: ({ status }) => status === 202,
    expected: '202',
    title: `forgot-password timing${NO_MAIL ? ' (control: no message sent)' : ''}`,
    heading: 'POST /auth/password/forgot',
    labels: { unknown: 'no account', known: `an account (${NO_MAIL ? 'past its allowance' : 'a message sent'})` },
    limit: '20% and 1 ms',
    passes: ({ difference, gapMs }) => difference <= 0.2 || gapMs <= 1,
  },
};

const mode = MODES[MODE];
if (!mode) {
  console.error('usage: node bench/timing.mjs login|forgot [samples per kind, default 150] [--no-mail]');
  process.exit(2);
}

const server = await startLocalServer({
  port: Number(process.env.LATCHKEY_BENCH_PORT ?? mode.ports[0]),
  inspectorPort: Number(process.env.LATCHKEY_BENCH_INSPECTOR_PORT ?? mode.ports[1]),
  args: BENCH_LOG_LEVEL,
  vars: { ...mode.vars, ADDRESS_RATE_LIMIT: 'off', HASH_BUDGET: 'off' },
  maxSeconds: mode.maxSeconds,
});

async function post(path, body) {
  const started = performance.now();
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, text, ms: performance.now() - started };
}

try {
  const run = Math.random().toString(36).slice(2, 8);
  const accounts = [];
  for (let index = 0; index < mode.accounts; index++) {
    const email = `${mode.emailPrefix}-${run}-${index}@example.com`;
    const { status, text } = await post('/auth/register', { email, password: PASSWORD });
    if (status !== 201) throw new Error(`register answered ${status}: ${text}`);
    accounts.push(email);
  }

  const counters = Object.fromEntries(mode.kinds.map((kind) => [kind, 0]));
  const count = (kind) => counters[kind]++;
  const attempt = async (kind) => {
    const { path, body } = mode.request(kind, { run, accounts, count });
    const result = await post(path, body);
    if (!mode.answered(result)) throw new Error(`${kind}: expected ${mode.expected}, got ${result.status}: ${result.text}`);
    return result;
  };

  // Same body and status for both: the only possible leak is time.
  const [first, second] = mode.kinds;
  if ((await attempt(first)).text !== (await attempt(second)).text) throw new Error('the two kinds answer different bodies');

  for (let index = 0; index < WARMUP; index++) {
    await attempt(first);
    await attempt(second);
  }
  const samples = Object.fromEntries(mode.kinds.map((kind) => [kind, []]));
  for (let index = 0; index < SAMPLES; index++) {
    // Alternate which kind goes first, so neither always follows the other (and the work one kind
    // leaves running after its answer falls on both kinds alike).
    const order = index % 2 === 0 ? [first, second] : [second, first];
    for (const kind of order) samples[kind].push((await attempt(kind)).ms);
  }

  const stats = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    return { p10: percentile(sorted, 10), p50: percentile(sorted, 50), p90: percentile(sorted, 90) };
  };
  const [a, b] = [stats(samples[first]), stats(samples[second])];
  const gapMs = Math.abs(a.p50 - b.p50);
  const difference = gapMs / Math.min(a.p50, b.p50);
  const m = await machine();
  const fmt = (n) => n.toFixed(1);
  console.log(`\n${mode.title}: ${SAMPLES} samples per kind, interleaved, one request at a time`);
  console.log(`machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, node ${m.node}, ${m.platform}\n`);
  console.log(`| ${mode.heading} | p10 ms | median ms | p90 ms |`);
  console.log('|---|---|---|---|');
  for (const [kind, row] of [[first, a], [second, b]]) {
    console.log(`| ${mode.labels[kind]} | ${fmt(row.p10)} | ${fmt(row.p50)} | ${fmt(row.p90)} |`);
  }
  console.log(`\nmedians differ by ${fmt(gapMs)} ms, ${(difference * 100).toFixed(1)}% (limit: ${mode.limit})`);
  process.exitCode = mode.passes({ difference, gapMs }) ? 0 : 1;
} finally {
  await server.stop();
}
