import type { MailContent } from './mime';
import type { LinkPurpose } from './tokens';

/**
 * The link a message carries: `APP_URL#verify=<token>` or `APP_URL#reset=<token>`.
 *
 * Built from the configured APP_URL, never from the request: a Host header is the client's to
 * choose, and a reset link pointing at an attacker's host would hand them the token of a message
 * they had asked to be sent to the victim (password-reset poisoning). The token rides in the
 * fragment, which browsers never send to any server: it stays out of access logs, proxies and
 * Referer headers, and only the page's script reads it.
 */
export function linkTo(appUrl: string, purpose: LinkPurpose, token: string): string {
  const url = new URL(appUrl);
  url.hash = `${purpose}=${token}`;
  return url.href;
}

/** "30 minutes", "24 hours", "2 days": a lifetime in seconds as a person reads it. */
export function lifetimeInWords(seconds: number): string {
  const plural = (count: number, unit: string) => `${count} ${unit}${count === 1 ? '' : 's'}`;
  if (seconds % 86_400 === 0 && seconds >= 2 * 86_400) return plural(seconds / 86_400, 'day');
  if (seconds % 3600 === 0) return plural(seconds / 3600, 'hour');
  if (seconds % 60 === 0) return plural(seconds / 60, 'minute');
  return plural(seconds, 'second');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function html(title: string, paragraphs: string[], link: string, action: string): string {
  const href = escapeHtml(link);
  return [
    '<!doctype html>',
    '<html lang="en">',
    `<head><meta charset="us-ascii"><title>${escapeHtml(title)}</title></head>`,
    '<body style="font-family: sans-serif; line-height: 1.5; max-width: 36em;">',
    `<p>${escapeHtml(paragraphs[0] ?? '')}</p>`,
    `<p><a href="${href}">${escapeHtml(action)}</a></p>`,
    ...paragraphs.slice(1).map((paragraph) => `<p>${escapeHtml(paragraph)}</p>`),
    `<p style="color: #555;">If the link does not work, copy this address into your browser:<br>${href}</p>`,
    '</body>',
    '</html>',
  ].join('\n');
}

/** The message sent after registering, and on asking again. */
export function verificationMessage(to: string, link: string, ttlSeconds: number): MailContent {
  const lifetime = lifetimeInWords(ttlSeconds);
  const opening = `Confirm that this email address is yours by opening the link below within ${lifetime}.`;
  const after = 'If you did not create an account, ignore this message: nothing happens without the link.';
  return {
    to,
    subject: 'Confirm your email address',
    text: [opening, '', link, '', after, ''].join('\n'),
    html: html('Confirm your email address', [opening, after], link, 'Confirm my email address'),
  };
}

/** The message sent on POST /auth/password/forgot for an account that exists. */
export function resetMessage(to: string, link: string, ttlSeconds: number): MailContent {
  const lifetime = lifetimeInWords(ttlSeconds);
  const opening = `Someone asked to reset the password of the account with this email address. To choose a new password, open the link below within ${lifetime}. It works once, and it signs you out on every device.`;
  const after =
    'If you did not ask for this, ignore this message: your password stays as it is, and the link stops working when it expires or when the password changes.';
  return {
    to,
    subject: 'Reset your password',
    text: [opening, '', link, '', after, ''].join('\n'),
    html: html('Reset your password', [opening, after], link, 'Choose a new password'),
  };
}
