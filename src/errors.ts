/**
 * Every failure latchkey answers is an `ApiError` with a stable `code` from the closed union
 * below (API.md). One handler turns it into an RFC 9457 problem document; the wire text is fixed
 * per code, so nothing internal (a token, a SQL message, a stack) can leak into an answer.
 */

import {
  type ChallengeScheme,
  type ProblemSpec,
  renderProblem,
  TOKEN_PROBLEMS,
  type TokenProblemCode,
  tokenChallenge,
} from '../packages/verify/src/problems';
import { TRANSIENT_RETRY_AFTER_SECONDS } from '../packages/verify/src/platform';

export type { ChallengeScheme };

export type ErrorCode =
  | 'invalid_request'
  | 'payload_too_large'
  | 'email_taken'
  | 'invalid_credentials'
  | 'passkey_rejected'
  | 'too_many_attempts'
  | 'missing_token'
  | 'invalid_token'
  | 'token_expired'
  | 'session_inactive'
  | 'session_revoked'
  | 'session_expired'
  | 'token_reused'
  | 'invalid_dpop_proof'
  | 'invalid_dbsc_proof'
  | 'dbsc_proof_required'
  | 'unauthorized'
  | 'forbidden_origin'
  | 'email_unverified'
  | 'email_already_verified'
  | 'invalid_reset_token'
  | 'invalid_verification_token'
  | 'not_found'
  | 'temporarily_unavailable'
  | 'internal_error';

/**
 * The codes about tokens are worded once, for latchkey and for every verifier
 * (packages/verify/src/problems.ts). The `Pick` compiles only while each of them is one of these.
 */
const TOKEN_PROBLEMS_OF_LATCHKEY: Pick<Record<ErrorCode, ProblemSpec>, TokenProblemCode> = TOKEN_PROBLEMS;

const PROBLEMS = {
  ...TOKEN_PROBLEMS_OF_LATCHKEY,
  invalid_request: { status: 400, title: 'Invalid request', detail: 'The request is malformed.' },
  payload_too_large: { status: 413, title: 'Payload too large', detail: 'Request bodies are limited to 16 KiB.' },
  email_taken: { status: 409, title: 'Email taken', detail: 'An account with this email already exists.' },
  // One answer for every refused sign-in, by password or by passkey: which check failed (an
  // unknown email, a wrong password, an unknown passkey, a spent challenge, a bad signature) is
  // not the caller's to learn.
  invalid_credentials: {
    status: 401,
    title: 'Invalid credentials',
    detail: 'The email or password is wrong, or the passkey was not accepted.',
  },
  passkey_rejected: {
    status: 400,
    title: 'Passkey rejected',
    detail: 'The passkey could not be registered. Ask for new options and try again.',
  },
  // One code for both throttles of the password routes (per email and address, and per address
  // alone): clients act on it the same way, and the answer does not say which one tripped.
  too_many_attempts: {
    status: 429,
    title: 'Too many attempts',
    detail: 'Too many attempts. Try again after the time given in Retry-After.',
  },
  // A refused DBSC registration. 400, not 401: a 4xx tells the browser to give up registering,
  // and the session's cookie stays as it was.
  invalid_dbsc_proof: {
    status: 400,
    title: 'Invalid DBSC proof',
    detail: 'The registration proof is not valid for this session: sign in again to get a fresh challenge.',
  },
  // The refresh URL's request for a proof. 403 is the one status on which the browser signs the
  // challenge in Secure-Session-Challenge and tries again; any other 4xx would end its session.
  dbsc_proof_required: {
    status: 403,
    title: 'Proof of the session key required',
    detail: 'Sign the challenge in Secure-Session-Challenge with the session key and refresh again.',
  },
  unauthorized: { status: 401, title: 'Unauthorized', detail: 'Valid administrator credentials are required.' },
  forbidden_origin: {
    status: 403,
    title: 'Forbidden origin',
    detail: 'Cookie-authenticated requests that change state must come from an allowed Origin.',
  },
  email_already_verified: { status: 409, title: 'Email already verified', detail: 'This email address is already verified.' },
  // One answer for a link that is unknown, used, expired, meant for another flow or made useless
  // by a password change: which of them it was would help nobody but someone probing links.
  invalid_reset_token: {
    status: 400,
    title: 'Invalid reset link',
    detail: 'This password-reset link is invalid, expired or already used. Ask for a new one.',
  },
  invalid_verification_token: {
    status: 400,
    title: 'Invalid verification link',
    detail: 'This verification link is invalid, expired or already used. Ask for a new one.',
  },
  not_found: { status: 404, title: 'Not found', detail: 'No such resource.' },
  internal_error: { status: 500, title: 'Internal error', detail: 'An unexpected error occurred.' },
} as const satisfies Record<ErrorCode, ProblemSpec>;

export interface ApiErrorOptions {
  /** Replaces the fixed detail; only for `invalid_request`, where it names the faulty field. */
  detail?: string;
  /** Seconds, for 429 and 503. */
  retryAfterSeconds?: number;
  /**
   * The scheme of the `WWW-Authenticate` challenge on a 401 about a user's token: the scheme the
   * request presented its token with, since a client that sent `Authorization: DPoP` expects a DPoP
   * challenge (RFC 9449 §7.1). Default `Bearer`. `invalid_dpop_proof` always challenges with DPoP.
   */
  scheme?: ChallengeScheme;
  /**
   * The request asked for a token (login) instead of presenting one. RFC 9449 §5 answers a bad proof
   * there as a token endpoint answers any bad request: 400, and no challenge, since no token was
   * presented. Only for `invalid_dpop_proof`.
   */
  tokenRequest?: boolean;
}

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  readonly detail: string;
  readonly scheme: ChallengeScheme;
  readonly tokenRequest: boolean;

  constructor(code: ErrorCode, options: ApiErrorOptions = {}) {
    super(code);
    this.name = 'ApiError';
    this.code = code;
    this.tokenRequest = code === 'invalid_dpop_proof' && options.tokenRequest === true;
    this.status = this.tokenRequest ? 400 : PROBLEMS[code].status;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.detail = code === 'invalid_request' && options.detail ? options.detail : PROBLEMS[code].detail;
    this.scheme = code === 'invalid_dpop_proof' ? 'DPoP' : (options.scheme ?? 'Bearer');
  }
}

/** The `WWW-Authenticate` challenge for an error, if it has one: the admin realm, or the token challenge. */
function challengeOf(error: ApiError): string | undefined {
  if (error.code === 'unauthorized') return 'Bearer realm="latchkey-admin"';
  return tokenChallenge(error.code, error.scheme, error.tokenRequest);
}

/** Renders an error as an RFC 9457 problem document with its authentication challenge where due. */
export function problemResponse(error: ApiError): Response {
  return renderProblem({
    code: error.code,
    status: error.status,
    title: PROBLEMS[error.code].title,
    detail: error.detail,
    challenge: challengeOf(error),
    retryAfterSeconds: error.retryAfterSeconds,
  });
}

/** Raised by the storage layer when D1 fails; answered as 503 `temporarily_unavailable`. */
export class StorageUnavailableError extends Error {
  constructor(cause: unknown) {
    super('storage unavailable', { cause });
    this.name = 'StorageUnavailableError';
  }
}

/** The operator's line for a D1 failure that was answered 503: the driver's message, never the client's. */
export function logStorageUnavailable(error: StorageUnavailableError): void {
  console.error('latchkey: D1 unavailable', String(error.cause));
}

/** 503 `temporarily_unavailable` for a passing failure (D1, the user's object), with its short Retry-After. */
export function temporarilyUnavailable(): ApiError {
  return new ApiError('temporarily_unavailable', { retryAfterSeconds: TRANSIENT_RETRY_AFTER_SECONDS });
}

/** A bad configuration value; thrown at start-up with a message naming the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(`latchkey configuration: ${message}`);
    this.name = 'ConfigError';
  }
}
