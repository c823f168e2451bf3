import { Hono } from 'hono';
import { now } from '../clock';
import { ApiError, problemResponse } from '../errors';
import { field, normalizeEmail, readJsonObject, registrableEmail, codePoints } from '../http/body';
import { type AppContext, type AppEnv, clientAddress } from '../http/context';
import { deliveryFor } from '../http/credentials';
import { addressRateLimit } from '../http/rate-limit';
import { loginProof } from '../http/login-proof';
import { presentedCredential, requireAccessToken } from '../http/require-token';
import { requestCredential } from '../http/request-credential';
import { clearTokenCookieIfPresented, takeEndedCode } from '../http/token-cookie';
import { admitHashes, chargeHashes } from '../passwords/budget';
import { hashPassword, MAX_PASSWORD_LENGTH, verifyPassword } from '../passwords/hash';
import { sendAfterAnswer, sendVerificationLink } from '../email/links';
import { COALESCED_EVENT_TYPES } from '../storage/records';
import { callAuthority, callAuthorityForValue } from '../user-authority/call';
import { assertCookieDeliveryAllowed, isoInstant, newSessionResponse, TOKEN_DELIVERIES, tokenResponse } from './responses';

export const MAX_EMAIL_LENGTH = 320;
export const MAX_CLIENT_LABEL = 64;
const MAX_EVENTS = 100;

/**
 * Charges one attempt for (email, client address) before any hashing and checks the password.
 * Answers 429 once LOGIN_MAX_FAILURES attempts failed, even for the right password. An unknown
 * email costs the same scrypt work as a wrong password and answers identically.
 *
 * `hashes` (the check, and any hash the route makes after it) are admitted from the isolate's hash
 * budget first, before anything is read: a 503 then depends on nothing but the time, and a
 * refused request is never counted as a failed attempt.
 */
export async function checkCredentials(c: AppContext, rawEmail: string, password: string, hashes: number) {
  const config = c.var.config;
  await admitHashes(config.hashBudget, hashes);
  const email = normalizeEmail(rawEmail);
  const clientIp = clientAddress(c);
  const nowMs = now();
  const attempt = await c.var.store.chargeLoginAttempt({
    email,
    clientIp,
    nowMs,
    maxFailures: config.loginMaxFailures,
    lockoutMs: config.loginLockoutSeconds * 1000,
  });
  if (attempt.failures > config.loginMaxFailures) {
    throw new ApiError('too_many_attempts', { retryAfterSeconds: (attempt.lockedUntil - nowMs) / 1000 });
  }
  const check = await verifyPassword(password, attempt.user?.passwordHash);
  return { email, clientIp, user: attempt.user, check };
}

function requirePassword(body: Record<string, unknown>, name: string): string {
  return field.string(body, name, MAX_PASSWORD_LENGTH);
}

export function requireNewPassword(c: AppContext, body: Record<string, unknown>, name: string): string {
  const password = requirePassword(body, name);
  const min = c.var.config.passwordMinLength;
  if (codePoints(password) < min) {
    throw new ApiError('invalid_request', { detail: `"${name}" must be at least ${min} characters.` });
  }
  return password;
}

export const authRoutes = new Hono<AppEnv>()
  .post('/register', addressRateLimit(), async (c) => {
    const body = await readJsonObject(c.req.raw);
    const email = registrableEmail(field.string(body, 'email', MAX_EMAIL_LENGTH));
    const password = requireNewPassword(c, body, 'password');
    await admitHashes(c.var.config.hashBudget, 1);
    const user = { id: crypto.randomUUID(), email, passwordHash: await hashPassword(password), createdAt: now() };
    if (!(await c.var.store.insertUser(user))) throw new ApiError('email_taken');
    sendAfterAnswer(c.executionCtx, 'a verification message', () => sendVerificationLink(c.env, c.var.config, user.id));
    return c.json({ user: { id: user.id, email: user.email, created_at: isoInstant(user.createdAt) } }, 201);
  })

  .post('/login', addressRateLimit(), async (c) => {
    const body = await readJsonObject(c.req.raw);
    const rawEmail = field.string(body, 'email', MAX_EMAIL_LENGTH);
    const password = requirePassword(body, 'password');
    const client = field.optionalLabel(body, 'client', MAX_CLIENT_LABEL);
    const mode = field.optionalChoice(body, 'mode', TOKEN_DELIVERIES);
    assertCookieDeliveryAllowed(c, mode);
    // Checked before the password, so that a bad proof is never counted as a failed attempt.
    const dpop = await loginProof(c);
    const { email, clientIp, user, check } = await checkCredentials(c, rawEmail, password, 1);
    if (!user || !check.ok) {
      // Recorded after the answer has left, so that a wrong password (an event in the user's
      // object) answers exactly as fast as an unknown email (nothing to record).
      if (user) c.executionCtx.waitUntil(c.var.authority(user.id).recordLoginFailure({ userId: user.id }));
      throw new ApiError('invalid_credentials');
    }
    if (c.var.config.requireVerifiedEmail && !user.emailVerified) {
      // Refused only now, after the password check: only someone who knows the password learns
      // that the account exists and is unverified. The password was right, so its failure count
      // goes, and a fresh link goes out (within the per-user allowance): whoever let the first
      // link expire is not locked out for good.
      sendAfterAnswer(c.executionCtx, 'a verification message', async () => {
        await c.var.store.clearLoginAttempts({ email, clientIp });
        await sendVerificationLink(c.env, c.var.config, user.id);
      });
      throw new ApiError('email_unverified');
    }
    if (check.needsRehash) chargeHashes(c.var.config.hashBudget, 1);
    const upgraded = check.needsRehash ? await hashPassword(password) : null;
    const grant = await callAuthority(() =>
      c.var.authority(user.id).login({
        userId: user.id,
        checkedPasswordHash: user.passwordHash,
        upgradedPasswordHash: upgraded,
        client,
        throttleKey: { email, clientIp },
        dpop,
        emailVerified: user.emailVerified,
      }),
    );
    return newSessionResponse(c, grant, mode ?? 'bearer');
  })

  .post('/renew', async (c) => {
    // A session the browser renewed (DBSC) and ended leaves no token, only why it ended.
    if (requestCredential(c) === undefined) {
      const ended = takeEndedCode(c);
      if (ended === undefined) throw new ApiError('missing_token');
      // Answered here rather than thrown, so that the answer keeps the cookie's clearing.
      const problem = problemResponse(new ApiError(ended));
      return c.newResponse(problem.body, problem);
    }
    const { claims, proof } = await presentedCredential(c, { allowExpired: true });
    const scheme = proof ? 'DPoP' : 'Bearer';
    // Rule 2 needs no records: refuse an idle token here, without waking the user's object.
    if (now() - claims.exp * 1000 > c.var.config.renewWindowSeconds * 1000) throw new ApiError('session_inactive', { scheme });
    const grant = await callAuthority(() => c.var.authority(claims.sub).renew(claims, proof ?? null), { scheme });
    // Renewed the way it was presented: a cookie is answered with a cookie.
    return tokenResponse(c, grant, deliveryFor(c.var.credential));
  })

  .post('/logout', async (c) => {
    const { claims, proof } = await presentedCredential(c, { allowExpired: true });
    const scheme = proof ? 'DPoP' : 'Bearer';
    if (now() - claims.exp * 1000 > c.var.config.renewWindowSeconds * 1000) throw new ApiError('session_inactive', { scheme });
    await callAuthority(() => c.var.authority(claims.sub).endSession({ token: claims, proof: proof ?? null }), { scheme });
    clearTokenCookieIfPresented(c);
    return c.body(null, 204);
  })

  .post('/logout-all', requireAccessToken('strict'), async (c) => {
    const { claims } = c.get('caller');
    await callAuthority(() => c.var.authority(claims.sub).logoutAll({ userId: claims.sub, sessionId: claims.sid }));
    clearTokenCookieIfPresented(c);
    return c.body(null, 204);
  })

  .post('/password', addressRateLimit(), requireAccessToken('strict'), async (c) => {
    const { claims, email } = c.get('caller');
    const body = await readJsonObject(c.req.raw);
    const currentPassword = requirePassword(body, 'current_password');
    const newPassword = requireNewPassword(c, body, 'new_password');
    const mode = field.optionalChoice(body, 'mode', TOKEN_DELIVERIES);
    assertCookieDeliveryAllowed(c, mode);
    // Throttled like a login: a stolen token must not become a password-guessing oracle.
    // Two hashes: the current password's check and the new password's hash.
    const { user, check, email: throttledEmail, clientIp } = await checkCredentials(c, email ?? '', currentPassword, 2);
    if (!user || user.id !== claims.sub || !check.ok) throw new ApiError('invalid_credentials');
    const grant = await callAuthority(async () =>
      c.var.authority(claims.sub).changePassword({
        userId: claims.sub,
        sessionId: claims.sid,
        checkedPasswordHash: user.passwordHash,
        newPasswordHash: await hashPassword(newPassword),
        throttleKey: { email: throttledEmail, clientIp },
      }),
    );
    // A page in cookie mode gets the new session's token as a cookie even if it did not say so.
    return newSessionResponse(c, grant, mode ?? deliveryFor(c.var.credential));
  })

  .get('/sessions', requireAccessToken('strict'), async (c) => {
    const { claims } = c.get('caller');
    const sessions = await callAuthorityForValue(() => c.var.authority(claims.sub).listSessions({ userId: claims.sub }));
    c.header('cache-control', 'no-store');
    return c.json({
      sessions: sessions.map((session) => ({
        id: session.id,
        client: session.client,
        created_at: isoInstant(session.createdAt),
        last_renewed_at: session.lastRenewedAt === null ? null : isoInstant(session.lastRenewedAt),
        current: session.id === claims.sid,
      })),
    });
  })

  .delete('/sessions/:id', requireAccessToken('strict'), async (c) => {
    const { claims } = c.get('caller');
    const sessionId = c.req.param('id');
    if (sessionId.length > 128) throw new ApiError('not_found');
    await callAuthority(() => c.var.authority(claims.sub).endSession({ userId: claims.sub, sessionId }));
    if (sessionId === claims.sid) clearTokenCookieIfPresented(c);
    return c.body(null, 204);
  })

  .get('/events', requireAccessToken('strict'), async (c) => {
    const { claims } = c.get('caller');
    const before = eventCursor(c.req.query('cursor'));
    const limit = eventLimit(c.req.query('limit'));
    const page = await callAuthorityForValue(() => c.var.authority(claims.sub).listEvents({ userId: claims.sub, before, limit }));
    c.header('cache-control', 'no-store');
    return c.json({
      events: page.events.map((event) => ({
        type: event.type,
        at: isoInstant(event.at),
        session_id: event.sessionId,
        detail: COALESCED_EVENT_TYPES.has(event.type)
          ? { ...event.detail, count: event.count, last_at: isoInstant(event.lastAt) }
          : event.detail,
      })),
      next_cursor: page.next === null ? null : String(page.next),
    });
  });

/** `?cursor=` of GET /auth/events: the `next_cursor` of the page before, or absent for the newest. */
function eventCursor(raw: string | undefined): number | null {
  if (raw === undefined) return null;
  if (!/^[1-9]\d{0,15}$/.test(raw)) throw new ApiError('invalid_request', { detail: '"cursor" is not a cursor from this API.' });
  return Number(raw);
}

/** `?limit=` of GET /auth/events: 1 to MAX_EVENTS, MAX_EVENTS when absent. */
function eventLimit(raw: string | undefined): number {
  if (raw === undefined) return MAX_EVENTS;
  const limit = /^\d{1,3}$/.test(raw) ? Number(raw) : 0;
  if (limit < 1 || limit > MAX_EVENTS) {
    throw new ApiError('invalid_request', { detail: `"limit" must be a whole number from 1 to ${MAX_EVENTS}.` });
  }
  return limit;
}
