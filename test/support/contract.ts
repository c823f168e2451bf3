/**
 * Every `code` API.md defines, and those of its additions that the README documents (email
 * verification and password reset): any answer with another one breaks the contract.
 */
export const API_CODES: ReadonlySet<string> = new Set([
  'invalid_request',
  'payload_too_large',
  'email_taken',
  'invalid_credentials',
  'passkey_rejected',
  'too_many_attempts',
  'missing_token',
  'invalid_token',
  'token_expired',
  'session_inactive',
  'session_revoked',
  'session_expired',
  'token_reused',
  'invalid_dpop_proof',
  'unauthorized',
  'forbidden_origin',
  'email_unverified',
  'email_already_verified',
  'invalid_reset_token',
  'invalid_verification_token',
  'not_found',
  'temporarily_unavailable',
]);
