// CPU time of local processes, from /proc (Linux): what workerd spends per request.
import { readdirSync, readFileSync } from 'node:fs';

/** Process ids below `pid` (children, grandchildren…), from /proc. */
export function descendants(pid) {
  const found = [];
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift();
    for (const task of safeList(`/proc/${current}/task`)) {
      const children = safeRead(`/proc/${current}/task/${task}/children`).trim();
      for (const child of children ? children.split(/\s+/).map(Number) : []) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/** The workerd processes under `pid`. */
export function workerdPids(pid = process.pid) {
  return descendants(pid).filter((child) => safeRead(`/proc/${child}/comm`).trim() === 'workerd');
}

const TICKS_PER_SECOND = 100;

/** User + system CPU time of the processes, in milliseconds (10 ms resolution). */
export function cpuMs(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const stat = safeRead(`/proc/${pid}/stat`);
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

function safeRead(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function safeList(path) {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
