/**
 * `@latchkey/verify` on its own: key sources, JWKS caching and its limits, strict checks, the
 * middleware. Runs twice, in workerd (the `latchkey` project) and in Node (the `node` project).
 */
import { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createVerifier,
  type DpopReplayStore,
  type LatchkeyBinding,
  type LatchkeyVariables,
  latchkeyAuth,
  type SessionStatus,
} from '@latchkey/verify';
import { testClock } from '../../src/clock';
import { AUDIENCE, ISSUER, JWKS_URL, makeKey, makeProofKey, proofFor, ScriptedJwks, sign, type TestKey } from '../support/verify-fixtures';

const START = Date.UTC(2026, 0, 1);

let key: TestKey;
let jwks: ScriptedJwks;

beforeEach(async () => {
  testClock.set(START);
  key = await makeKey();
  jwks = new ScriptedJwks(key);
  vi.spyOn(console, 'warn').mockImplementation(() => undefined);
  vi.spyOn(console, 'error').mockImplementation(() => undefined);
});

afterEach(() => {
  testClock.reset();
  vi.restoreAllMocks();
});

function remoteVerifier(cache?: { cooldownSeconds?: number; maxAgeSeconds?: number }) {
  return createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: { jwksUrl: JWKS_URL, fetch: jwks.fetch }, cache });
}

describe('verifying a token', () => {
  it('accepts a token latchkey would mint, and returns its claims', async () => {
    const outcome = await remoteVerifier().verify(await sign(key, { sub: 'u-42', sid: 's-7', gen: 3 }));
    expect(outcome).toMatchObject({ ok: true, claims: { sub: 'u-42', sid: 's-7', gen: 3, iss: ISSUER, aud: AUDIENCE } });
  });

  it('answers missing_token without a token, invalid_token for a malformed one', async () => {
    const verifier = remoteVerifier();
    expect(await verifier.verify(undefined)).toEqual({ ok: false, code: 'missing_token' });
    expect(await verifier.verify('')).toEqual({ ok: false, code: 'missing_token' });
    expect(await verifier.verify('not.a.jwt')).toEqual({ ok: false, code: 'invalid_token' });
    expect(jwks.requests).toBe(0);
  });

  it('reads the Bearer token of a request, and nothing else', async () => {
    const verifier = remoteVerifier();
    const token = await sign(key);
    const bearer = new Request('https://api.test/', { headers: { authorization: `Bearer ${token}` } });
    const basic = new Request('https://api.test/', { headers: { authorization: 'Basic dTpw' } });
    expect((await verifier.verifyRequest(bearer)).ok).toBe(true);
    expect(await verifier.verifyRequest(basic)).toEqual({ ok: false, code: 'missing_token' });
  });

  it('answers token_expired past exp plus the 5-second leeway, and not before', async () => {
    const verifier = remoteVerifier();
    const token = await sign(key);
    testClock.advance(304_000);
    expect((await verifier.verify(token)).ok).toBe(true);
    testClock.advance(2_000);
    expect(await verifier.verify(token)).toEqual({ ok: false, code: 'token_expired' });
  });

  it.each([
    ['another issuer', { iss: 'https://elsewhere.test' }, {}],
    ['another audience', { aud: 'billing' }, {}],
    ['a missing session id', { sid: undefined }, {}],
    ['a typ other than at+jwt', {}, { typ: 'JWT' }],
    ['a key-bearing header (jwk)', {}, { jwk: { kty: 'OKP' } }],
  ])('refuses %s as invalid_token', async (_name, claims, header) => {
    expect(await remoteVerifier().verify(await sign(key, claims, header))).toEqual({ ok: false, code: 'invalid_token' });
  });

  it('requireVerifiedEmail: passes email_verified true, refuses false, absent or a non-boolean', async () => {
    const verifier = remoteVerifier();
    const require = { requireVerifiedEmail: true };
    const verified = await sign(key, { email_verified: true });
    expect(await verifier.verify(verified, require)).toMatchObject({ ok: true, claims: { email_verified: true } });
    expect(await verifier.verify(await sign(key, { email_verified: false }), require)).toEqual({ ok: false, code: 'email_unverified' });
    expect(await verifier.verify(await sign(key), require)).toEqual({ ok: false, code: 'email_unverified' });
    // Without the option the claim is only read, never required.
    expect((await verifier.verify(await sign(key, { email_verified: false }))).ok).toBe(true);
    // A claim of the wrong type makes the token invalid, whatever the option.
    expect(await verifier.verify(await sign(key, { email_verified: 'yes' }))).toEqual({ ok: false, code: 'invalid_token' });
  });

  it('refuses a token whose kid is published but whose signature is another key', async () => {
    const impostor = await makeKey(key.kid);
    expect(await remoteVerifier().verify(await sign(impostor))).toEqual({ ok: false, code: 'invalid_token' });
  });
});

describe('the JWKS cache', () => {
  it('fetches the key set once for many tokens', async () => {
    const verifier = remoteVerifier();
    const tokens = await Promise.all(Array.from({ length: 20 }, (_, gen) => sign(key, { gen: gen + 1 })));
    const outcomes = await Promise.all(tokens.map((token) => verifier.verify(token)));
    expect(outcomes.every((outcome) => outcome.ok)).toBe(true);
    expect(jwks.requests).toBe(1);
    expect(jwks.paths).toEqual(['/.well-known/jwks.json']);
  });

  it('keeps the set for its Cache-Control max-age, then fetches it again', async () => {
    jwks.cacheControl = 'public, max-age=120';
    const verifier = remoteVerifier();
    await verifier.verify(await sign(key));
    testClock.advance(119_000);
    await verifier.verify(await sign(key));
    expect(jwks.requests).toBe(1);
    testClock.advance(1_000);
    await verifier.verify(await sign(key));
    expect(jwks.requests).toBe(2);
  });

  it('counts the Age a cache on the way reports against max-age', async () => {
    jwks.cacheControl = 'max-age=120';
    jwks.age = '100';
    const verifier = remoteVerifier();
    await verifier.verify(await sign(key));
    testClock.advance(30_000);
    await verifier.verify(await sign(key));
    expect(jwks.requests).toBe(2);
  });

  it('caps a long max-age at maxAgeSeconds', async () => {
    jwks.cacheControl = 'max-age=31536000';
    const verifier = remoteVerifier({ maxAgeSeconds: 600 });
    await verifier.verify(await sign(key));
    testClock.advance(600_000);
    await verifier.verify(await sign(key));
    expect(jwks.requests).toBe(2);
  });

  it('under no-store still fetches at most once per cooldown', async () => {
    jwks.cacheControl = 'no-store';
    const verifier = remoteVerifier({ cooldownSeconds: 30 });
    for (let second = 0; second < 60; second += 5) {
      expect((await verifier.verify(await sign(key))).ok).toBe(true);
      testClock.advance(5_000);
    }
    expect(jwks.requests).toBe(2);
  });

  it('refetches once for a kid published after the set was fetched (rotation)', async () => {
    const verifier = remoteVerifier({ cooldownSeconds: 30 });
    await verifier.verify(await sign(key));
    const next = await makeKey();
    jwks.keys = [key, next];
    testClock.advance(30_000);
    expect((await verifier.verify(await sign(next))).ok).toBe(true);
    expect(jwks.requests).toBe(2);
  });

  it('Security: a flood of forged kids costs the issuer one request per cooldown', async () => {
    const verifier = remoteVerifier({ cooldownSeconds: 30 });
    await verifier.verify(await sign(key));
    testClock.advance(30_000);
    const forger = await makeKey();
    const forged = await Promise.all(
      Array.from({ length: 50 }, (_, i) => sign({ ...forger, kid: `forged-${i}` })),
    );
    const outcomes = await Promise.all(forged.map((token) => verifier.verify(token)));
    expect(outcomes.every((outcome) => !outcome.ok && outcome.code === 'invalid_token')).toBe(true);
    expect(jwks.requests).toBe(2);
    testClock.advance(29_000);
    await Promise.all(forged.map((token) => verifier.verify(token)));
    expect(jwks.requests).toBe(2);
    testClock.advance(1_000);
    await Promise.all(forged.map((token) => verifier.verify(token)));
    expect(jwks.requests).toBe(3);
  });

  it('answers temporarily_unavailable (not invalid_token) when it never got the keys', async () => {
    jwks.failure = () => new Response('down', { status: 502 });
    const verifier = remoteVerifier({ cooldownSeconds: 30 });
    expect(await verifier.verify(await sign(key))).toEqual({
      ok: false,
      code: 'temporarily_unavailable',
      retryAfterSeconds: 30,
    });
    testClock.advance(10_000);
    expect(await verifier.verify(await sign(key))).toMatchObject({ code: 'temporarily_unavailable', retryAfterSeconds: 20 });
    expect(jwks.requests).toBe(1);
    jwks.failure = null;
    testClock.advance(20_000);
    expect((await verifier.verify(await sign(key))).ok).toBe(true);
  });

  it('keeps using the last good set while the issuer is down, for at most maxAgeSeconds', async () => {
    jwks.cacheControl = 'max-age=60';
    const verifier = remoteVerifier({ cooldownSeconds: 30, maxAgeSeconds: 600 });
    await verifier.verify(await sign(key));
    jwks.failure = () => {
      throw new TypeError('network down');
    };
    testClock.advance(60_000 + 599_000);
    expect((await verifier.verify(await sign(key))).ok).toBe(true);
    testClock.advance(1_000);
    expect(await verifier.verify(await sign(key))).toMatchObject({ ok: false, code: 'temporarily_unavailable' });
  });

  it.each([
    ['a redirect', () => new Response(null, { status: 302, headers: { location: 'https://evil.test/jwks' } })],
    ['a body that is not JSON', () => new Response('<html>')],
    ['a set without usable keys', () => Response.json({ keys: [{ kty: 'RSA', kid: 'r', n: 'AQAB', e: 'AQAB' }] })],
    ['a set over 64 KiB', () => Response.json({ keys: [], padding: 'x'.repeat(70_000) })],
  ])('treats %s as a failed fetch', async (_name, failure) => {
    jwks.failure = failure;
    expect(await remoteVerifier().verify(await sign(key))).toMatchObject({ ok: false, code: 'temporarily_unavailable' });
  });

  it('Security: stops reading an endless JWKS body at 64 KiB, and cancels it', async () => {
    let pulled = 0;
    let cancelled = false;
    const chunk = new TextEncoder().encode(`{"keys":[${' '.repeat(1014)}`.slice(0, 1024));
    jwks.failure = () =>
      new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            pulled += 1;
            controller.enqueue(chunk);
          },
          cancel() {
            cancelled = true;
          },
        }),
        { headers: { 'content-type': 'application/json' } },
      );
    expect(await remoteVerifier().verify(await sign(key))).toMatchObject({ ok: false, code: 'temporarily_unavailable' });
    expect(cancelled).toBe(true);
    // 64 chunks of 1 KiB fill the limit; the 65th passes it. A few more may be queued ahead.
    expect(pulled).toBeGreaterThanOrEqual(65);
    expect(pulled).toBeLessThan(70);
  });

  it('does not read a JWKS body whose Content-Length is over the limit', async () => {
    let pulled = 0;
    jwks.failure = () =>
      new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            pulled += 1;
            controller.enqueue(new Uint8Array(1024));
          },
        }),
        { headers: { 'content-type': 'application/json', 'content-length': String(1 << 20) } },
      );
    expect(await remoteVerifier().verify(await sign(key))).toMatchObject({ ok: false, code: 'temporarily_unavailable' });
    expect(pulled).toBeLessThanOrEqual(1);
  });

  it('skips keys it cannot use and keeps the others', async () => {
    const good = await makeKey();
    jwks.keys = [
      { ...key, publicJwk: { kty: 'RSA', kid: 'rsa', n: 'AQAB', e: 'AQAB' } },
      { ...key, publicJwk: { ...good.publicJwk, kid: 'enc', use: 'enc' } },
      good,
    ];
    const verifier = remoteVerifier();
    expect((await verifier.verify(await sign(good))).ok).toBe(true);
    expect(await verifier.verify(await sign({ ...good, kid: 'enc' }))).toMatchObject({ code: 'invalid_token' });
  });
});

describe('inline keys', () => {
  it('verifies with a JWK set given as JSON, fetching nothing', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      keys: { jwks: JSON.stringify({ keys: [key.publicJwk] }) },
    });
    expect((await verifier.verify(await sign(key))).ok).toBe(true);
    expect(await verifier.verify(await sign(await makeKey()))).toMatchObject({ code: 'invalid_token' });
    expect(verifier.supportsStrict).toBe(false);
  });

  it('ignores private members of an inline key', async () => {
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      keys: { jwks: { keys: [{ ...key.publicJwk, d: 'AAAA' }] } },
    });
    expect((await verifier.verify(await sign(key))).ok).toBe(true);
  });

  it.each([
    ['JSON that does not parse', '{"keys": ['],
    ['a set without keys', { keys: [] }],
    ['a set of keys it cannot use', { keys: [{ kty: 'oct', k: 'AAAA', kid: 'h' }] }],
  ])('refuses %s when built', (_name, jwksValue) => {
    expect(() => createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: { jwks: jwksValue as never } })).toThrow(TypeError);
  });
});

describe('the service binding', () => {
  function fakeBinding(status: SessionStatus | (() => Promise<SessionStatus>)) {
    const calls: string[] = [];
    const binding: LatchkeyBinding = {
      fetch: jwks.fetch,
      sessionStatus: (token) => {
        calls.push(token);
        return typeof status === 'function' ? status() : Promise.resolve(status);
      },
    };
    return { binding, calls, verifier: createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: { binding } }) };
  }

  it('fetches /.well-known/jwks.json through the binding, and never calls latchkey otherwise', async () => {
    const { verifier, calls } = fakeBinding({ status: 'live' });
    expect((await verifier.verify(await sign(key))).ok).toBe(true);
    expect(jwks.paths).toEqual(['/.well-known/jwks.json']);
    expect(calls).toEqual([]);
  });

  it('strict: asks latchkey, after checking the token locally', async () => {
    const { verifier, calls } = fakeBinding({ status: 'live' });
    const token = await sign(key);
    expect(await verifier.verify(token, { strict: true })).toMatchObject({ ok: true, claims: { sub: 'user-1' } });
    expect(calls).toEqual([token]);
    expect(await verifier.verify(await sign(await makeKey()), { strict: true })).toMatchObject({ code: 'invalid_token' });
    expect(calls).toHaveLength(1);
  });

  it.each([
    'session_revoked',
    'session_expired',
    'session_inactive',
    'invalid_token',
    'token_expired',
  ] as const)('strict: answers %s as latchkey does', async (status) => {
    const { verifier } = fakeBinding({ status });
    expect(await verifier.verify(await sign(key), { strict: true })).toEqual({ ok: false, code: status });
  });

  it('strict: a retryable failure of the call is temporarily_unavailable; a misconfigured binding throws', async () => {
    const retryable = fakeBinding(() => Promise.reject(Object.assign(new Error('reset'), { retryable: true })));
    expect(await retryable.verifier.verify(await sign(key), { strict: true })).toEqual({
      ok: false,
      code: 'temporarily_unavailable',
      retryAfterSeconds: 1,
    });
    const wrong = fakeBinding(() => Promise.reject(new TypeError('The RPC receiver does not implement the method')));
    await expect(wrong.verifier.verify(await sign(key), { strict: true })).rejects.toThrow(TypeError);
    const odd = fakeBinding({ status: 'maybe' } as unknown as SessionStatus);
    await expect(odd.verifier.verify(await sign(key), { strict: true })).rejects.toThrow(/LatchkeyInternal/);
  });
});

describe('options are checked when the verifier is built', () => {
  it.each([
    ['no key source', {}],
    ['two key sources', { jwksUrl: JWKS_URL, jwks: { keys: [] } }],
    ['a JWKS over plain http', { jwksUrl: 'http://issuer.test/.well-known/jwks.json' }],
    ['a JWKS URL that is not one', { jwksUrl: 'issuer.test' }],
    ['a binding without fetch', { binding: {} }],
  ])('refuses %s', (_name, keys) => {
    expect(() => createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: keys as never })).toThrow(TypeError);
  });

  it('accepts plain http on loopback, for local development', () => {
    expect(() =>
      createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: { jwksUrl: 'http://localhost:8787/.well-known/jwks.json' } }),
    ).not.toThrow();
  });

  it('refuses an empty issuer or audience, and a cooldown under a second', () => {
    const keys = { jwksUrl: JWKS_URL };
    expect(() => createVerifier({ issuer: '', audience: AUDIENCE, keys })).toThrow(/issuer/);
    expect(() => createVerifier({ issuer: ISSUER, audience: ' ', keys })).toThrow(/audience/);
    expect(() => createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys, cache: { cooldownSeconds: 0 } })).toThrow(/cooldown/);
  });

  it('refuses a strict check without the binding source', async () => {
    await expect(remoteVerifier().verify(await sign(key), { strict: true })).rejects.toThrow(/binding/);
    expect(() => latchkeyAuth(remoteVerifier(), { strict: true })).toThrow(/binding/);
  });
});

describe('the Hono middleware', () => {
  function appWith(verifier = remoteVerifier()) {
    return new Hono<{ Variables: LatchkeyVariables }>().get('/notes', latchkeyAuth(verifier), (c) =>
      c.json({ user: c.get('latchkey').sub }),
    );
  }

  it('lets a valid token through and sets latchkey to its claims', async () => {
    const response = await appWith().request('/notes', { headers: { authorization: `Bearer ${await sign(key)}` } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ user: 'user-1' });
  });

  it('answers missing_token with a bare Bearer challenge (RFC 6750 §3.1)', async () => {
    const response = await appWith().request('/notes');
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    expect(await response.json()).toMatchObject({ status: 401, code: 'missing_token' });
  });

  it('answers a bad token as latchkey does: invalid_token with the error attribute', async () => {
    const response = await appWith().request('/notes', { headers: { authorization: 'Bearer a.b.c' } });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer error="invalid_token", error_description="invalid_token"');
    expect(await response.json()).toMatchObject({ code: 'invalid_token' });
  });

  it('requireVerifiedEmail: answers 403 email_unverified for a token without the claim', async () => {
    const app = new Hono<{ Variables: LatchkeyVariables }>().get(
      '/payments',
      latchkeyAuth(remoteVerifier(), { requireVerifiedEmail: true }),
      (c) => c.json({ user: c.get('latchkey').sub }),
    );
    const refused = await app.request('/payments', { headers: { authorization: `Bearer ${await sign(key)}` } });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ status: 403, code: 'email_unverified' });
    const verified = await sign(key, { email_verified: true });
    expect((await app.request('/payments', { headers: { authorization: `Bearer ${verified}` } })).status).toBe(200);
  });

  it('answers 503 with Retry-After when the keys cannot be had', async () => {
    jwks.failure = () => new Response('down', { status: 500 });
    const response = await appWith().request('/notes', { headers: { authorization: `Bearer ${await sign(key)}` } });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('30');
    expect(await response.json()).toMatchObject({ code: 'temporarily_unavailable' });
  });
});

describe('DPoP-bound tokens (RFC 9449)', () => {
  const URL_ = 'https://api.test/notes';

  function inlineVerifier(replay?: DpopReplayStore) {
    return createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      keys: { jwks: { keys: [key.publicJwk] } },
      ...(replay ? { dpopReplayStore: replay } : {}),
    });
  }

  async function dpopRequest(token: string, proof: string | undefined, scheme = 'DPoP', method = 'GET') {
    const headers = new Headers({ authorization: `${scheme} ${token}` });
    if (proof !== undefined) headers.set('dpop', proof);
    return new Request(URL_, { method, headers });
  }

  it('accepts a bound token with its proof, and hands over cnf.jkt', async () => {
    const client = await makeProofKey();
    const token = await sign(key, { cnf: { jkt: client.jkt } });
    const outcome = await inlineVerifier().verifyRequest(await dpopRequest(token, await proofFor(client, 'GET', URL_, token)));
    expect(outcome).toMatchObject({ ok: true, claims: { cnf: { jkt: client.jkt } } });
  });

  it('refuses a copy of a bound token, without the key, however it is presented', async () => {
    const client = await makeProofKey();
    const thief = await makeProofKey();
    const token = await sign(key, { cnf: { jkt: client.jkt } });
    const verifier = inlineVerifier();
    const refused = { ok: false, code: 'invalid_dpop_proof', scheme: 'DPoP' };
    expect(await verifier.verify(token)).toEqual(refused);
    expect(await verifier.verifyRequest(await dpopRequest(token, undefined, 'Bearer'))).toEqual(refused);
    expect(await verifier.verifyRequest(await dpopRequest(token, undefined))).toEqual(refused);
    expect(await verifier.verifyRequest(await dpopRequest(token, await proofFor(thief, 'GET', URL_, token)))).toEqual(refused);
  });

  it('accepts each proof once', async () => {
    const client = await makeProofKey();
    const token = await sign(key, { cnf: { jkt: client.jkt } });
    const verifier = inlineVerifier();
    const request = async (proof: string) => verifier.verifyRequest(await dpopRequest(token, proof));
    const proof = await proofFor(client, 'GET', URL_, token);
    expect((await request(proof)).ok).toBe(true);
    expect(await request(proof)).toEqual({ ok: false, code: 'invalid_dpop_proof', scheme: 'DPoP' });
    expect((await request(await proofFor(client, 'GET', URL_, token))).ok).toBe(true);
  });

  it('records jtis in the replay store it is given, until the proof lapses, and only for proofs that passed', async () => {
    const client = await makeProofKey();
    const token = await sign(key, { cnf: { jkt: client.jkt } });
    const calls: Array<[string, number, string]> = [];
    let answer = true;
    const store: DpopReplayStore = {
      async useOnce(jti, untilMs, jkt) {
        calls.push([jti, untilMs, jkt]);
        return answer;
      },
    };
    const verifier = inlineVerifier(store);
    expect((await verifier.verifyRequest(await dpopRequest(token, await proofFor(client, 'POST', URL_, token)))).ok).toBe(false);
    expect(calls).toEqual([]);
    expect((await verifier.verifyRequest(await dpopRequest(token, await proofFor(client, 'GET', URL_, token)))).ok).toBe(true);
    expect(calls).toEqual([[expect.any(String), Date.UTC(2026, 0, 1) + 60_000, client.jkt]]);
    answer = false;
    expect(await verifier.verifyRequest(await dpopRequest(token, await proofFor(client, 'GET', URL_, token)))).toMatchObject({
      code: 'invalid_dpop_proof',
    });
  });

  it("dpop: 'required' refuses unbound tokens, and challenges with DPoP", async () => {
    const verifier = inlineVerifier();
    const unbound = await sign(key);
    expect(await verifier.verifyRequest(await dpopRequest(unbound, undefined, 'Bearer'), { dpop: 'required' })).toEqual({
      ok: false,
      code: 'invalid_token',
      scheme: 'DPoP',
    });
    expect(await verifier.verifyRequest(new Request(URL_), { dpop: 'required' })).toEqual({
      ok: false,
      code: 'missing_token',
      scheme: 'DPoP',
    });
    expect((await verifier.verifyRequest(await dpopRequest(unbound, undefined, 'Bearer'))).ok).toBe(true);
  });

  it('refuses an unbound token under the DPoP scheme', async () => {
    const client = await makeProofKey();
    const unbound = await sign(key);
    const request = await dpopRequest(unbound, await proofFor(client, 'GET', URL_, unbound));
    expect(await inlineVerifier().verifyRequest(request)).toEqual({ ok: false, code: 'invalid_token', scheme: 'DPoP' });
  });

  it('checks the token before the proof: a forged token is invalid_token, never a proof question', async () => {
    const client = await makeProofKey();
    const forged = await sign(await makeKey(key.kid), { cnf: { jkt: client.jkt } });
    const request = await dpopRequest(forged, await proofFor(client, 'GET', URL_, forged));
    expect(await inlineVerifier().verifyRequest(request)).toEqual({ ok: false, code: 'invalid_token', scheme: 'DPoP' });
  });

  it('refuses a dpop option it does not know, and a replay store without useOnce, when built', () => {
    const verifier = inlineVerifier();
    expect(() => latchkeyAuth(verifier, { dpop: 'optional' as never })).toThrow(/dpop must be/);
    expect(() =>
      createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: { jwks: { keys: [key.publicJwk] } }, dpopReplayStore: {} as never }),
    ).toThrow(/useOnce/);
  });

  it('the middleware answers a missing proof 401 with the DPoP challenge, and lets a proven request through', async () => {
    const client = await makeProofKey();
    const token = await sign(key, { cnf: { jkt: client.jkt } });
    const app = new Hono<{ Variables: LatchkeyVariables }>().get('/notes', latchkeyAuth(inlineVerifier(), { dpop: 'required' }), (c) =>
      c.json({ jkt: c.get('latchkey').cnf?.jkt }),
    );
    const refused = await app.request(URL_, { headers: { authorization: `DPoP ${token}` } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toBe('DPoP error="invalid_dpop_proof", algs="ES256 EdDSA Ed25519"');
    expect(await refused.json()).toMatchObject({ code: 'invalid_dpop_proof' });
    const proven = await app.request(URL_, { headers: { authorization: `DPoP ${token}`, dpop: await proofFor(client, 'GET', URL_, token) } });
    expect(proven.status).toBe(200);
    expect(await proven.json()).toEqual({ jkt: client.jkt });
  });
});
