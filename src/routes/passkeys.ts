import { Hono } from 'hono';
import { now } from '../clock';
import { ApiError } from '../errors';
import { field, readJsonObject } from '../http/body';
import type { AppEnv } from '../http/context';
import { callAuthority } from '../user-authority/call';
import { loginProof } from '../http/login-proof';
import { addressRateLimit } from '../http/rate-limit';
import { requireAccessToken } from '../http/require-token';
import {
  creationOptions,
  PASSKEY_CHALLENGE_TTL_MS,
  presentedChallenge,
  requestOptions,
  verifyAssertion,
  verifyRegistration,
} from '../passkeys/ceremony';
import { MAX_CREDENTIAL_ID_LENGTH, readAuthenticationResponse, readRegistrationResponse } from '../passkeys/shapes';
import type { PasskeyRecord } from '../storage/records';
import { assertCookieDeliveryAllowed, isoInstant, newSessionResponse, TOKEN_DELIVERIES } from './responses';

const MAX_PASSKEY_NAME = 64;
const MAX_CLIENT_LABEL = 64;

/** A passkey as the API shows it: never its public key, which is of no use to the client. */
function passkeyJson(passkey: PasskeyRecord) {
  return {
    id: passkey.id,
    name: passkey.name,
    created_at: isoInstant(passkey.createdAt),
    last_used_at: passkey.lastUsedAt === null ? null : isoInstant(passkey.lastUsedAt),
    device_type: passkey.deviceType,
    backed_up: passkey.backedUp,
    transports: passkey.transports,
  };
}

/**
 * Passkeys (WebAuthn), mounted under /auth. Registering, listing and removing need a live session
 * (strict); signing in needs nothing but the passkey, so those two routes sit behind a per-address
 * limit of their own (http/rate-limit.ts).
 *
 * Every challenge is random (32 bytes), single-use and expires after PASSKEY_CHALLENGE_TTL_MS. A
 * registration challenge is kept by the user's object for the session that asked; a sign-in
 * challenge, which no user owns yet, in D1, deleted by the first response that names it.
 */
export const passkeyRoutes = new Hono<AppEnv>()
  .post('/passkeys/register/options', requireAccessToken('strict'), async (c) => {
    const { claims, email } = c.get('caller');
    const existing = await c.var.store.passkeysOf(claims.sub);
    const options = await creationOptions(c.var.config, { id: claims.sub, email: email ?? '' }, existing);
    await callAuthority(() =>
      c.var.authority(claims.sub).beginPasskeyRegistration({
        userId: claims.sub,
        sessionId: claims.sid,
        challenge: options.challenge,
      }),
    );
    c.header('cache-control', 'no-store');
    return c.json(options);
  })

  .post('/passkeys/register', requireAccessToken('strict'), async (c) => {
    const { claims } = c.get('caller');
    const body = await readJsonObject(c.req.raw);
    const response = readRegistrationResponse(body);
    const name = field.optionalLabel(body, 'name', MAX_PASSKEY_NAME);
    const checked = await verifyRegistration(c.var.config, response);
    if (!checked.ok) throw new ApiError('passkey_rejected');
    const passkey = await callAuthority(() =>
      c.var.authority(claims.sub).addPasskey({
        userId: claims.sub,
        sessionId: claims.sid,
        challenge: checked.challenge,
        passkey: { ...checked.passkey, name },
      }),
    );
    c.header('cache-control', 'no-store');
    return c.json({ passkey: passkeyJson(passkey) }, 201);
  })

  .post('/passkeys/login/options', addressRateLimit('PASSKEY_RATE_LIMITER'), async (c) => {
    const options = await requestOptions(c.var.config);
    await c.var.store.insertLoginChallenge(options.challenge, now() + PASSKEY_CHALLENGE_TTL_MS);
    c.header('cache-control', 'no-store');
    return c.json(options);
  })

  .post('/passkeys/login', addressRateLimit('PASSKEY_RATE_LIMITER'), async (c) => {
    const body = await readJsonObject(c.req.raw);
    const response = readAuthenticationResponse(body);
    const client = field.optionalLabel(body, 'client', MAX_CLIENT_LABEL);
    const mode = field.optionalChoice(body, 'mode', TOKEN_DELIVERIES);
    assertCookieDeliveryAllowed(c, mode);
    const challenge = presentedChallenge(response);
    if (challenge === null) throw new ApiError('invalid_credentials');
    // Judged before the challenge is spent: a proof refused for a wrong clock can be sent again.
    const dpop = await loginProof(c);
    // The challenge is spent here, before anything else is judged: a response is answered once,
    // whatever its fate, and a failed one cannot be retried with variations.
    const { challengeValid, credential } = await c.var.store.beginPasskeyLogin({
      challenge,
      credentialId: response.id,
      nowMs: now(),
    });
    if (!challengeValid || !credential) throw new ApiError('invalid_credentials');
    const checked = await verifyAssertion(c.var.config, response, challenge, credential);
    if (!checked.ok) throw new ApiError('invalid_credentials');
    // As for a password login: only once the credential is proven, so it reveals nothing to others.
    if (c.var.config.requireVerifiedEmail && !(await c.var.store.emailVerifiedOf(credential.userId))) {
      throw new ApiError('email_unverified');
    }
    const grant = await callAuthority(() =>
      c.var.authority(credential.userId).loginWithPasskey({
        userId: credential.userId,
        passkeyId: credential.id,
        counter: checked.counter,
        deviceType: checked.deviceType,
        backedUp: checked.backedUp,
        userVerified: checked.userVerified,
        client,
        dpop,
      }),
    );
    return newSessionResponse(c, grant, mode ?? 'bearer');
  })

  .get('/passkeys', requireAccessToken('strict'), async (c) => {
    const { claims } = c.get('caller');
    const passkeys = await c.var.store.passkeysOf(claims.sub);
    c.header('cache-control', 'no-store');
    return c.json({ passkeys: passkeys.map(passkeyJson) });
  })

  .delete('/passkeys/:id', requireAccessToken('strict'), async (c) => {
    const { claims } = c.get('caller');
    const passkeyId = c.req.param('id');
    if (passkeyId.length > MAX_CREDENTIAL_ID_LENGTH || !/^[\w-]+$/.test(passkeyId)) throw new ApiError('not_found');
    await callAuthority(() =>
      c.var.authority(claims.sub).removePasskey({ userId: claims.sub, sessionId: claims.sid, passkeyId }),
    );
    return c.body(null, 204);
  });
