/**
 * Every failure latchkey answers is an `ApiError` with a stable `code` from the closed union
 * below (API.md). One handler turns it into an RFC 9457 problem document; the wire text is fixed
 * per code, so nothing internal (a token, a SQL message, a stack) can leak into an answer.
 */

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
  | 'unauthorized'
  | 'forbidden_origin'
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
  unauthorized: { status: 401, title: 'Unauthorized', detail: 'Valid administrator credentials are required.' },
  forbidden_origin: {
    status: 403,
    title: 'Forbidden origin',
    detail: 'Cookie-authenticated requests that change state must come from an allowed Origin.',
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

export interface ApiErrorOptions {
  /** Replaces the fixed detail; only for `invalid_request`, where it names the faulty field. */
  detail?: string;
  /** Seconds, for 429 and 503. */
  retryAfterSeconds?: number;
}

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  readonly detail: string;

  constructor(code: ErrorCode, options: ApiErrorOptions = {}) {
    super(code);
    this.name = 'ApiError';
    this.code = code;
    this.status = PROBLEMS[code].status;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.detail = code === 'invalid_request' && options.detail ? options.detail : PROBLEMS[code].detail;
  }
}

/** Renders an error as an RFC 9457 problem document with the RFC 6750 challenge where due. */
export function problemResponse(error: ApiError): Response {
  const spec = PROBLEMS[error.code];
  const headers = new Headers({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' });
  if (error.code === 'missing_token') {
    headers.set('www-authenticate', 'Bearer');
  } else if (TOKEN_FAULTS.has(error.code)) {
    headers.set('www-authenticate', `Bearer error="invalid_token", error_description="${error.code}"`);
  } else if (error.code === 'unauthorized') {
    headers.set('www-authenticate', 'Bearer realm="latchkey-admin"');
  }
  if (error.retryAfterSeconds !== undefined) {
    headers.set('retry-after', String(Math.max(1, Math.ceil(error.retryAfterSeconds))));
  }
  const body = {
    type: `urn:latchkey:problem:${error.code}`,
    title: spec.title,
    status: spec.status,
    code: error.code,
    detail: error.detail,
  };
  return new Response(JSON.stringify(body), { status: spec.status, headers });
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
