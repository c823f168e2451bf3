// What the demo page says: the words for every code it can meet, and its one date format. The
// codes are the API's (security event types, problem codes, the client's sign-out reasons): stable
// and machine-readable, so the page shows these words first and the code beside them, in a detail
// line, for whoever needs to look it up. No DOM here, so that a Node test can read the table.

export interface Words {
  /** A few words, capitalised, no final stop: the event's name, or a message's heading. */
  title: string;
  /** A sentence or two for a person who did not expect it. */
  explain?: string;
}

/**
 * One table for every code. Keys shared by an event type and a sign-out reason (`logout`,
 * `logout_all`) read the same in both places. test/unit/demo-text.test.ts checks at compile time
 * that each event type, each problem code and each sign-out reason of the client has an entry.
 */
export const WORDS = {
  // Security events (GET /auth/events), and the two sign-outs a browser asks for itself.
  login: { title: 'Signed in' },
  login_failed: { title: 'Failed sign-in', explain: 'Someone tried a wrong password or a passkey that was not accepted.' },
  logout: { title: 'Signed out', explain: 'You signed out.' },
  logout_all: { title: 'Signed out everywhere', explain: 'You signed out on every device.' },
  password_changed: { title: 'Password changed', explain: 'Every other session of the account ended.' },
  password_reset: { title: 'Password reset by email', explain: 'Every session of the account ended.' },
  email_verified: { title: 'Email address verified' },
  reuse_detected: {
    title: 'Old token used again',
    explain: 'A token that had already been renewed was presented again, so the session was ended to protect the account.',
  },
  generation_mismatch: {
    title: 'Token out of step',
    explain: 'A token from the future of its session was presented, which only a forged or corrupted token can be.',
  },
  admin_revoked: { title: 'Signed out by an operator' },
  lockout_cleared: { title: 'Sign-in lockout lifted by an operator' },
  proof_failed: {
    title: 'Token used without its key: refused',
    explain: 'A copy of a token was presented without a proof of the key it is bound to. Nothing was revoked.',
  },
  device_bound: { title: 'Session bound to this browser’s key' },
  passkey_added: { title: 'Passkey added' },
  passkey_removed: { title: 'Passkey removed' },
  passkey_counter_regressed: {
    title: 'Passkey counter went backwards',
    explain: 'The passkey’s signature counter was lower than before: the authenticator may have been copied.',
  },

  // Problem codes (the API's errors), several of which are also why the client signed out.
  invalid_request: { title: 'Invalid request', explain: 'Check the fields and try again.' },
  payload_too_large: { title: 'Request too large' },
  email_taken: { title: 'Email already registered', explain: 'An account with this email already exists: sign in instead.' },
  invalid_credentials: { title: 'Wrong email or password', explain: 'The email or password is wrong, or the passkey was not accepted.' },
  passkey_rejected: { title: 'Passkey not registered', explain: 'The passkey could not be registered. Try again.' },
  too_many_attempts: { title: 'Too many attempts', explain: 'Wait a little, then try again.' },
  missing_token: { title: 'Sign-in gone', explain: 'The sign-in is gone (the cookie was cleared). Sign in again.' },
  invalid_token: { title: 'Sign-in no longer valid', explain: 'The sign-in is no longer valid. Sign in again.' },
  token_expired: { title: 'Sign-in expired', explain: 'The access token expired before it could be renewed.' },
  session_inactive: { title: 'Signed out after inactivity', explain: 'The session was idle for too long. Sign in again.' },
  session_revoked: {
    title: 'Session revoked',
    explain:
      'This session was revoked: signed out everywhere from another tab or device, revoked from the sessions list, or ended after an old token was replayed.',
  },
  session_expired: { title: 'Session too old', explain: 'The session reached its maximum age. Sign in again.' },
  token_reused: {
    title: 'Old token used again',
    explain: 'An old token was presented again, so the session was ended to protect the account.',
  },
  invalid_dpop_proof: {
    title: 'Refused without this browser’s key',
    explain: 'The request carried no valid proof of the key this session is bound to.',
  },
  invalid_dbsc_proof: { title: 'Device binding refused' },
  dbsc_proof_required: { title: 'Device proof required' },
  unauthorized: { title: 'Operators only' },
  forbidden_origin: {
    title: 'Origin not allowed',
    explain: 'This page is not on an allowed origin, so it cannot renew the sign-in.',
  },
  email_unverified: { title: 'Email address not verified', explain: 'Follow the link mailed to it first.' },
  email_already_verified: { title: 'Email address already verified' },
  invalid_reset_token: {
    title: 'Reset link not valid',
    explain: 'This password-reset link is invalid, expired or already used. Ask for a new one.',
  },
  invalid_verification_token: {
    title: 'Verification link not valid',
    explain: 'This verification link is invalid, expired or already used. Ask for a new one.',
  },
  not_found: { title: 'Not found' },
  temporarily_unavailable: {
    title: 'Briefly unavailable',
    explain: 'The service is briefly unavailable and nothing was changed. Try again in a moment.',
  },
  internal_error: { title: 'Something went wrong on the server' },
} as const satisfies Record<string, Words>;

export type KnownCode = keyof typeof WORDS;

/** The words for a code; one the table lacks (`http_502`, a newer server's) still reads as words. */
export function wordsFor(code: string): Words {
  if (Object.hasOwn(WORDS, code)) return WORDS[code as KnownCode];
  const status = /^http_(\d{3})$/.exec(code)?.[1];
  return status
    ? { title: 'Unexpected answer', explain: `The server answered with HTTP status ${status}.` }
    : { title: 'Something went wrong' };
}

/**
 * Every instant on the page, in this one form ("30 Nov 2026, 14:05:09" in en-GB), in the reader's
 * locale and time zone. Seconds are kept: tokens here live minutes, and renewals are seconds apart.
 */
const INSTANT = new Intl.DateTimeFormat(undefined, {
  day: 'numeric',
  month: 'short',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

export function formatInstant(instant: string | number | Date): string {
  return INSTANT.format(new Date(instant));
}

/** The API's `detail` of an event, in words: what makes this occurrence different from another. */
export function eventDetailWords(type: string, detail: Record<string, unknown> | null): string[] {
  if (!detail) return [];
  const words: string[] = [];
  if (detail.method === 'passkey') words.push('with a passkey');
  if (typeof detail.client === 'string') words.push(`from ${detail.client}`);
  if (detail.scope === 'user') words.push('every session of the account was revoked');
  if (detail.scope === 'session') words.push('the session was revoked');
  if (detail.via === 'dbsc') words.push('by the browser’s own renewal');
  if (type === 'email_verified' && detail.via === 'password_reset') words.push('by a password-reset link');
  if (type === 'email_verified' && detail.via === 'link') words.push('by the emailed link');
  if (type === 'passkey_added' && typeof detail.name === 'string') words.push(`named “${detail.name}”`);
  if (typeof detail.count === 'number' && detail.count > 1) {
    const last = typeof detail.last_at === 'string' ? `, the last on ${formatInstant(detail.last_at)}` : '';
    words.push(`${detail.count} times${last}`);
  }
  return words;
}
