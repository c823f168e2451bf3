/**
 * Every failure latchkey answers is an `ApiError` with a stable `code` from the closed union
 * below (API.md). One handler turns it into an RFC 9457 problem document; the wire text is fixed
 * per code, so nothing internal (a token, a SQL message, a stack) can leak into an answer.
 */

import { DPOP_ALGS_PARAMETER } from './dpop/algorithms';

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
  | 'unauthorized'
  | 'forbidden_origin'
  | 'email_unverified'
  | 'email_already_verified'
  | 'invalid_reset_token'
  | 'invalid_verification_token'
  | 'not_found'
  | 'temporarily_unavailable'
  | 'internal_error';

interface ProblemSpec {
  status: number;
  title: string;
  detail: string;
}

const PROBLEMS = {
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
  missing_token: { status: 401, title: 'Missing token', detail: 'This route needs a bearer access token.' },
  invalid_token: { status: 401, title: 'Invalid token', detail: 'The access token is not valid.' },
  token_expired: { status: 401, title: 'Token expired', detail: 'The access token has expired; renew it.' },
  session_inactive: {
    status: 401,
    title: 'Session inactive',
    detail: 'The session was idle for too long. Sign in again.',
  },
  session_revoked: { status: 401, title: 'Session revoked', detail: 'The session has been revoked. Sign in again.' },
  session_expired: {
    status: 401,
    title: 'Session expired',
    detail: 'The session reached its maximum age. Sign in again.',
  },
  token_reused: {
    status: 401,
    title: 'Token reused',
    detail: 'A superseded token was presented again; the session has been revoked. Sign in again.',
  },
  invalid_dpop_proof: {
    status: 401,
    title: 'Invalid DPoP proof',
    detail: 'The request carries no valid DPoP proof of the key this credential is bound to.',
  },
  unauthorized: { status: 401, title: 'Unauthorized', detail: 'Valid administrator credentials are required.' },
  forbidden_origin: {
    status: 403,
    title: 'Forbidden origin',
    detail: 'Cookie-authenticated requests that change state must come from an allowed Origin.',
  },
  // After the password check, never before: only someone who knows the password learns that the
  // account exists and is unverified.
  email_unverified: {
    status: 403,
    title: 'Email not verified',
    detail: 'Verify your email address first: follow the link in the message sent to it.',
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
  temporarily_unavailable: {
    status: 503,
    title: 'Temporarily unavailable',
    detail: 'The service is briefly unavailable. Nothing was changed; retry the same request after Retry-After.',
  },
  internal_error: { status: 500, title: 'Internal error', detail: 'An unexpected error occurred.' },
} as const satisfies Record<ErrorCode, ProblemSpec>;

/** Codes that mean "the presented access token is at fault" (RFC 6750 §3.1 `invalid_token`). */
const TOKEN_FAULTS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'invalid_token',
  'token_expired',
  'session_inactive',
  'session_revoked',
  'session_expired',
  'token_reused',
]);

/** The authentication scheme a challenge names (RFC 6750 `Bearer`, RFC 9449 `DPoP`). */
export type ChallengeScheme = 'Bearer' | 'DPoP';

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

/**
 * The `WWW-Authenticate` challenge for an error, if it has one: RFC 6750 §3 for Bearer, RFC 9449
 * §7.1 for DPoP (which also lists the proof algorithms accepted). No credentials at all gets the
 * bare scheme, without an error attribute (RFC 6750 §3.1).
 */
function challengeOf(error: ApiError): string | undefined {
  if (error.code === 'unauthorized') return 'Bearer realm="latchkey-admin"';
  if (error.code === 'invalid_dpop_proof') {
    return error.tokenRequest ? undefined : `DPoP error="invalid_dpop_proof", ${DPOP_ALGS_PARAMETER}`;
  }
  const dpop = error.scheme === 'DPoP';
  if (error.code === 'missing_token') return dpop ? `DPoP ${DPOP_ALGS_PARAMETER}` : 'Bearer';
  if (!TOKEN_FAULTS.has(error.code)) return undefined;
  const challenge = `${error.scheme} error="invalid_token", error_description="${error.code}"`;
  return dpop ? `${challenge}, ${DPOP_ALGS_PARAMETER}` : challenge;
}

/** Renders an error as an RFC 9457 problem document with its authentication challenge where due. */
export function problemResponse(error: ApiError): Response {
  const spec = PROBLEMS[error.code];
  const headers = new Headers({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' });
  const challenge = challengeOf(error);
  if (challenge !== undefined) headers.set('www-authenticate', challenge);
  if (error.retryAfterSeconds !== undefined) {
    headers.set('retry-after', String(Math.max(1, Math.ceil(error.retryAfterSeconds))));
  }
  const body = {
    type: `urn:latchkey:problem:${error.code}`,
    title: spec.title,
    status: error.status,
    code: error.code,
    detail: error.detail,
  };
  return new Response(JSON.stringify(body), { status: error.status, headers });
}

/** Raised by the storage layer when D1 fails; answered as 503 `temporarily_unavailable`. */
export class StorageUnavailableError extends Error {
  constructor(cause: unknown) {
    super('storage unavailable', { cause });
    this.name = 'StorageUnavailableError';
  }
}

/** A bad configuration value; thrown at start-up with a message naming the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(`latchkey configuration: ${message}`);
    this.name = 'ConfigError';
  }
}
