// The load generator, a process of its own (forked by bench/run.mjs, driven over IPC), so its CPU
// is not the Worker's. It keeps, across runs, the newest token of every session it renews and its
// place in every cycle of tokens.
import autocannon from 'autocannon';
import { boundRenewalHeaders } from './bound.mjs';
import { request } from './http.mjs';
import { cpuMs } from './proc.mjs';

let url;
let sets;
/** Sessions being renewed, by name of the set: { sid, token } each, the token always the newest known. */
const renewable = {};

const json = { 'content-type': 'application/json' };
const bearer = (token) => ({ authorization: `Bearer ${token}` });
/** A renewal's credential: the token, and for a session bound to a key (bench/bound.mjs) a fresh proof. */
const renewalHeaders = (session, path = '/auth/renew') =>
  session.proofJwk ? boundRenewalHeaders(session, `${url}${path}`) : bearer(session.token);

/** Where each scenario is in its cycle, kept across runs: a run starts where the one before stopped. */
const cursors = {};

/**
 * The items in a cycle that never restarts: a scenario's runs together walk through all of them
 * before any comes back. (Restarting at 0 for every run, as this once did, served every run of
 * fewer requests than the verified-token cache holds from the cache.)
 */
function cyclic(scenarioName, items) {
  cursors[scenarioName] ??= 0;
  return () => items[cursors[scenarioName]++ % items.length];
}

/**
 * Each request renews the newest token of a session that no other request holds: a session is
 * taken from the queue when its request is built and put back with the token of the answer. An
 * answer that is not 200 takes its session out of play (it would only produce more errors).
 */
function renewalScenario(setName, stats, path = '/auth/renew') {
  const queue = renewable[setName];
  const inFlight = new Set();
  return {
    inFlight,
    request: {
      method: 'POST',
      path,
      setupRequest(request, context) {
        const session = queue.shift();
        if (!session) throw new Error(`no idle session left in ${setName}: more connections than sessions`);
        context.session = session;
        inFlight.add(session);
        return { ...request, headers: renewalHeaders(session, path) };
      },
      onResponse(status, body, context) {
        const { session } = context;
        inFlight.delete(session);
        if (status === 200) {
          session.token = JSON.parse(body).access_token;
          queue.push(session);
        } else {
          stats.lost.push({ sid: session.sid, status, body: body.slice(0, 200) });
        }
      },
    },
  };
}

/**
 * After a timed run stops, requests still in flight were dropped by the client: the server may or
 * may not have renewed them. Renewing with the token we hold, within REUSE_GRACE, settles it either
 * way (rule 5 if it had not, rule 6's grace if it had) and we hold the newest token again.
 */
async function settle(setName, inFlight, stats, path = '/auth/renew') {
  for (const session of inFlight) {
    const { status, text: body } = await request(`${url}${path}`, { method: 'POST', headers: renewalHeaders(session, path) });
    if (status === 200) {
      session.token = JSON.parse(body).access_token;
      renewable[setName].push(session);
    } else {
      stats.lost.push({ sid: session.sid, status, body: body.slice(0, 200) });
    }
  }
}

function scenario(name, stats) {
  switch (name) {
    case 'health':
      return { requests: [{ method: 'GET', path: '/health' }] };
    case 'me-reuse':
    case 'account-reuse': {
      // Each connection is one client presenting its own token, as real clients do.
      const nextToken = cyclic(name, sets.reuse);
      const path = name === 'me-reuse' ? '/api/me' : '/api/account';
      return {
        requests: [{ method: 'GET', path }],
        setupClient: (client) => client.setHeaders(bearer(nextToken())),
      };
    }
    case 'me-distinct':
    case 'signature-distinct': {
      // More than twice as many tokens as the verified-token cache holds, in one cycle across all
      // runs: a token comes back only after all the others, long after the cache dropped it.
      const nextToken = cyclic(name, sets.distinct);
      const path = name === 'me-distinct' ? '/api/me' : '/bench/signature';
      return {
        requests: [{ method: 'GET', path, setupRequest: (request) => ({ ...request, headers: bearer(nextToken()) }) }],
      };
    }
    case 'floor-spread':
    case 'floor-one':
    case 'shape-call':
    case 'shape-write':
    case 'shape-transaction':
    case 'shape-d1': {
      // Each request presents the token of the key it addresses, as a renewal presents its user's.
      const next = name === 'floor-one' ? () => sets.floorOne : cyclic('floor-spread', sets.floor);
      const query = name.startsWith('shape-') ? `?shape=${name.slice('shape-'.length)}` : '';
      return {
        requests: [
          {
            method: 'POST',
            path: '/bench/floor/x',
            setupRequest: (request) => {
              const { key, token } = next();
              return { ...request, path: `/bench/floor/${key}${query}`, headers: bearer(token) };
            },
          },
        ],
      };
    }
    case 'renew-spread':
    case 'renew-one':
    case 'renew-unbound':
    case 'renew-bound': {
      const { request, inFlight } = renewalScenario(name, stats);
      return { requests: [request], inFlight };
    }
    case 'renew-cold':
    case 'renew-warm': {
      // The same sessions, of users whose objects the runtime may evict: one request each per run.
      const path = '/bench/evictable/auth/renew';
      const { request, inFlight } = renewalScenario('renew-evictable', stats, path);
      return { requests: [request], inFlight, settlePath: path, settleSet: 'renew-evictable' };
    }
    case 'hash':
      return { requests: [{ method: 'POST', path: '/bench/hash', headers: json, body: JSON.stringify({ password: sets.login.password }) }] };
    case 'login':
      // As deployed: the isolate's hash budget admits this login's hash.
      return { requests: [{ method: 'POST', path: '/auth/login', headers: json, body: JSON.stringify(sets.login) }] };
    case 'login-unbudgeted':
      // The same login with the hash budget off for this request (bench/worker.ts reads the header).
      return {
        requests: [{ method: 'POST', path: '/auth/login', headers: { ...json, 'x-bench-hash-budget': 'off' }, body: JSON.stringify(sets.login) }],
      };
    default:
      throw new Error(`unknown scenario ${name}`);
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Load kept up next to a timed run: `connections` requests of scenario `name` always in flight,
 * until `stop()`. Reports what completed while it ran, by status, and their latency.
 */
function backgroundLoad({ name, connections }) {
  const latencies = [];
  const statuses = {};
  const started = performance.now();
  const instance = autocannon(
    { url, connections, pipelining: 1, duration: 3600, sampleInt: 100, requests: scenario(name, { lost: [] }).requests, timeout: 30 },
    () => {},
  );
  instance.on('response', (_client, status, _bytes, responseTimeMs) => {
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status >= 200 && status < 300) latencies.push(responseTimeMs);
  });
  return {
    stop() {
      const seconds = (performance.now() - started) / 1000;
      instance.stop();
      latencies.sort((a, b) => a - b);
      return { name, connections, seconds, statuses, ok: latencies.length, rps: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
    },
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function run({ name, connections, seconds, amount, target = url, serverPids = [], background }) {
  // The background load starts first and settles in, so that it is in flight for the whole run.
  const load = background ? backgroundLoad(background) : undefined;
  if (load) await sleep(background.leadMs ?? 300);
  let stopped;
  const stopLoad = () => {
    stopped ??= load?.stop();
    return stopped;
  };
  try {
    const result = await timedRun({ name, connections, seconds, amount, target, serverPids, atStop: stopLoad });
    return { ...result, ...(load ? { background: stopLoad() } : {}) };
  } finally {
    stopLoad();
  }
}

/** One autocannon run; `atStop` is called the moment it stops, before dropped renewals are settled. */
async function timedRun({ name, connections, seconds, amount, target, serverPids, atStop = () => {} }) {
  const stats = { lost: [] };
  const { requests, setupClient, inFlight, settlePath, settleSet } = scenario(name, stats);
  const latencies = [];
  let non2xx = 0;
  const cpuBefore = process.cpuUsage();
  const serverCpuBefore = cpuMs(serverPids);
  let serverCpuMs = Number.NaN;
  const started = performance.now();
  const result = await new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: target,
        connections,
        pipelining: 1,
        ...(amount ? { amount } : { duration: seconds }),
        // autocannon checks its stop flag at each sample: every 100 ms, not every second, so that
        // a 1.2 s run lasts 1.2 s.
        sampleInt: 100,
        requests,
        ...(setupClient ? { setupClient } : {}),
        timeout: 30,
      },
      (error, done) => {
        // Read at the stop, before settling dropped renewals: their work is not this run's.
        serverCpuMs = cpuMs(serverPids) - serverCpuBefore;
        if (error) reject(error);
        else resolve(done);
      },
    );
    instance.on('response', (_client, status, _bytes, responseTimeMs) => {
      if (status >= 200 && status < 300) latencies.push(responseTimeMs);
      else non2xx++;
    });
  });
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  atStop();
  if (inFlight) await settle(settleSet ?? name, inFlight, stats, settlePath);
  latencies.sort((a, b) => a - b);
  const ok = latencies.length;
  return {
    name,
    connections,
    ok,
    non2xx,
    errors: result.errors + result.timeouts,
    // autocannon's own clock: from the first connection to the stop.
    seconds: result.duration,
    rps: ok / result.duration,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    driverCpuMs: (cpu.user + cpu.system) / 1000,
    serverCpuMs,
    elapsedMs,
    lost: stats.lost,
  };
}

process.on('message', async (message) => {
  try {
    if (message.type === 'init') {
      url = message.url;
      sets = message.sets;
      renewable['renew-spread'] = (sets.renewSpread ?? []).map((session) => ({ ...session }));
      renewable['renew-one'] = (sets.renewOne ?? []).map((session) => ({ ...session }));
      renewable['renew-evictable'] = (sets.renewEvictable ?? []).map((session) => ({ ...session }));
      renewable['renew-unbound'] = (sets.renewUnbound ?? []).map((session) => ({ ...session }));
      renewable['renew-bound'] = (sets.renewBound ?? []).map((session) => ({ ...session }));
      process.send({ type: 'ready' });
    } else if (message.type === 'run') {
      process.send({ type: 'result', id: message.id, result: await run(message.spec) });
    } else if (message.type === 'exit') {
      process.exit(0);
    }
  } catch (error) {
    process.send({ type: 'error', id: message.id, error: String(error?.stack ?? error) });
  }
});
process.on('disconnect', () => process.exit(0));
