// Shared by bench/run.mjs and bench/hosts.mjs: the driver process and the statistics.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { root } from './host.mjs';

/** The median of the finite values; NaN if there are none. */
export function median(values) {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** A number for the report, with thousands separators; a dash for NaN. */
export function fmt(value, digits = 0) {
  return Number.isFinite(value) ? value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '–';
}

/** Forks bench/drive.mjs, the load generator, and talks to it over IPC. */
export function startDriver() {
  const child = fork(join(root, 'bench', 'drive.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 0;
  const waiting = new Map();
  child.on('message', (message) => {
    const pending = waiting.get(message.id ?? 'ready');
    if (!pending) return;
    waiting.delete(message.id ?? 'ready');
    if (message.type === 'error') pending.reject(new Error(message.error));
    else pending.resolve(message.result);
  });
  const ask = (message, id) =>
    new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      child.send({ ...message, id });
    });
  return {
    init: (url, sets) => ask({ type: 'init', url, sets }, 'ready'),
    run: (spec) => ask({ type: 'run', spec }, nextId++),
    stop: () => {
      if (child.connected) child.send({ type: 'exit' });
    },
  };
}

