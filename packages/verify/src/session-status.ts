import type { TokenProblemCode } from './problems.js';

/**
 * Why a token is not accepted by a strict check. The same codes latchkey's own strict routes
 * answer (API.md), so a resource server's problem documents read exactly like latchkey's.
 */
export type SessionFault = Extract<
  TokenProblemCode,
  | 'invalid_token'
  | 'token_expired'
  | 'session_revoked'
  | 'session_expired'
  | 'session_inactive'
  | 'temporarily_unavailable'
>;

/**
 * The answer of latchkey's `sessionStatus` RPC method (the `LatchkeyInternal` entrypoint): `live`
 * when the token verifies and its session is live (API.md), else the code a strict route answers.
 * A plain object, not a thrown error: exceptions lose their class crossing RPC.
 */
export interface SessionStatus {
  status: 'live' | SessionFault;
}

export const SESSION_FAULTS: ReadonlySet<string> = new Set<SessionFault>([
  'invalid_token',
  'token_expired',
  'session_revoked',
  'session_expired',
  'session_inactive',
  'temporarily_unavailable',
]);
