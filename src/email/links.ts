import { now } from '../clock';
import type { Config } from '../config';
import { type SendAllowance, storeFor } from '../storage/store';
import { linkTo, resetMessage, verificationMessage } from './messages';
import { sendMail } from './send';
import { newLinkToken } from './tokens';

/**
 * At most this many messages per window for one key: one email address's reset links (whether or
 * not it has an account), one user's verification links. Enough for a person who asks again
 * because the first message is slow; too few for anyone to flood an inbox through latchkey, or
 * to make it a source of spam that gets its sending domain blocked.
 */
export const MESSAGES_PER_WINDOW = 3;
/** The window of MESSAGES_PER_WINDOW, in milliseconds: one hour. */
export const SEND_WINDOW_MS = 60 * 60 * 1000;

/** What a request for a link came to. */
export type LinkOutcome = 'sent' | 'throttled' | 'not_sent';

function allowance(key: string): SendAllowance {
  return { key, max: MESSAGES_PER_WINDOW, windowMs: SEND_WINDOW_MS };
}

/**
 * Mails a password-reset link to `email` if an account has it, within the per-email allowance.
 * Run after the answer has left (POST /auth/password/forgot answers the same whatever this finds),
 * so nothing here can be timed from outside.
 */
export async function sendResetLink(env: Env, config: Config, email: string): Promise<LinkOutcome> {
  const { token, hash } = await newLinkToken();
  const nowMs = now();
  const issued = await storeFor(env.DB).issueResetLink({
    email,
    tokenHash: hash,
    nowMs,
    expiresAt: nowMs + config.resetTokenTtlSeconds * 1000,
    allowance: allowance(`reset:${email}`),
  });
  if (issued.kind !== 'issued') return issued.kind === 'throttled' ? 'throttled' : 'not_sent';
  await sendMail(env.EMAIL, config, resetMessage(issued.email, linkTo(config.appUrl, 'reset', token), config.resetTokenTtlSeconds));
  return 'sent';
}

/**
 * Mails an email-verification link to the user, within the per-user allowance, unless the email
 * is verified already. `retryAfterSeconds` is set when throttled.
 */
export async function sendVerificationLink(
  env: Env,
  config: Config,
  userId: string,
): Promise<{ outcome: LinkOutcome; retryAfterSeconds?: number }> {
  const { token, hash } = await newLinkToken();
  const nowMs = now();
  const issued = await storeFor(env.DB).issueVerificationLink({
    userId,
    tokenHash: hash,
    nowMs,
    expiresAt: nowMs + config.verificationTokenTtlSeconds * 1000,
    allowance: allowance(`verify:${userId}`),
  });
  if (issued.kind === 'throttled') return { outcome: 'throttled', retryAfterSeconds: issued.retryAfterMs / 1000 };
  if (issued.kind === 'not_issued') return { outcome: 'not_sent' };
  const link = linkTo(config.appUrl, 'verify', token);
  await sendMail(env.EMAIL, config, verificationMessage(issued.email, link, config.verificationTokenTtlSeconds));
  return { outcome: 'sent' };
}

/**
 * Runs `send` after the answer has left and logs a failure (D1 down, the binding refusing the
 * message) instead of losing it silently. Never logs a token: none is in these errors.
 *
 * Started from a timer, not at once: the route returns its answer in the current turn of the
 * event loop, and the work begins in a later one, so not even the first D1 read can precede the
 * answer.
 */
export function sendAfterAnswer(ctx: Pick<ExecutionContext, 'waitUntil'>, what: string, send: () => Promise<unknown>): void {
  const later = new Promise<void>((resolve) => setTimeout(resolve, 0));
  ctx.waitUntil(
    later.then(send).catch((error: unknown) => {
      console.error(`latchkey: sending ${what} failed`, error instanceof Error ? error.message : String(error));
    }),
  );
}
