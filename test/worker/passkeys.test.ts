/**
 * Passkeys (WebAuthn) through the Worker: registering, listing, removing, and signing in with one,
 * with real WebAuthn responses made by a software authenticator (soft-authenticator.ts) and
 * verified by SimpleWebAuthn inside workerd. Every refusal is checked to change nothing.
 */
import { createExecutionContext, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import wranglerToml from '../../wrangler.toml?raw';
import { app } from '../../src/app';
import { testClock } from '../../src/clock';
import worker from '../../src/index';
import { PASSKEY_CEREMONY_TIMEOUT_MS, PASSKEY_CHALLENGE_TTL_MS } from '../../src/passkeys/ceremony';
import { direct } from '../support/direct';
import { authorityStub } from '../support/faults';
import {
  call,
  claimsOf,
  eventsOf,
  expectProblem,
  login,
  PASSWORD,
  renew,
  renewOk,
  requestTo,
  signedInUser,
  type TokenBody,
} from '../support/helpers';
import { type AuthenticationJSON, type CeremonyOverrides, FLAG, type RegistrationJSON, SoftCredential } from '../support/soft-authenticator';
import { objectRows } from '../support/user-object';

// wrangler.toml's RP_ID and ALLOWED_ORIGINS, which the tests run with.
const RP_ID = 'localhost';
const ORIGIN = 'http://localhost:8787';
const GRACE_MS = 10_000;

interface CreationOptionsJSON {
  challenge: string;
  rp: { id: string; name: string };
  user: { id: string; name: string; displayName: string };
  pubKeyCredParams: Array<{ alg: number; type: string }>;
  timeout: number;
  attestation: string;
  excludeCredentials: Array<{ id: string; type: string; transports?: string[] }>;
  authenticatorSelection: { residentKey: string; requireResidentKey: boolean; userVerification: string };
}

interface RequestOptionsJSON {
  challenge: string;
  rpId: string;
  timeout: number;
  userVerification: string;
  allowCredentials?: unknown[];
}

interface PasskeyJSON {
  id: string;
  name: string | null;
  created_at: string;
  last_used_at: string | null;
  device_type: string;
  backed_up: boolean;
  transports: string[];
}

async function creationOptions(token: string): Promise<CreationOptionsJSON> {
  const response = await call('/auth/passkeys/register/options', { method: 'POST', token });
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as CreationOptionsJSON;
}

async function requestOptions(): Promise<RequestOptionsJSON> {
  const response = await call('/auth/passkeys/login/options', { method: 'POST' });
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as RequestOptionsJSON;
}

function postRegistration(token: string, response: RegistrationJSON | unknown, name?: string): Promise<Response> {
  return call('/auth/passkeys/register', { method: 'POST', token, json: { response, name } });
}

function postLogin(response: AuthenticationJSON | unknown, extra: Record<string, unknown> = {}, headers?: HeadersInit): Promise<Response> {
  return call('/auth/passkeys/login', { method: 'POST', json: { response, ...extra }, headers });
}

/** Registers `credential` (a new one by default) for the holder of `token`. */
async function addPasskey(token: string, credential?: SoftCredential, name?: string): Promise<{ credential: SoftCredential; passkey: PasskeyJSON }> {
  const held = credential ?? (await SoftCredential.create(ORIGIN));
  const response = await postRegistration(token, await held.register(await creationOptions(token)), name);
  expect(response.status, await response.clone().text()).toBe(201);
  return { credential: held, passkey: ((await response.json()) as { passkey: PasskeyJSON }).passkey };
}

/** A signed-in user with one passkey. */
async function userWithPasskey(name?: string) {
  const user = await signedInUser();
  const { credential, passkey } = await addPasskey(user.token.access_token, undefined, name);
  return { ...user, credential, passkey };
}

/** A sign-in with `credential`: fresh request options, answered as `overrides` say. */
async function passkeyLogin(credential: SoftCredential, overrides: CeremonyOverrides = {}, extra: Record<string, unknown> = {}) {
  return postLogin(await credential.authenticate(await requestOptions(), overrides), extra);
}

async function passkeyLoginOk(credential: SoftCredential, extra: Record<string, unknown> = {}): Promise<TokenBody> {
  const response = await passkeyLogin(credential, {}, extra);
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as TokenBody;
}

async function listPasskeys(token: string): Promise<PasskeyJSON[]> {
  const response = await call('/auth/passkeys', { token });
  expect(response.status).toBe(200);
  return ((await response.json()) as { passkeys: PasskeyJSON[] }).passkeys;
}

function passkeyRow(credentialId: string) {
  return env.DB.prepare('SELECT user_id, counter, backed_up, device_type, last_used_at FROM passkeys WHERE credential_id = ?1')
    .bind(credentialId)
    .first<{ user_id: string; counter: number; backed_up: number; device_type: string; last_used_at: number | null }>();
}

async function sessionCount(userId: string): Promise<number> {
  const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1').bind(userId).first<{ n: number }>();
  return row?.n ?? 0;
}

function base64url(text: string): string {
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

describe('registering a passkey', () => {
  it('offers creation options for a discoverable credential of this user, on the configured RP', async () => {
    const { id, email, token } = await signedInUser();
    const response = await call('/auth/passkeys/register/options', { method: 'POST', token: token.access_token });
    expect(response.headers.get('cache-control')).toBe('no-store');
    const options = (await response.json()) as CreationOptionsJSON;
    expect(options).toMatchObject({
      rp: { id: RP_ID, name: 'latchkey' },
      // The user handle is the user id, never the email (WebAuthn §14.6.1).
      user: { id: base64url(id), name: email, displayName: email },
      timeout: PASSKEY_CEREMONY_TIMEOUT_MS,
      attestation: 'none',
      excludeCredentials: [],
      authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'preferred' },
    });
    expect(options.pubKeyCredParams.map((param) => param.alg)).toEqual([-7, -8, -257]);
    expect(options.challenge).toMatch(/^[\w-]{43}$/);
  });

  it('stores the passkey, lists it, logs passkey_added, and excludes it from the next options', async () => {
    const { id, token } = await signedInUser();
    const { credential, passkey } = await addPasskey(token.access_token, undefined, 'Laptop');
    expect(passkey).toEqual({
      id: credential.id,
      name: 'Laptop',
      created_at: expect.stringMatching(/Z$/),
      last_used_at: null,
      device_type: 'multiDevice',
      backed_up: true,
      transports: ['internal', 'hybrid'],
    });
    expect(await listPasskeys(token.access_token)).toEqual([passkey]);
    expect(await passkeyRow(credential.id)).toMatchObject({ user_id: id, counter: 0, backed_up: 1, device_type: 'multiDevice' });
    const events = await eventsOf(token.access_token);
    expect(events[0]).toMatchObject({
      type: 'passkey_added',
      session_id: token.session_id,
      detail: { passkey_id: credential.id, name: 'Laptop' },
    });
    const next = await creationOptions(token.access_token);
    expect(next.excludeCredentials).toEqual([{ id: credential.id, type: 'public-key', transports: ['internal', 'hybrid'] }]);

    // A single-device key is stored as one.
    const single = await SoftCredential.create(ORIGIN, { synced: false });
    const { passkey: second } = await addPasskey(token.access_token, single);
    expect(second).toMatchObject({ name: null, device_type: 'singleDevice', backed_up: false });
    expect((await listPasskeys(token.access_token)).map((p) => p.id).sort()).toEqual([credential.id, single.id].sort());
  });

  it('needs a live session: no token, or a revoked one, is refused', async () => {
    await expectProblem(await call('/auth/passkeys/register/options', { method: 'POST' }), 401, 'missing_token');
    await expectProblem(await call('/auth/passkeys', {}), 401, 'missing_token');
    const { token } = await signedInUser();
    const options = await creationOptions(token.access_token);
    const registration = await (await SoftCredential.create(ORIGIN)).register(options);
    expect((await call('/auth/logout-all', { method: 'POST', token: token.access_token })).status).toBe(204);
    await expectProblem(await postRegistration(token.access_token, registration), 401, 'session_revoked');
    await expectProblem(
      await call('/auth/passkeys/register/options', { method: 'POST', token: token.access_token }),
      401,
      'session_revoked',
    );
  });

  it("the user's object refuses a session it holds revoked, whatever D1's mirror told the strict check", async () => {
    const { id, token } = await signedInUser();
    const options = await creationOptions(token.access_token);
    const credential = await SoftCredential.create(ORIGIN);
    // Revoked in the object only, as while D1 is behind: the route's strict check would pass.
    await runInDurableObject(authorityStub(id), (_instance, state) => {
      state.storage.sql.exec("UPDATE sessions SET revoked_at = 1, revoked_reason = 'test' WHERE id = ?", token.session_id);
    });
    const response = await postRegistration(token.access_token, await credential.register(options));
    await expectProblem(response, 401, 'session_revoked');
    expect(await passkeyRow(credential.id)).toBeNull();
  });

  describe('Security: refusals, each of which stores nothing', () => {
    /** Registers with `prepare`'s response and expects 400 passkey_rejected and no stored passkey. */
    async function expectRejected(token: string, credential: SoftCredential, response: RegistrationJSON) {
      await expectProblem(await postRegistration(token, response), 400, 'passkey_rejected');
      expect(await passkeyRow(credential.id)).toBeNull();
    }

    it('a replayed registration: the challenge is spent by the first one', async () => {
      const { token } = await signedInUser();
      const credential = await SoftCredential.create(ORIGIN);
      const response = await credential.register(await creationOptions(token.access_token));
      expect((await postRegistration(token.access_token, response)).status).toBe(201);
      await expectProblem(await postRegistration(token.access_token, response), 400, 'passkey_rejected');
      expect(await listPasskeys(token.access_token)).toHaveLength(1);
    });

    it('foreign challenges: another session of the user, another user, a sign-in challenge, one never issued', async () => {
      const { email, token } = await signedInUser();
      const otherSession = await login(email);
      const otherUser = await signedInUser();
      const credential = await SoftCredential.create(ORIGIN);
      const challenges = [
        (await creationOptions(otherSession.access_token)).challenge,
        (await creationOptions(otherUser.token.access_token)).challenge,
        (await requestOptions()).challenge,
        base64url(crypto.randomUUID()),
      ];
      const mine = await creationOptions(token.access_token);
      for (const challenge of challenges) {
        await expectRejected(token.access_token, credential, await credential.register({ ...mine, challenge }));
      }
      // The session's own challenge was not spent by those attempts.
      expect((await postRegistration(token.access_token, await credential.register(mine))).status).toBe(201);
    });

    it('an expired challenge', async () => {
      const { token } = await signedInUser();
      const credential = await SoftCredential.create(ORIGIN);
      const options = await creationOptions(token.access_token);
      testClock.advance(PASSKEY_CHALLENGE_TTL_MS);
      // The access token expired meanwhile too; its renewal is the same session's.
      const renewed = await renewOk(token.access_token);
      await expectRejected(renewed.access_token, credential, await credential.register(options));
    });

    it('only the newest five unanswered challenges of a user are kept', async () => {
      const { token } = await signedInUser();
      const credential = await SoftCredential.create(ORIGIN);
      const first = await creationOptions(token.access_token);
      for (let n = 0; n < 5; n++) await creationOptions(token.access_token);
      await expectRejected(token.access_token, credential, await credential.register(first));
    });

    it.each([
      ['an origin not in ALLOWED_ORIGINS', { clientData: { origin: 'https://evil.example' } }],
      ['another port of the same host', { clientData: { origin: 'http://localhost:8788' } }],
      ['another RP ID', { rpId: 'evil.example' }],
      ['a sign-in type', { clientData: { type: 'webauthn.get' } }],
      ['no user presence', { flags: FLAG.UV | FLAG.AT }],
      ['a frame on another site', { clientData: { crossOrigin: true, topOrigin: 'https://evil.example' } }],
      ['a cross-origin frame whose browser names no top origin', { clientData: { crossOrigin: true } }],
    ] satisfies Array<[string, CeremonyOverrides]>)('%s', async (_name, overrides) => {
      const { token } = await signedInUser();
      const credential = await SoftCredential.create(ORIGIN);
      await expectRejected(token.access_token, credential, await credential.register(await creationOptions(token.access_token), overrides));
    });

    it('a credential ID that differs from the one the authenticator signed', async () => {
      const { token } = await signedInUser();
      const credential = await SoftCredential.create(ORIGIN);
      const response = await credential.register(await creationOptions(token.access_token));
      const forged = base64url('another credential');
      await expectProblem(await postRegistration(token.access_token, { ...response, id: forged, rawId: forged }), 400, 'passkey_rejected');
      expect(await passkeyRow(forged)).toBeNull();
    });

    it("a credential already registered to another user stays theirs", async () => {
      const victim = await userWithPasskey();
      const attacker = await signedInUser();
      const response = await victim.credential.register(await creationOptions(attacker.token.access_token));
      await expectProblem(await postRegistration(attacker.token.access_token, response), 400, 'passkey_rejected');
      expect(await passkeyRow(victim.credential.id)).toMatchObject({ user_id: victim.id });
      expect(await listPasskeys(attacker.token.access_token)).toEqual([]);
    });

    it.each([
      ['no response', {}],
      ['a response that is not an object', { response: 'x' }],
      ['a non-base64url id', { response: { id: 'a b', rawId: 'a b', type: 'public-key', response: {} } }],
      ['rawId unlike id', { response: { id: 'abc', rawId: 'abd', type: 'public-key', response: {} } }],
      ['another type', { response: { id: 'abc', rawId: 'abc', type: 'password', response: {} } }],
      ['no attestation', { response: { id: 'abc', rawId: 'abc', type: 'public-key', response: { clientDataJSON: 'abc' } } }],
      [
        'transports that are not strings',
        { response: { id: 'abc', rawId: 'abc', type: 'public-key', response: { clientDataJSON: 'a', attestationObject: 'b', transports: [1] } } },
      ],
      ['a name with control characters', { response: { id: 'abc', rawId: 'abc', type: 'public-key', response: { clientDataJSON: 'a', attestationObject: 'b' } }, name: 'a\u0000b' }],
    ])('malformed: %s is 400 invalid_request', async (_name, json) => {
      const { token } = await signedInUser();
      await expectProblem(await call('/auth/passkeys/register', { method: 'POST', token: token.access_token, json }), 400, 'invalid_request');
    });

    it('bytes that are not WebAuthn structures are a refusal, not a fault', async () => {
      const { token } = await signedInUser();
      const json = { response: { id: 'abc', rawId: 'abc', type: 'public-key', response: { clientDataJSON: 'abc', attestationObject: 'abc' } } };
      await expectProblem(await call('/auth/passkeys/register', { method: 'POST', token: token.access_token, json }), 400, 'passkey_rejected');
    });
  });
});

describe('signing in with a passkey', () => {
  it('offers request options with no allowCredentials, and keeps the challenge until it expires', async () => {
    const response = await call('/auth/passkeys/login/options', { method: 'POST' });
    expect(response.headers.get('cache-control')).toBe('no-store');
    const options = (await response.json()) as RequestOptionsJSON;
    expect(options).toMatchObject({ rpId: RP_ID, userVerification: 'preferred', timeout: PASSKEY_CEREMONY_TIMEOUT_MS });
    expect(options.allowCredentials).toBeUndefined();
    const row = await env.DB.prepare('SELECT expires_at FROM webauthn_challenges WHERE challenge = ?1')
      .bind(options.challenge)
      .first<{ expires_at: number }>();
    expect(row?.expires_at).toBeGreaterThan(Date.now() + PASSKEY_CEREMONY_TIMEOUT_MS);
    expect(row?.expires_at).toBeLessThanOrEqual(Date.now() + PASSKEY_CHALLENGE_TTL_MS);
  });

  it('opens a session like a password login: a token that renews, the sessions list, a login event, the counter stored', async () => {
    const { id, credential, passkey, token } = await userWithPasskey('Phone');
    const signedIn = await passkeyLoginOk(credential, { client: 'Phone browser' });
    expect(signedIn).toMatchObject({ token_type: 'Bearer', expires_in: 300 });
    expect(claimsOf(signedIn.access_token)).toMatchObject({ sub: id, sid: signedIn.session_id, gen: 1 });
    expect(claimsOf((await renewOk(signedIn.access_token)).access_token)).toMatchObject({ sid: signedIn.session_id, gen: 2 });
    const account = (await (await call('/api/account', { token: signedIn.access_token })).json()) as { user_id: string };
    expect(account.user_id).toBe(id);

    const sessions = (await (await call('/auth/sessions', { token: token.access_token })).json()) as {
      sessions: Array<{ id: string; client: string | null }>;
    };
    expect(sessions.sessions.map((session) => [session.id, session.client])).toContainEqual([signedIn.session_id, 'Phone browser']);
    const login = (await eventsOf(token.access_token)).find((event) => event.type === 'login' && event.session_id === signedIn.session_id);
    expect(login?.detail).toEqual({ method: 'passkey', passkey_id: passkey.id, user_verified: true, client: 'Phone browser' });

    const row = await passkeyRow(credential.id);
    expect(row).toMatchObject({ counter: 1, backed_up: 1 });
    const rows = await objectRows(id);
    const stored = rows.sessions.find((session) => session.id === signedIn.session_id);
    // Signing in with a passkey proves the credentials: last_login_at moves to this login.
    expect(rows.user?.last_login_at).toBe(stored?.created_at);
    expect(row?.last_used_at).toBe(stored?.created_at);
    expect((await listPasskeys(token.access_token))[0]?.last_used_at).toBe(new Date(stored?.created_at ?? 0).toISOString());
  });

  it('counts for rule 7: a token older than a passkey sign-in, replayed, ends only its own session', async () => {
    const { email, credential } = await userWithPasskey();
    const stolen = await login(email);
    await renewOk(stolen.access_token);
    testClock.advance(1000);
    const fresh = await passkeyLoginOk(credential);
    testClock.advance(GRACE_MS);
    await expectProblem(await renew(stolen.access_token), 401, 'token_reused');
    const reuse = (await eventsOf(fresh.access_token)).find((event) => event.type === 'reuse_detected');
    expect(reuse?.detail).toEqual({ scope: 'session' });
    await renewOk(fresh.access_token);
  });

  it('REQUIRE_VERIFIED_EMAIL refuses a passkey sign-in of an unverified account, as it refuses a password login', async () => {
    const { id, credential } = await userWithPasskey();
    const sessions = await sessionCount(id);
    const response = await direct(
      '/auth/passkeys/login',
      { method: 'POST', json: { response: await credential.authenticate(await requestOptions()) } },
      { ...env, REQUIRE_VERIFIED_EMAIL: 'true' } as Env,
    );
    await expectProblem(response, 403, 'email_unverified');
    expect(await sessionCount(id)).toBe(sessions);
  });

  it('cookie mode sets the token cookie and keeps the token out of the body', async () => {
    const { credential } = await userWithPasskey();
    const response = await postLogin(await credential.authenticate(await requestOptions()), { mode: 'cookie' }, { origin: ORIGIN });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body.access_token).toBeUndefined();
    expect(response.headers.getSetCookie()[0]).toMatch(/^latchkey_at=[\w-]+\.[\w-]+\.[\w-]+;.*HttpOnly/);
    // Asked for from a page on an origin not allowed: refused before anything is spent.
    const options = await requestOptions();
    await expectProblem(
      await postLogin(await credential.authenticate(options), { mode: 'cookie' }, { origin: 'https://evil.example' }),
      403,
      'forbidden_origin',
    );
    expect((await postLogin(await credential.authenticate(options))).status).toBe(200);
  });

  it('an authenticator that keeps no counter (always 0) signs in again and again', async () => {
    const { credential } = await userWithPasskey();
    for (let n = 0; n < 3; n++) {
      const response = await passkeyLogin(credential, { counter: 0 });
      expect(response.status, await response.clone().text()).toBe(200);
    }
    expect((await passkeyRow(credential.id))?.counter).toBe(0);
  });

  describe('Security: refusals, each of which opens no session', () => {
    /** Posts `response`, expects 401 invalid_credentials, and that the user has no more sessions than before. */
    async function expectRefused(userId: string, response: Promise<Response>) {
      const before = await sessionCount(userId);
      await expectProblem(await response, 401, 'invalid_credentials');
      expect(await sessionCount(userId)).toBe(before);
    }

    it('a replayed sign-in: the challenge is spent by the first one', async () => {
      const { id, credential } = await userWithPasskey();
      const response = await credential.authenticate(await requestOptions());
      expect((await postLogin(response)).status).toBe(200);
      await expectRefused(id, postLogin(response));
    });

    it('a refused attempt spends its challenge too: it cannot be retried with variations', async () => {
      const { id, credential } = await userWithPasskey();
      const options = await requestOptions();
      await expectRefused(id, postLogin(await credential.authenticate(options, { clientData: { origin: 'https://evil.example' } })));
      await expectRefused(id, postLogin(await credential.authenticate(options)));
    });

    it('foreign challenges: one never issued, a registration challenge, an expired one', async () => {
      const { id, credential, token } = await userWithPasskey();
      await expectRefused(id, postLogin(await credential.authenticate({ challenge: base64url(crypto.randomUUID()), rpId: RP_ID })));
      const registration = await creationOptions(token.access_token);
      await expectRefused(id, postLogin(await credential.authenticate({ challenge: registration.challenge, rpId: RP_ID })));
      const options = await requestOptions();
      testClock.advance(PASSKEY_CHALLENGE_TTL_MS);
      await expectRefused(id, postLogin(await credential.authenticate(options)));
    });

    it.each([
      ['an origin not in ALLOWED_ORIGINS', { clientData: { origin: 'https://evil.example' } }],
      ['another port of the same host', { clientData: { origin: 'http://localhost:8788' } }],
      ['another RP ID', { rpId: 'evil.example' }],
      ['a registration type', { clientData: { type: 'webauthn.create' } }],
      ['no user presence', { flags: FLAG.UV }],
      ['a frame on another site', { clientData: { crossOrigin: true, topOrigin: 'https://evil.example' } }],
      ['a cross-origin frame whose browser names no top origin', { clientData: { crossOrigin: true } }],
      ['no user handle', { userHandle: null }],
    ] satisfies Array<[string, CeremonyOverrides]>)('%s', async (_name, overrides) => {
      const { id, credential } = await userWithPasskey();
      await expectRefused(id, passkeyLogin(credential, overrides));
      expect((await passkeyRow(credential.id))?.counter).toBe(0);
    });

    it("a user handle naming another user (the passkey's owner is who signs in, or no one)", async () => {
      const { id, credential } = await userWithPasskey();
      const other = await signedInUser();
      await expectRefused(id, passkeyLogin(credential, { userHandle: base64url(other.id) }));
      expect(await sessionCount(other.id)).toBe(1);
    });

    it('an unknown credential, and a known credential ID signed by another key', async () => {
      const { id, credential } = await userWithPasskey();
      const stranger = await SoftCredential.create(ORIGIN);
      stranger.userHandle = base64url(id);
      await expectRefused(id, passkeyLogin(stranger));
      const forged = await stranger.authenticate(await requestOptions());
      await expectRefused(id, postLogin({ ...forged, id: credential.id, rawId: credential.id }));
    });

    it('a counter that does not increase is refused and logged as passkey_counter_regressed', async () => {
      const { id, credential, token } = await userWithPasskey();
      expect((await passkeyLogin(credential, { counter: 5 })).status).toBe(200);
      await expectRefused(id, passkeyLogin(credential, { counter: 3 }));
      await expectRefused(id, passkeyLogin(credential, { counter: 5 }));
      await expectRefused(id, passkeyLogin(credential, { counter: 0 }));
      expect((await passkeyRow(credential.id))?.counter).toBe(5);
      const regressed = (await eventsOf(token.access_token)).filter((event) => event.type === 'passkey_counter_regressed');
      // Coalesced, like failed logins: the first occurrence's detail, and how often.
      expect(regressed).toEqual([
        expect.objectContaining({
          session_id: null,
          detail: expect.objectContaining({ passkey_id: credential.id, stored_counter: 5, presented_counter: 3, count: 3 }),
        }),
      ]);
      // The authenticator with the higher counter goes on.
      expect((await passkeyLogin(credential, { counter: 6 })).status).toBe(200);
    });

    it('a forged response with a low counter is refused without being logged as a cloned authenticator', async () => {
      const { id, credential, token } = await userWithPasskey();
      expect((await passkeyLogin(credential, { counter: 5 })).status).toBe(200);
      const stranger = await SoftCredential.create(ORIGIN);
      stranger.userHandle = base64url(id);
      const forged = await stranger.authenticate(await requestOptions(), { counter: 1 });
      await expectRefused(id, postLogin({ ...forged, id: credential.id, rawId: credential.id }));
      expect((await eventsOf(token.access_token)).map((event) => event.type)).not.toContain('passkey_counter_regressed');
    });

    it('two sign-ins presenting the same counter at once (a cloned authenticator): exactly one opens a session', async () => {
      const { id, credential } = await userWithPasskey();
      const [first, second] = await Promise.all([requestOptions(), requestOptions()]);
      const responses = await Promise.all([
        credential.authenticate(first, { counter: 7 }),
        credential.authenticate(second, { counter: 7 }),
      ]);
      const before = await sessionCount(id);
      const statuses = (await Promise.all(responses.map((response) => postLogin(response)))).map((response) => response.status);
      expect(statuses.sort()).toEqual([200, 401]);
      expect(await sessionCount(id)).toBe(before + 1);
    });

    it("a passkey removed after its signature was checked cannot open a session: the user's object re-checks it", async () => {
      const { id, credential, token } = await userWithPasskey();
      expect((await call(`/auth/passkeys/${credential.id}`, { method: 'DELETE', token: token.access_token })).status).toBe(204);
      // What the route hands the object once the signature verified, arriving after the removal.
      const result = await authorityStub(id).loginWithPasskey({
        userId: id,
        passkeyId: credential.id,
        counter: 9,
        deviceType: 'multiDevice',
        backedUp: true,
        userVerified: true,
        client: null,
        dpop: null,
      });
      expect(result).toEqual({ ok: false, code: 'invalid_credentials' });
      expect(await sessionCount(id)).toBe(1);
      expect((await objectRows(id)).sessions).toHaveLength(1);
    });

    it.each([
      ['no response', {}],
      ['a response without a signature', { response: { id: 'abc', rawId: 'abc', type: 'public-key', response: { clientDataJSON: 'a', authenticatorData: 'b' } } }],
      ['a user handle that is not base64url', { response: { id: 'abc', rawId: 'abc', type: 'public-key', response: { clientDataJSON: 'a', authenticatorData: 'b', signature: 'c', userHandle: '!' } } }],
      ['an overlong credential ID', { response: { id: 'a'.repeat(1365), rawId: 'a'.repeat(1365), type: 'public-key', response: {} } }],
      ['an unknown mode', { mode: 'session', response: { id: 'abc', rawId: 'abc', type: 'public-key', response: { clientDataJSON: 'a', authenticatorData: 'b', signature: 'c' } } }],
    ])('malformed: %s is 400 invalid_request', async (_name, json) => {
      await expectProblem(await call('/auth/passkeys/login', { method: 'POST', json }), 400, 'invalid_request');
    });

    it('client data that is not JSON is a refusal, not a fault', async () => {
      const json = { response: { id: 'abc', rawId: 'abc', type: 'public-key', response: { clientDataJSON: 'abc', authenticatorData: 'b', signature: 'c' } } };
      await expectProblem(await call('/auth/passkeys/login', { method: 'POST', json }), 401, 'invalid_credentials');
    });

    it('both sign-in routes sit behind a per-address limit of their own, apart from the password routes', async () => {
      const declared = /name\s*=\s*"PASSKEY_RATE_LIMITER"[^[]*?simple\s*=\s*\{\s*limit\s*=\s*(\d+)\s*,\s*period\s*=\s*60\s*\}/.exec(wranglerToml);
      const limit = Number(declared?.[1]);
      expect(limit).toBeGreaterThan(0);
      const limited = { ...env, ADDRESS_RATE_LIMIT: 'on' };
      const network = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:1`;
      const send = async (path: string, json?: unknown) => {
        const ctx = createExecutionContext();
        const request = requestTo(path, { method: 'POST', json, headers: { 'cf-connecting-ip': `${network}::1` } });
        const response = await app.fetch(request, limited, ctx);
        await waitOnExecutionContext(ctx);
        return response;
      };
      const statuses: number[] = [];
      for (let n = 0; n <= limit; n++) statuses.push((await send('/auth/passkeys/login/options')).status);
      expect(statuses.slice(0, limit).every((status) => status === 200)).toBe(true);
      expect(statuses.at(-1)).toBe(429);
      const refused = await send('/auth/passkeys/login', {});
      await expectProblem(refused, 429, 'too_many_attempts');
      expect(refused.headers.get('retry-after')).toBe('60');
      // The password routes still have their allowance for this address.
      await expectProblem(await send('/auth/login', { email: 'nobody@example.com', password: PASSWORD }), 401, 'invalid_credentials');
    });
  });
});

describe('removing a passkey', () => {
  it('deletes it, logs passkey_removed, and it signs in no more', async () => {
    const { id, credential, token } = await userWithPasskey();
    expect((await call(`/auth/passkeys/${credential.id}`, { method: 'DELETE', token: token.access_token })).status).toBe(204);
    expect(await listPasskeys(token.access_token)).toEqual([]);
    expect((await eventsOf(token.access_token))[0]).toMatchObject({
      type: 'passkey_removed',
      session_id: token.session_id,
      detail: { passkey_id: credential.id },
    });
    await expectProblem(await passkeyLogin(credential), 401, 'invalid_credentials');
    expect(await sessionCount(id)).toBe(1);
  });

  it("is 404 for an unknown passkey or another user's, which stays", async () => {
    const owner = await userWithPasskey();
    const other = await signedInUser();
    await expectProblem(
      await call(`/auth/passkeys/${owner.credential.id}`, { method: 'DELETE', token: other.token.access_token }),
      404,
      'not_found',
    );
    await expectProblem(await call('/auth/passkeys/nope', { method: 'DELETE', token: other.token.access_token }), 404, 'not_found');
    await expectProblem(await call(`/auth/passkeys/${'a'.repeat(1400)}`, { method: 'DELETE', token: other.token.access_token }), 404, 'not_found');
    expect(await passkeyRow(owner.credential.id)).toMatchObject({ user_id: owner.id });
    expect((await eventsOf(other.token.access_token)).map((event) => event.type)).toEqual(['login']);
  });

  it('never leaves an account without a way to sign in: with every passkey gone, the password remains', async () => {
    const { email, token } = await userWithPasskey();
    await addPasskey(token.access_token);
    for (const passkey of await listPasskeys(token.access_token)) {
      expect((await call(`/auth/passkeys/${passkey.id}`, { method: 'DELETE', token: token.access_token })).status).toBe(204);
    }
    expect(await listPasskeys(token.access_token)).toEqual([]);
    await login(email, PASSWORD);
  });

  it('needs a live session', async () => {
    const { credential, token } = await userWithPasskey();
    expect((await call('/auth/logout', { method: 'POST', token: token.access_token })).status).toBe(204);
    await expectProblem(await call(`/auth/passkeys/${credential.id}`, { method: 'DELETE', token: token.access_token }), 401, 'session_revoked');
    expect(await passkeyRow(credential.id)).not.toBeNull();
  });
});

describe('challenges do not accumulate', () => {
  it("the daily Cron Trigger deletes expired sign-in challenges; the user's object its expired registration challenges", async () => {
    const { id, token } = await signedInUser();
    const unanswered = await requestOptions();
    await creationOptions(token.access_token);
    const count = async () =>
      runInDurableObject(authorityStub(id), (_instance, state) =>
        state.storage.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM passkey_challenges').one().n,
      );
    expect(await count()).toBe(1);
    testClock.advance(PASSKEY_CHALLENGE_TTL_MS);
    const nowMs = Date.now() + PASSKEY_CHALLENGE_TTL_MS;
    await worker.scheduled({ cron: '17 3 * * *', scheduledTime: nowMs, noRetry() {} } as ScheduledController, env);
    const row = await env.DB.prepare('SELECT 1 FROM webauthn_challenges WHERE challenge = ?1').bind(unanswered.challenge).first();
    expect(row).toBeNull();
    await runDurableObjectAlarm(authorityStub(id));
    expect(await count()).toBe(0);
  });
});
