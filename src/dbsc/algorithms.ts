/**
 * The algorithms a DBSC key may use: the two the draft allows besides "none" (a session without a
 * key, which would bind nothing), in the order latchkey offers them. Browsers pick the first they
 * support; Chromium's software and TPM keys are ES256.
 */
export const DBSC_ALGORITHMS = ['ES256', 'RS256'] as const;

export type DbscAlgorithm = (typeof DBSC_ALGORITHMS)[number];

export function isDbscAlgorithm(value: unknown): value is DbscAlgorithm {
  return (DBSC_ALGORITHMS as readonly unknown[]).includes(value);
}
