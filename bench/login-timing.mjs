#!/usr/bin/env node
// Timing of failed logins: an unknown email and a wrong password for a real account must cost
// the same, or response time tells an attacker which emails have accounts. Runs `npm start` on
// loopback (ports 8812/9312, or LATCHKEY_BENCH_PORT and LATCHKEY_BENCH_INSPECTOR_PORT), interleaves the two kinds one request at a time, and compares the
// medians; exits non-zero if they differ by more than 20%.
//
//   node bench/login-timing.mjs [samples per kind, default 150]
import { startLocalServer } from '../scripts/local-server.mjs';
import { BENCH_LOG_LEVEL, machine, percentile } from './lib/report.mjs';

const SAMPLES = Number(process.argv[2] ?? 150);
const WARMUP = 10;
const ACCOUNTS = 5;
const PASSWORD = 'correct horse battery staple';

// Failures never lock anything out here: the throttle is tested elsewhere, and a 429 costs no hash.
// Every request comes from one address, one at a time: the per-address limit would refuse all but
// 30 a minute, and the hash budget would add its waits to both kinds alike (test/worker/login-storm.test.ts
// proves it treats them alike); both test-only switches are off, so what is timed is the work.
const server = await startLocalServer({
  args: BENCH_LOG_LEVEL,
  port: Number(process.env.LATCHKEY_BENCH_PORT ?? 8812),
  inspectorPort: Number(process.env.LATCHKEY_BENCH_INSPECTOR_PORT ?? 9312),
  vars: { LOGIN_MAX_FAILURES: '1000', ADDRESS_RATE_LIMIT: 'off', HASH_BUDGET: 'off' },
  maxSeconds: 300,
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
  for (let index = 0; index < ACCOUNTS; index++) {
    const email = `timing-${run}-${index}@example.com`;
    const { status, text } = await post('/auth/register', { email, password: PASSWORD });
    if (status !== 201) throw new Error(`register answered ${status}: ${text}`);
    accounts.push(email);
  }

  const samples = { unknown: [], wrong: [] };
  let counter = 0;
  const attempt = async (kind) => {
    counter += 1;
    const body =
      kind === 'unknown'
        ? { email: `nobody-${run}-${counter}@example.com`, password: PASSWORD }
        : { email: accounts[counter % ACCOUNTS], password: `${PASSWORD} (wrong)` };
    const result = await post('/auth/login', body);
    if (result.status !== 401 || !result.text.includes('"invalid_credentials"')) {
      throw new Error(`${kind}: expected 401 invalid_credentials, got ${result.status}: ${result.text}`);
    }
    return result;
  };

  // Same body and status for both: the only possible leak is time.
  const [unknownBody, wrongBody] = [(await attempt('unknown')).text, (await attempt('wrong')).text];
  if (unknownBody !== wrongBody) throw new Error('the two failures answer different bodies');

  for (let index = 0; index < WARMUP; index++) {
    await attempt('unknown');
    await attempt('wrong');
  }
  for (let index = 0; index < SAMPLES; index++) {
    // Alternate which kind goes first, so neither always follows the other.
    const order = index % 2 === 0 ? ['unknown', 'wrong'] : ['wrong', 'unknown'];
    for (const kind of order) samples[kind].push((await attempt(kind)).ms);
  }

  const stats = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    return { p10: percentile(sorted, 10), p50: percentile(sorted, 50), p90: percentile(sorted, 90) };
  };
  const unknown = stats(samples.unknown);
  const wrong = stats(samples.wrong);
  const difference = Math.abs(unknown.p50 - wrong.p50) / Math.min(unknown.p50, wrong.p50);
  const m = await machine();
  const fmt = (n) => n.toFixed(1);
  console.log(`\nlogin timing: ${SAMPLES} samples per kind, interleaved, one request at a time`);
  console.log(`machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, node ${m.node}, ${m.platform}\n`);
  console.log('| failed login | p10 ms | median ms | p90 ms |');
  console.log('|---|---|---|---|');
  console.log(`| unknown email | ${fmt(unknown.p10)} | ${fmt(unknown.p50)} | ${fmt(unknown.p90)} |`);
  console.log(`| wrong password | ${fmt(wrong.p10)} | ${fmt(wrong.p50)} | ${fmt(wrong.p90)} |`);
  console.log(`\nmedians differ by ${(difference * 100).toFixed(1)}% (limit 20%)`);
  process.exitCode = difference <= 0.2 ? 0 : 1;
} finally {
  await server.stop();
}
