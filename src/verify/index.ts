/**
 * `latchkey/verify`: verifying latchkey access tokens in another Worker or a Node service.
 * See docs/VERIFYING.md.
 */
export { DEFAULT_REPLAY_CACHE_CAPACITY, type DpopReplayStore, MemoryReplayCache } from '../dpop/replay';
export type { AccessTokenClaims } from '../tokens/claims';
export type { JwkSet } from './jwks';
export { type LatchkeyVariables, latchkeyAuth } from './middleware';
export type { SessionFault, SessionStatus } from './session-status';
export {
  createVerifier,
  type DpopPolicy,
  failureResponse,
  type KeySource,
  type LatchkeyBinding,
  type LatchkeyVerifier,
  type VerifierOptions,
  type VerifyFailure,
  type VerifyOptions,
  type VerifyOutcome,
} from './verifier';
