#!/usr/bin/env node
// Timing of POST /auth/password/forgot: asking for a reset link for an email with an account and
// for one without must answer alike, body and time, or the route tells an attacker which emails
// have accounts. Runs `npm start` on loopback (ports 8813/9313, or LATCHKEY_BENCH_PORT and
// LATCHKEY_BENCH_INSPECTOR_PORT), interleaves the two kinds one request at a time, compares the
// medians, and exits non-zero if they differ by more than 20% and more than 1 ms.
//
// The known emails are spread over enough accounts that every request for one of them really
// issues a link and sends a message (the per-email allowance is 3 an hour): the case where the
// most work follows the answer. With --no-mail, one account takes every known request, so past its
// first three nothing is sent: a control, where the work after the answer is one D1 batch for
// both kinds.
//
//   node bench/forgot-timing.mjs [samples per kind, default 150] [--no-mail]
import { startLocalServer } from '../scripts/local-server.mjs';
import { BENCH_LOG_LEVEL, machine, percentile } from './lib/report.mjs';

const args = process.argv.slice(2);
const NO_MAIL = args.includes('--no-mail');
const SAMPLES = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 150);
const WARMUP = 10;
const MESSAGES_PER_ACCOUNT = 3;
const ACCOUNTS = NO_MAIL ? 1 : Math.ceil((SAMPLES + WARMUP + 1) / MESSAGES_PER_ACCOUNT);
const PASSWORD = 'correct horse battery staple';

// One address sends every request here: the per-address limit (tested elsewhere) is off, and so
// is the hash budget, which would only make the sign-ups wait.
const server = await startLocalServer({
  args: BENCH_LOG_LEVEL,
  port: Number(process.env.LATCHKEY_BENCH_PORT ?? 8813),
  inspectorPort: Number(process.env.LATCHKEY_BENCH_INSPECTOR_PORT ?? 9313),
  vars: { ADDRESS_RATE_LIMIT: 'off', HASH_BUDGET: 'off' },
  maxSeconds: 420,
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
    const email = `forgot-${run}-${index}@example.com`;
    const { status, text } = await post('/auth/register', { email, password: PASSWORD });
    if (status !== 201) throw new Error(`register answered ${status}: ${text}`);
    accounts.push(email);
  }

  const samples = { unknown: [], known: [] };
  let unknownCounter = 0;
  let knownCounter = 0;
  const attempt = async (kind) => {
    const email =
      kind === 'unknown' ? `nobody-${run}-${unknownCounter++}@example.com` : accounts[knownCounter++ % ACCOUNTS];
    const result = await post('/auth/password/forgot', { email });
    if (result.status !== 202) throw new Error(`${kind}: expected 202, got ${result.status}: ${result.text}`);
    return result;
  };

  // Same body and status for both: the only possible leak is time.
  const [unknownBody, knownBody] = [(await attempt('unknown')).text, (await attempt('known')).text];
  if (unknownBody !== knownBody) throw new Error('the two kinds answer different bodies');

  for (let index = 0; index < WARMUP; index++) {
    await attempt('unknown');
    await attempt('known');
  }
  for (let index = 0; index < SAMPLES; index++) {
    // Alternate which kind goes first, so neither always follows the other (and the work a known
    // email leaves running after its answer falls on both kinds alike).
    const order = index % 2 === 0 ? ['unknown', 'known'] : ['known', 'unknown'];
    for (const kind of order) samples[kind].push((await attempt(kind)).ms);
  }

  const stats = (values) => {
    const sorted = [...values].sort((a, b) => a - b);
    return { p10: percentile(sorted, 10), p50: percentile(sorted, 50), p90: percentile(sorted, 90) };
  };
  const unknown = stats(samples.unknown);
  const known = stats(samples.known);
  const gapMs = Math.abs(unknown.p50 - known.p50);
  const difference = gapMs / Math.min(unknown.p50, known.p50);
  const m = await machine();
  const fmt = (n) => n.toFixed(1);
  console.log(
    `\nforgot-password timing: ${SAMPLES} samples per kind, interleaved, one request at a time${NO_MAIL ? ' (control: no message sent)' : ''}`,
  );
  console.log(`machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, node ${m.node}, ${m.platform}\n`);
  console.log('| POST /auth/password/forgot | p10 ms | median ms | p90 ms |');
  console.log('|---|---|---|---|');
  console.log(`| no account | ${fmt(unknown.p10)} | ${fmt(unknown.p50)} | ${fmt(unknown.p90)} |`);
  console.log(`| an account (${NO_MAIL ? 'past its allowance' : 'a message sent'}) | ${fmt(known.p10)} | ${fmt(known.p50)} | ${fmt(known.p90)} |`);
  console.log(`\nmedians differ by ${fmt(gapMs)} ms, ${(difference * 100).toFixed(1)}% (limit: 20% and 1 ms)`);
  process.exitCode = difference <= 0.2 || gapMs <= 1 ? 0 : 1;
} finally {
  await server.stop();
}
