/**
 * The problem documents (RFC 9457) of the codes a verifier answers, worded once for latchkey's own
 * routes and for every verifier: a resource server refuses a token exactly as latchkey does,
 * status, `code`, text and challenge alike (API.md).
 */

import { DPOP_ALGS_PARAMETER } from './dpop/algorithms.js';

export interface ProblemSpec {
  status: number;
  title: string;
  detail: string;
}

/** The codes about a presented access token, and the two a verifier answers beside them. */
export type TokenProblemCode =
  | 'missing_token'
  | 'invalid_token'
  | 'token_expired'
  | 'session_inactive'
  | 'session_revoked'
  | 'session_expired'
  | 'token_reused'
  | 'invalid_dpop_proof'
  | 'email_unverified'
  | 'temporarily_unavailable';

export const TOKEN_PROBLEMS = {
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
  // After the password check, never before: only someone who knows the password learns that the
  // account exists and is unverified.
  email_unverified: {
    status: 403,
    title: 'Email not verified',
    detail: 'Verify your email address first: follow the link in the message sent to it.',
  },
  temporarily_unavailable: {
    status: 503,
    title: 'Temporarily unavailable',
    detail: 'The service is briefly unavailable. Nothing was changed; retry the same request after Retry-After.',
  },
} as const satisfies Record<TokenProblemCode, ProblemSpec>;

/** Codes that mean "the presented access token is at fault" (RFC 6750 §3.1 `invalid_token`). */
const TOKEN_FAULTS: ReadonlySet<string> = new Set<TokenProblemCode>([
  'invalid_token',
  'token_expired',
  'session_inactive',
  'session_revoked',
  'session_expired',
  'token_reused',
]);

/** The authentication scheme a challenge names (RFC 6750 `Bearer`, RFC 9449 `DPoP`). */
export type ChallengeScheme = 'Bearer' | 'DPoP';

/**
 * The `WWW-Authenticate` challenge for a code, if it has one: RFC 6750 §3 for Bearer, RFC 9449
 * §7.1 for DPoP (which also lists the proof algorithms accepted). No credentials at all gets the
 * bare scheme, without an error attribute (RFC 6750 §3.1). A bad proof on a request for a token
 * (`tokenRequest`, RFC 9449 §5) has none: no token was presented.
 */
export function tokenChallenge(code: string, scheme: ChallengeScheme, tokenRequest = false): string | undefined {
  if (code === 'invalid_dpop_proof') return tokenRequest ? undefined : `DPoP error="invalid_dpop_proof", ${DPOP_ALGS_PARAMETER}`;
  const dpop = scheme === 'DPoP';
  if (code === 'missing_token') return dpop ? `DPoP ${DPOP_ALGS_PARAMETER}` : 'Bearer';
  if (!TOKEN_FAULTS.has(code)) return undefined;
  const challenge = `${scheme} error="invalid_token", error_description="${code}"`;
  return dpop ? `${challenge}, ${DPOP_ALGS_PARAMETER}` : challenge;
}

export interface Problem {
  code: string;
  status: number;
  title: string;
  detail: string;
  /** The `WWW-Authenticate` value, if any. */
  challenge?: string | undefined;
  /** Seconds, for 429 and 503. */
  retryAfterSeconds?: number | undefined;
}

/** A problem as the response latchkey answers: the fixed document, never cached, with its challenge. */
export function renderProblem(problem: Problem): Response {
  const headers = new Headers({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' });
  if (problem.challenge !== undefined) headers.set('www-authenticate', problem.challenge);
  if (problem.retryAfterSeconds !== undefined) {
    headers.set('retry-after', String(Math.max(1, Math.ceil(problem.retryAfterSeconds))));
  }
  const body = {
    type: `urn:latchkey:problem:${problem.code}`,
    title: problem.title,
    status: problem.status,
    code: problem.code,
    detail: problem.detail,
  };
  return new Response(JSON.stringify(body), { status: problem.status, headers });
}
