import { Hono } from 'hono';
import { now } from '../clock';
import { ApiError } from '../errors';
import { field, readJsonObject } from '../http/body';
import type { AppContext, AppEnv } from '../http/context';
import { callAuthority } from '../user-authority/call';
import { addressRateLimit } from '../http/rate-limit';
import { requireAccessToken } from '../http/require-token';
import { clearTokenCookieIfPresented } from '../http/token-cookie';
import { presentedChallenge, verifyAssertion } from '../passkeys/ceremony';
import { readAuthenticationResponse } from '../passkeys/shapes';
import { MAX_PASSWORD_LENGTH } from '../passwords/hash';
import type { Reauthentication } from '../user-authority/results';
import { checkCredentials } from './auth';

/**
 * The signed-in person proves, once more, that they are the account's owner: with the password
 * (`{"password": ...}`), charged to the login throttle like a login, so a stolen token is no
 * password-guessing oracle; or with a passkey (`{"passkey": <startAuthentication() result>}`),
 * answering a challenge from POST /auth/passkeys/login/options, spent here whatever comes of it, and
 * signed by a passkey of this very account. Every refusal is 401 `invalid_credentials`, as a
 * sign-in's: which check failed is not the caller's to learn.
 */
async function reauthenticate(
  c: AppContext,
  body: Record<string, unknown>,
  caller: { userId: string; email: string },
): Promise<Reauthentication> {
  const byPassword = Object.hasOwn(body, 'password');
  if (byPassword === Object.hasOwn(body, 'passkey')) {
    throw new ApiError('invalid_request', { detail: 'Send exactly one of "password" and "passkey".' });
  }
  if (byPassword) {
    const password = field.string(body, 'password', MAX_PASSWORD_LENGTH);
    const { user, check } = await checkCredentials(c, caller.email, password, 1);
    if (!user || user.id !== caller.userId || !check.ok) {
      // After the answer, as for a login: the user learns that someone holding one of their
      // sessions typed a wrong password.
      if (user?.id === caller.userId) {
        c.executionCtx.waitUntil(c.var.authority(caller.userId).recordLoginFailure({ userId: caller.userId }));
      }
      throw new ApiError('invalid_credentials');
    }
    return { kind: 'password', checkedPasswordHash: user.passwordHash };
  }
  const response = readAuthenticationResponse(body, 'passkey');
  const challenge = presentedChallenge(response);
  if (challenge === null) throw new ApiError('invalid_credentials');
  const { challengeValid, credential } = await c.var.store.beginPasskeyLogin({
    challenge,
    credentialId: response.id,
    nowMs: now(),
  });
  if (!challengeValid || !credential || credential.userId !== caller.userId) throw new ApiError('invalid_credentials');
  const checked = await verifyAssertion(c.var.config, response, challenge, credential);
  if (!checked.ok) throw new ApiError('invalid_credentials');
  return { kind: 'passkey', passkeyId: credential.id, counter: checked.counter };
}

/**
 * The account itself, mounted under /auth. Deleting it needs a live session (strict) and the
 * password or a passkey again: a token alone, which may be stolen, deletes nothing. The route is
 * behind the per-address limit of the routes that hash a password.
 */
export const accountRoutes = new Hono<AppEnv>().delete('/account', addressRateLimit(), requireAccessToken('strict'), async (c) => {
  const { claims, email } = c.get('caller');
  const body = await readJsonObject(c.req.raw);
  const proof = await reauthenticate(c, body, { userId: claims.sub, email: email ?? '' });
  await callAuthority(() => c.var.authority(claims.sub).deleteAccount({ userId: claims.sub, sessionId: claims.sid, proof }));
  clearTokenCookieIfPresented(c);
  return c.body(null, 204);
});
