import { Hono } from 'hono';
import { now } from '../clock';
import { sendAfterAnswer, sendResetLink, sendVerificationLink } from '../email/links';
import { isLinkToken, isUsableLink, type LinkPurpose, linkTokenHash } from '../email/tokens';
import { ApiError, type ErrorCode } from '../errors';
import { field, readJsonObject, registrableEmail } from '../http/body';
import type { AppContext, AppEnv } from '../http/context';
import { callAuthority } from '../user-authority/call';
import { addressRateLimit } from '../http/rate-limit';
import { requireAccessToken } from '../http/require-token';
import { admitHashes } from '../passwords/budget';
import { hashPassword } from '../passwords/hash';
import { MAX_CLIENT_LABEL, MAX_EMAIL_LENGTH, requireNewPassword } from './auth';
import { assertCookieDeliveryAllowed, newSessionResponse, TOKEN_DELIVERIES } from './responses';

/** Longer than any token of ours (43 characters); anything longer is not worth a lookup. */
const MAX_LINK_TOKEN_LENGTH = 128;

const INVALID_LINK = {
  reset: 'invalid_reset_token',
  verify: 'invalid_verification_token',
} as const satisfies Record<LinkPurpose, ErrorCode>;

/**
 * The link behind `token`, if it still works for `purpose`: the token's shape first (a malformed
 * one costs nothing), then one D1 read by its hash. Unknown, used, expired, of the other purpose,
 * or (reset) issued before the password last changed: one answer for all, 400.
 */
async function usableLink(c: AppContext, token: string, purpose: LinkPurpose) {
  if (!isLinkToken(token)) throw new ApiError(INVALID_LINK[purpose]);
  const tokenHash = await linkTokenHash(token);
  const link = await c.var.store.findLinkToken(tokenHash);
  if (!isUsableLink(link, purpose, undefined, now())) throw new ApiError(INVALID_LINK[purpose]);
  return { link, tokenHash };
}

/**
 * Password reset and email verification by emailed link (mounted under /auth). What each step
 * defends against is in docs/SECURITY.md, "Someone abusing the emailed links".
 */
export const recoveryRoutes = new Hono<AppEnv>()
  /**
   * 202 with one fixed body whatever the email: the account lookup, the link and the message all
   * happen after the answer has left (`waitUntil`), so neither the answer nor its timing says
   * whether the account exists. Throttled per address here (429) and per email after the answer
   * (a request past the email's allowance is answered alike and sends nothing).
   */
  .post('/password/forgot', addressRateLimit(), async (c) => {
    const body = await readJsonObject(c.req.raw);
    const email = registrableEmail(field.string(body, 'email', MAX_EMAIL_LENGTH));
    sendAfterAnswer(c.executionCtx, 'a password-reset message', () => sendResetLink(c.env, c.var.config, email));
    c.header('cache-control', 'no-store');
    return c.json({ message: 'If an account uses this email address, a link to reset its password is on its way.' }, 202);
  })

  /**
   * Sets the password of the link's account, revokes every session, consumes the link, and signs
   * in a fresh session (token response; cookie mode as for login). The link is checked before any
   * hashing, so a flood of made-up links costs one indexed read each, never a hash.
   */
  .post('/password/reset', addressRateLimit(), async (c) => {
    const body = await readJsonObject(c.req.raw);
    const token = field.string(body, 'token', MAX_LINK_TOKEN_LENGTH);
    const client = field.optionalLabel(body, 'client', MAX_CLIENT_LABEL);
    const mode = field.optionalChoice(body, 'mode', TOKEN_DELIVERIES);
    assertCookieDeliveryAllowed(c, mode);
    const { link, tokenHash } = await usableLink(c, token, 'reset');
    const newPassword = requireNewPassword(c, body, 'new_password');
    await admitHashes(c.var.config.hashBudget, 1);
    const newPasswordHash = await hashPassword(newPassword);
    const grant = await callAuthority(() =>
      c.var.authority(link.userId).resetPassword({ userId: link.userId, tokenHash, newPasswordHash, client }),
    );
    return newSessionResponse(c, grant, mode ?? 'bearer');
  })

  /** Marks the link's account verified. The link is the credential: no token needed. */
  .post('/email/verify', async (c) => {
    const body = await readJsonObject(c.req.raw);
    const token = field.string(body, 'token', MAX_LINK_TOKEN_LENGTH);
    const { link, tokenHash } = await usableLink(c, token, 'verify');
    await callAuthority(() => c.var.authority(link.userId).markEmailVerified({ userId: link.userId, tokenHash }));
    c.header('cache-control', 'no-store');
    return c.json({ email_verified: true });
  })

  /** Sends the signed-in user a fresh verification link, within their allowance. */
  .post('/email/resend', addressRateLimit(), requireAccessToken('strict'), async (c) => {
    const { claims, emailVerified } = c.get('caller');
    if (emailVerified) throw new ApiError('email_already_verified');
    const sent = await sendVerificationLink(c.env, c.var.config, claims.sub);
    if (sent.outcome === 'throttled') throw new ApiError('too_many_attempts', { retryAfterSeconds: sent.retryAfterSeconds });
    if (sent.outcome === 'not_sent') throw new ApiError('email_already_verified');
    c.header('cache-control', 'no-store');
    return c.json({ message: 'A new verification link is on its way.' }, 202);
  });
