import { Hono } from 'hono';
import { timingSafeEqual } from 'node:crypto';
import { now } from '../clock';
import { ApiError } from '../errors';
import { codePoints, normalizeEmail } from '../http/body';
import { bearerToken } from '../http/credentials';
import type { AppContext, AppEnv } from '../http/context';
import { callAuthority, callAuthorityForValue } from '../user-authority/call';
import type { AccountRecord } from '../storage/records';
import { MAX_EMAIL_LENGTH } from './auth';
import { isoInstant } from './responses';

/** User ids are UUIDs; anything longer is no user's, and is answered without a lookup. */
const MAX_USER_ID_LENGTH = 128;

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

/** The user's id from the path, if a user has it (D1); else 404. Checked in D1 first so that a guessed id never creates a Durable Object. */
async function existingUser(c: AppContext): Promise<string> {
  const userId = c.req.param('id') ?? '';
  if (userId.length > MAX_USER_ID_LENGTH || !(await c.var.store.userExists(userId))) throw new ApiError('not_found');
  return userId;
}

/** `?email=` of GET /admin/users: required, a string of at most MAX_EMAIL_LENGTH code points; normalized as login does. */
function emailQuery(c: AppContext): string {
  const raw = c.req.query('email');
  if (raw === undefined || raw.trim() === '') throw new ApiError('invalid_request', { detail: '"email" is required.' });
  if (codePoints(raw) > MAX_EMAIL_LENGTH) {
    throw new ApiError('invalid_request', { detail: `"email" must be at most ${MAX_EMAIL_LENGTH} characters.` });
  }
  return normalizeEmail(raw);
}

/**
 * An account as operators see it: what D1 holds of it and the number of its live sessions (the
 * user's object judges liveness, idle limit included). Never the password hash, a passkey's
 * public key, a link's hash or the addresses that failed to sign in.
 */
async function describeAccount(c: AppContext, account: AccountRecord) {
  const sessions = await callAuthorityForValue(() => c.var.authority(account.id).listSessions({ userId: account.id }));
  const instant = (ms: number | null) => (ms === null || ms === 0 ? null : isoInstant(ms));
  c.header('cache-control', 'no-store');
  return c.json({
    user: {
      id: account.id,
      email: account.email,
      created_at: isoInstant(account.createdAt),
      email_verified_at: instant(account.emailVerifiedAt),
      revoked_before: instant(account.revokedBefore),
      live_sessions: sessions.length,
      passkeys: account.passkeys,
      lockout: {
        locked: account.lockout.lockedAddresses > 0,
        locked_until: instant(account.lockout.lockedUntil),
        locked_addresses: account.lockout.lockedAddresses,
        failing_addresses: account.lockout.failingAddresses,
      },
    },
  });
}

async function lookUp(c: AppContext, lookup: { id: string } | { email: string }) {
  const account = await c.var.store.accountOf(lookup, now(), c.var.config.loginLockoutSeconds * 1000);
  if (!account) throw new ApiError('not_found');
  return describeAccount(c, account);
}

/** Operator routes. Invisible (404) unless ADMIN_TOKEN is set. */
export const adminRoutes = new Hono<AppEnv>()
  .use(async (c, next) => {
    const expected = c.var.config.adminToken;
    if (expected === undefined) throw new ApiError('not_found');
    const presented = bearerToken(c.req.raw) ?? '';
    // Digests first: equal lengths for the constant-time comparison, whatever was presented.
    if (!timingSafeEqual(await sha256(presented), await sha256(expected))) throw new ApiError('unauthorized');
    await next();
  })
  .get('/users', (c) => lookUp(c, { email: emailQuery(c) }))
  .get('/users/:id', (c) => {
    const id = c.req.param('id');
    if (id.length > MAX_USER_ID_LENGTH) throw new ApiError('not_found');
    return lookUp(c, { id });
  })
  .post('/users/:id/revoke', async (c) => {
    const userId = await existingUser(c);
    await callAuthority(() => c.var.authority(userId).adminRevoke({ userId }));
    return c.body(null, 204);
  })
  // Clears the account's lockout: the failed logins counted against its email, from every client
  // address (the throttle counts per email and address; an operator means the account's). The
  // per-address limit, which counts any email, is the edge's and is not touched.
  .post('/users/:id/unlock', async (c) => {
    const userId = await existingUser(c);
    await callAuthority(() => c.var.authority(userId).clearLockout({ userId }));
    return c.body(null, 204);
  });
