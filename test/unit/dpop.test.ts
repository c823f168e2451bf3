/**
 * The pieces of DPoP (RFC 9449) around the proof check: how a request's credential and proof header
 * are read, how refusals are answered, the proof on a login, and the replay cache. The proofs
 * themselves, good and bad, are the corpus in test/security/dpop-proofs.json.
 */
import { generateProof, generateKeyPair as generateProofKey } from 'dpop';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { testClock } from '../../src/clock';
import { comparableHtu } from '../../packages/verify/src/dpop/htu';
import { checkTokenRequestProof, readProofHeader } from '../../packages/verify/src/dpop/possession';
import { PROOF_MAX_AGE_SECONDS } from '../../packages/verify/src/dpop/proof';
import { MemoryReplayCache } from '../../packages/verify/src/dpop/replay';
import { ApiError, problemResponse } from '../../src/errors';
import { authorizationCredential, bearerToken } from '../../src/http/credentials';

afterEach(() => {
  testClock.reset();
});

function withHeaders(entries: Array<[string, string]>): Request {
  const headers = new Headers();
  for (const [name, value] of entries) headers.append(name, value);
  return new Request('https://latchkey.test/auth/renew', { method: 'POST', headers });
}

describe('the Authorization header, with its scheme', () => {
  it.each([
    ['Bearer abc', { scheme: 'Bearer', token: 'abc' }],
    ['bearer abc', { scheme: 'Bearer', token: 'abc' }],
    ['DPoP abc', { scheme: 'DPoP', token: 'abc' }],
    ['dpop   abc  ', { scheme: 'DPoP', token: 'abc' }],
    ['DPoP', { scheme: 'DPoP', token: undefined }],
    ['DPoP    ', { scheme: 'DPoP', token: undefined }],
    ['Bearer ', { scheme: 'Bearer', token: undefined }],
    ['DPoPabc', undefined],
    ['Basic dTpw', undefined],
    ['Token abc', undefined],
  ])('%j', (header, expected) => {
    expect(authorizationCredential(withHeaders([['authorization', header]]))).toEqual(expected);
  });

  it('has no credential without the header, and bearerToken sees Bearer tokens only', () => {
    expect(authorizationCredential(withHeaders([]))).toBeUndefined();
    expect(bearerToken(withHeaders([['authorization', 'Bearer abc']]))).toBe('abc');
    expect(bearerToken(withHeaders([['authorization', 'DPoP abc']]))).toBeUndefined();
  });
});

describe('the DPoP header', () => {
  it('is absent, one proof, or several', () => {
    expect(readProofHeader(withHeaders([]))).toEqual({ kind: 'absent' });
    expect(readProofHeader(withHeaders([['dpop', 'a.b.c']]))).toEqual({ kind: 'one', proof: 'a.b.c' });
    expect(readProofHeader(withHeaders([['dpop', 'a.b.c'], ['dpop', 'a.b.c']]))).toEqual({ kind: 'several' });
    expect(readProofHeader(withHeaders([['dpop', 'a.b.c, d.e.f']]))).toEqual({ kind: 'several' });
  });
});

describe('refusals on the wire', () => {
  async function answered(error: ApiError) {
    const response = problemResponse(error);
    return { status: response.status, challenge: response.headers.get('www-authenticate'), body: await response.json() };
  }

  it('answers a bad proof on a route 401 with a DPoP challenge naming the algorithms', async () => {
    expect(await answered(new ApiError('invalid_dpop_proof'))).toMatchObject({
      status: 401,
      challenge: 'DPoP error="invalid_dpop_proof", algs="ES256 EdDSA Ed25519"',
      body: { status: 401, code: 'invalid_dpop_proof', type: 'urn:latchkey:problem:invalid_dpop_proof' },
    });
  });

  it('answers a bad proof on a token request (login) 400, without a challenge (RFC 9449 §5)', async () => {
    expect(await answered(new ApiError('invalid_dpop_proof', { tokenRequest: true }))).toMatchObject({
      status: 400,
      challenge: null,
      body: { status: 400, code: 'invalid_dpop_proof' },
    });
  });

  it('challenges with the scheme the token came under', async () => {
    expect((await answered(new ApiError('token_expired'))).challenge).toBe('Bearer error="invalid_token", error_description="token_expired"');
    expect((await answered(new ApiError('token_expired', { scheme: 'DPoP' }))).challenge).toBe(
      'DPoP error="invalid_token", error_description="token_expired", algs="ES256 EdDSA Ed25519"',
    );
    expect((await answered(new ApiError('missing_token'))).challenge).toBe('Bearer');
    expect((await answered(new ApiError('missing_token', { scheme: 'DPoP' }))).challenge).toBe('DPoP algs="ES256 EdDSA Ed25519"');
  });

  it('never turns another code into a 400 or a DPoP challenge', async () => {
    expect(await answered(new ApiError('invalid_token', { tokenRequest: true }))).toMatchObject({ status: 401 });
    expect((await answered(new ApiError('unauthorized', { scheme: 'DPoP' }))).challenge).toBe('Bearer realm="latchkey-admin"');
    expect((await answered(new ApiError('invalid_request', { scheme: 'DPoP' }))).challenge).toBeNull();
  });
});

describe('the proof on a login (a token request)', () => {
  const url = 'https://latchkey.test/auth/login';

  it('asks for an unbound session when there is no DPoP header', async () => {
    expect(await checkTokenRequestProof({ proof: { kind: 'absent' }, method: 'POST', url, nowMs: Date.now() })).toEqual({
      ok: true,
      proof: undefined,
    });
  });

  it('binds to the key of a valid proof: its RFC 7638 thumbprint, its jti and how long to remember it', async () => {
    testClock.set(Math.floor(Date.now() / 1000) * 1000);
    const keyPair = await generateProofKey('ES256', { extractable: true });
    const proof = await generateProof(keyPair, url, 'POST');
    const result = await checkTokenRequestProof({ proof: { kind: 'one', proof }, method: 'POST', url, nowMs: Date.now() });
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
    expect(result).toMatchObject({ ok: true, proof: { jkt } });
    if (!result.ok || !result.proof) throw new Error('unreachable');
    expect(result.proof.usableUntilMs).toBe(result.proof.iatMs + PROOF_MAX_AGE_SECONDS * 1000);
    expect(result.proof.jti).toEqual(expect.any(String));
  });

  it('refuses a DPoP header that is not a valid proof for this request, rather than open an unbound session', async () => {
    const keyPair = await generateProofKey('ES256');
    const forRenew = await generateProof(keyPair, 'https://latchkey.test/auth/renew', 'POST');
    const nowMs = Date.now();
    expect(await checkTokenRequestProof({ proof: { kind: 'one', proof: forRenew }, method: 'POST', url, nowMs })).toEqual({
      ok: false,
      code: 'invalid_dpop_proof',
      reason: 'htu',
    });
    expect(await checkTokenRequestProof({ proof: { kind: 'one', proof: 'garbage' }, method: 'POST', url, nowMs })).toMatchObject({
      ok: false,
      reason: 'malformed',
    });
    expect(await checkTokenRequestProof({ proof: { kind: 'several' }, method: 'POST', url, nowMs })).toMatchObject({
      ok: false,
      reason: 'several',
    });
  });
});

describe('htu comparison', () => {
  it.each([
    ['https://A.example/x?q#f', 'https://a.example/x'],
    ['https://a.example:443/x', 'https://a.example/x'],
    ['http://a.example:80/', 'http://a.example/'],
    ['https://a.example', 'https://a.example/'],
    ['https://a.example/%7euser/%2f', 'https://a.example/~user/%2F'],
    ['https://a.example/a/../b', 'https://a.example/b'],
  ])('%s compares as %s', (value, expected) => {
    expect(comparableHtu(value)).toBe(expected);
  });

  it.each(['/relative', 'ftp://a.example/x', 'https://u:p@a.example/x', 'not a url'])('%s compares as nothing', (value) => {
    expect(comparableHtu(value)).toBeUndefined();
  });
});

describe('MemoryReplayCache', () => {
  it('accepts a jti once while it is live, and again once it has lapsed', async () => {
    testClock.set(1_000_000);
    const cache = new MemoryReplayCache();
    expect(await cache.useOnce('a', 1_060_000)).toBe(true);
    expect(await cache.useOnce('a', 1_060_000)).toBe(false);
    testClock.set(1_060_000);
    expect(await cache.useOnce('a', 1_120_000)).toBe(false);
    testClock.set(1_060_001);
    expect(await cache.useOnce('a', 1_120_001)).toBe(true);
  });

  it('holds at most its capacity, forgetting the oldest first, and lapsed entries go on the next use', async () => {
    testClock.set(0);
    const cache = new MemoryReplayCache(3);
    for (const jti of ['a', 'b', 'c', 'd']) expect(await cache.useOnce(jti, 60_000)).toBe(true);
    expect(cache.size).toBe(3);
    expect(await cache.useOnce('a', 60_000)).toBe(true);
    expect(await cache.useOnce('d', 60_000)).toBe(false);
    testClock.set(60_001);
    expect(await cache.useOnce('e', 120_000)).toBe(true);
    expect(cache.size).toBe(1);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new MemoryReplayCache(0)).toThrow(RangeError);
    expect(() => new MemoryReplayCache(1.5)).toThrow(RangeError);
  });
});
