import { Buffer } from 'node:buffer';

/**
 * The tokens of emailed links (verification, password reset): 32 random bytes, base64url, 43
 * characters. Only their SHA-256 is stored (migrations/0002_email.sql), so whoever reads D1 cannot
 * follow a link; a fast hash is enough because the token has 256 bits of entropy, nothing to guess.
 */

/** What a link is for. A token of one purpose never works for the other. */
export type LinkPurpose = 'verify' | 'reset';

const TOKEN_BYTES = 32;
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** A fresh token and the hash stored for it. */
export async function newLinkToken(): Promise<{ token: string; hash: string }> {
  const token = Buffer.from(crypto.getRandomValues(new Uint8Array(TOKEN_BYTES))).toString('base64url');
  return { token, hash: await linkTokenHash(token) };
}

/** base64url(SHA-256(token)): the key a token is stored and looked up under. */
export async function linkTokenHash(token: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token));
  return Buffer.from(digest).toString('base64url');
}

/** Whether `value` has the shape of a link token; anything else is refused before any lookup. */
export function isLinkToken(value: string): boolean {
  return TOKEN_SHAPE.test(value);
}

/** A stored link token, with what is needed to judge it: its user's current password hash. */
export interface LinkTokenRecord {
  userId: string;
  purpose: LinkPurpose;
  /** Reset links: the password hash when the link was sent; null for verification links. */
  passwordHashAtIssue: string | null;
  /** Milliseconds. */
  expiresAt: number;
  /** Milliseconds; null until the link is used. */
  usedAt: number | null;
  /** The user's password hash now. */
  currentPasswordHash: string;
}

/**
 * Whether a link still works for `purpose` (and for `userId`, when the caller knows whose it must
 * be): of that purpose, unused, unexpired at `nowMs`, and for a reset, issued under the password
 * the user still has, so a password changed by any path (a reset, a change, another link) kills
 * every reset link sent before.
 */
export function isUsableLink(
  link: LinkTokenRecord | null,
  purpose: LinkPurpose,
  userId: string | undefined,
  nowMs: number,
): link is LinkTokenRecord {
  if (!link || link.purpose !== purpose || link.usedAt !== null || link.expiresAt <= nowMs) return false;
  if (userId !== undefined && link.userId !== userId) return false;
  return purpose !== 'reset' || link.passwordHashAtIssue === link.currentPasswordHash;
}
