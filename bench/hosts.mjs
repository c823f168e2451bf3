#!/usr/bin/env node
// `npm run bench:hosts`: which local host adds less overhead of its own, measured on the bare
// Worker (GET /health of src/index.ts): Miniflare driven directly, or `wrangler dev` (which puts
// its own proxy in front of the same workerd). Both serve the same code with request logging off,
// side by side, in interleaved rounds. bench/run.mjs uses the winner; bench/RESULTS.md records why.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateSigningKey } from '../scripts/signing-key.mjs';
import { fmt, median, startDriver } from './common.mjs';
import { bundle, startMiniflare, startWranglerDev } from './host.mjs';
import { descendants, workerdPids } from './proc.mjs';

const { values: options } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '3' } },
});
const ROUNDS = Number(options.rounds);
const SECONDS = Number(options.seconds);

async function main() {
  console.error(`hosts: load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}, ${cpus().length} CPUs`);
  const work = mkdtempSync(join(tmpdir(), 'latchkey-hosts-'));
  const SIGNING_KEYS = JSON.stringify({ keys: [generateSigningKey()] });
  let miniflare;
  let wrangler;
  let driver;
  try {
    const script = await bundle('src/index.ts', join(work, 'index.js'));
    miniflare = await startMiniflare({ script, port: 8821, bindings: { SIGNING_KEYS } });
    const miniflarePids = workerdPids();
    wrangler = await startWranglerDev({ port: 8822, inspectorPort: 9322, vars: { SIGNING_KEYS }, persistTo: join(work, 'state') });
    // Everything wrangler dev runs (its Node process, its proxy and user workerd processes).
    const wranglerPids = [wrangler.pid, ...descendants(wrangler.pid)];
    const hosts = [
      { name: 'Miniflare, driven directly', url: miniflare.url, pids: miniflarePids },
      { name: '`wrangler dev`', url: wrangler.url, pids: wranglerPids },
    ];
    driver = startDriver();
    await driver.init(miniflare.url, {});
    for (const host of hosts) await driver.run({ name: 'health', connections: 32, seconds: 1, target: host.url });

    const runs = new Map(hosts.map((host) => [host.name, { 1: [], 32: [] }]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const connections of [1, 32]) {
        for (const host of hosts) {
          const result = await driver.run({ name: 'health', connections, seconds: SECONDS, target: host.url, serverPids: host.pids });
          const cpuUs = (result.serverCpuMs * 1000) / Math.max(1, result.ok);
          runs.get(host.name)[connections].push({ ...result, cpuUs });
        }
      }
    }

    const lines = ['| host | conns | req/s | p50 / p99 ms | host CPU µs/req (all its processes) |', '|---|---:|---:|---|---:|'];
    for (const connections of [1, 32]) {
      for (const host of hosts) {
        const list = runs.get(host.name)[connections];
        lines.push(
          `| ${host.name} | ${connections} | ${fmt(median(list.map((run) => run.rps)))} | ` +
            `${fmt(median(list.map((run) => run.p50)), 2)} / ${fmt(median(list.map((run) => run.p99)), 2)} | ` +
            `${fmt(median(list.map((run) => run.cpuUs)))} |`,
        );
      }
    }
    console.log(`GET /health of src/index.ts, ${ROUNDS} interleaved rounds of ${SECONDS} s (medians), ${new Date().toISOString()}`);
    console.log(lines.join('\n'));
  } finally {
    driver?.stop();
    await wrangler?.stop();
    await miniflare?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
