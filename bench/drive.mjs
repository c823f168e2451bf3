// The load generator, a process of its own (forked by bench/run.mjs, driven over IPC), so its CPU
// is not the Worker's. It keeps, across runs, the newest token of every session it renews.
import autocannon from 'autocannon';
import { request } from './http.mjs';
import { cpuMs } from './proc.mjs';

let url;
let sets;
/** Sessions being renewed, by name of the set: { sid, token } each, the token always the newest known. */
const renewable = {};

const json = { 'content-type': 'application/json' };
const bearer = (token) => ({ authorization: `Bearer ${token}` });

function cyclic(items) {
  let next = 0;
  return () => items[next++ % items.length];
}

/**
 * Each request renews the newest token of a session that no other request holds: a session is
 * taken from the queue when its request is built and put back with the token of the answer. An
 * answer that is not 200 takes its session out of play (it would only produce more errors).
 */
function renewalScenario(setName, stats) {
  const queue = renewable[setName];
  const inFlight = new Set();
  return {
    inFlight,
    request: {
      method: 'POST',
      path: '/auth/renew',
      setupRequest(request, context) {
        const session = queue.shift();
        if (!session) throw new Error(`no idle session left in ${setName}: more connections than sessions`);
        context.session = session;
        inFlight.add(session);
        return { ...request, headers: bearer(session.token) };
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
async function settle(setName, inFlight, stats) {
  for (const session of inFlight) {
    const { status, text: body } = await request(`${url}/auth/renew`, { method: 'POST', headers: bearer(session.token) });
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
      const nextToken = cyclic(sets.reuse);
      const path = name === 'me-reuse' ? '/api/me' : '/api/account';
      return {
        requests: [{ method: 'GET', path }],
        setupClient: (client) => client.setHeaders(bearer(nextToken())),
      };
    }
    case 'me-distinct':
    case 'signature-distinct': {
      // More tokens than the cache holds, in a cycle: every request is a token not seen recently.
      const nextToken = cyclic(sets.distinct);
      const path = name === 'me-distinct' ? '/api/me' : '/bench/signature';
      return {
        requests: [{ method: 'GET', path, setupRequest: (request) => ({ ...request, headers: bearer(nextToken()) }) }],
      };
    }
    case 'floor-spread':
    case 'shape-call':
    case 'shape-write':
    case 'shape-read-write':
    case 'shape-batch':
    case 'shape-returning': {
      const nextKey = cyclic(sets.floorKeys);
      const query = name.startsWith('shape-') ? `?shape=${name.slice('shape-'.length)}` : '';
      return {
        requests: [
          {
            method: 'POST',
            path: '/bench/floor/x',
            setupRequest: (request) => ({ ...request, path: `/bench/floor/${nextKey()}${query}` }),
          },
        ],
      };
    }
    case 'floor-one':
      return { requests: [{ method: 'POST', path: `/bench/floor/${sets.oneKey}` }] };
    case 'renew-spread':
    case 'renew-one': {
      const { request, inFlight } = renewalScenario(name, stats);
      return { requests: [request], inFlight };
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
  const { requests, setupClient, inFlight } = scenario(name, stats);
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
  if (inFlight) await settle(name, inFlight, stats);
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
