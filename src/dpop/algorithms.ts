/**
 * The JWS algorithms a DPoP proof may be signed with: asymmetric only (RFC 9449 §4.3 check 5), and
 * only the two curves latchkey already verifies. `Ed25519` is the fully-specified name of `EdDSA`
 * over Ed25519 (RFC 9864), which current clients (the `dpop` package among them) send.
 */
export const DPOP_ALGORITHMS = ['ES256', 'EdDSA', 'Ed25519'] as const;

export type DpopAlgorithm = (typeof DPOP_ALGORITHMS)[number];

/** The `algs` parameter of a DPoP challenge (RFC 9449 §7.1). */
export const DPOP_ALGS_PARAMETER = `algs="${DPOP_ALGORITHMS.join(' ')}"`;
