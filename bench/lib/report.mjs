// Figures for the benchmarks' reports, and how quiet their servers are.

/** wrangler dev's log level for a benchmark's server: errors only, unless LATCHKEY_BENCH_LOG_LEVEL says. */
export const BENCH_LOG_LEVEL = ['--log-level', process.env.LATCHKEY_BENCH_LOG_LEVEL ?? 'error'];

/** Percentile of sorted numbers (nearest rank). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** The machine, for results files. */
export async function machine() {
  const os = await import('node:os');
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}
