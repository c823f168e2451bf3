// CPU time of local processes, from /proc (Linux): what workerd spends per request.
import { readdirSync, readFileSync } from 'node:fs';
import { descendants } from '../scripts/local-server.mjs';

export { descendants };

/** The workerd processes under `pid`. */
export function workerdPids(pid = process.pid) {
  return descendants(pid).filter((child) => safeRead(`/proc/${child}/comm`).trim() === 'workerd');
}

const TICKS_PER_SECOND = 100;

/**
 * CPU time of the processes, in milliseconds: the time every thread spent running, from
 * /proc/PID/task/TID/schedstat (nanoseconds), where the kernel keeps it; else user + system time
 * from /proc/PID/stat, in 10 ms ticks. The tight loops need the first: 500 iterations of 200 µs
 * are 100 ms, and a tick is a tenth of that. (A thread that exits between two readings takes its
 * time with it; workerd's threads live as long as workerd.)
 */
export function cpuMs(pids) {
  if (!HAS_SCHEDSTAT) return cpuMsFromTicks(pids);
  let nanoseconds = 0;
  for (const pid of pids) {
    for (const tid of safeList(`/proc/${pid}/task`)) {
      // Empty for a thread that exited since the listing: it counts as 0.
      nanoseconds += Number(safeRead(`/proc/${pid}/task/${tid}/schedstat`).split(' ')[0]) || 0;
    }
  }
  return nanoseconds / 1e6;
}

const HAS_SCHEDSTAT = safeRead('/proc/self/schedstat') !== '';

function cpuMsFromTicks(pids) {
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
