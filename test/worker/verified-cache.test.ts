/**
 * The per-isolate cache of verified tokens: every answer it gives must be the answer a full
 * verification would give at that moment, and it must stay bounded.
 */
import { exportJWK, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { testClock } from '../../src/clock';
import type { AccessTokenClaims } from '../../src/tokens/claims';
import { type Keyring, keyringFor } from '../../src/tokens/keys';
import { signAccessToken } from '../../src/tokens/sign';
import { VerifiedTokenCache } from '../../src/tokens/verified-cache';
import { type VerifyExpectations, verifyAccessToken } from '../../packages/verify/src/tokens/verify';
import { call, expectProblem, signedInUser } from '../support/helpers';

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'cache-test';
const T0 = 1_900_000_000_000; // ms
const TTL = 300; // s

async function signingKeyJwk(kid: string) {
  const { privateKey } = await generateKeyPair('EdDSA', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA' };
}

/** Distinct SIGNING_KEYS values: keyringFor keeps one keyring per value, so each gets its own. */
async function keyringOf(...keys: Awaited<ReturnType<typeof signingKeyJwk>>[]): Promise<Keyring> {
  return keyringFor(JSON.stringify({ keys }));
}

function claimsAt(iatMs: number, overrides: Partial<AccessTokenClaims> = {}): AccessTokenClaims {
  const iat = Math.floor(iatMs / 1000);
  const sid = overrides.sid ?? `s-${crypto.randomUUID()}`;
  return { iss: ISSUER, aud: AUDIENCE, sub: 'u-1', sid, gen: 1, iat, exp: iat + TTL, jti: `${sid}.1`, ...overrides };
}

function at(nowMs: number, allowExpired = false): VerifyExpectations {
  return { issuer: ISSUER, audience: AUDIENCE, nowMs, allowExpired };
}

let keyA: Awaited<ReturnType<typeof signingKeyJwk>>;
let keyB: Awaited<ReturnType<typeof signingKeyJwk>>;
let ringA: Keyring;

beforeAll(async () => {
  keyA = await signingKeyJwk('key-a');
  keyB = await signingKeyJwk('key-b');
  ringA = await keyringOf(keyA);
});

describe('VerifiedTokenCache', () => {
  it('verifies a token once and answers later presentations from memory', async () => {
    const cache = new VerifiedTokenCache(8);
    const token = await signAccessToken(claimsAt(T0), ringA);
    const first = await cache.verify(token, ringA, at(T0));
    const second = await cache.verify(token, ringA, at(T0 + 1000));
    expect(first).toEqual({ ok: true, claims: claimsAt(T0, { sid: (first as { claims: AccessTokenClaims }).claims.sid }) });
    expect(second).toEqual(first);
    expect({ hits: cache.hits, misses: cache.misses, size: cache.size }).toEqual({ hits: 1, misses: 1, size: 1 });
  });

  it('re-checks expiry on every hit, with the same 5-second leeway as a full verify, then forgets the token', async () => {
    const cache = new VerifiedTokenCache(8);
    const claims = claimsAt(T0);
    const token = await signAccessToken(claims, ringA);
    await cache.verify(token, ringA, at(T0));
    const lastGoodMs = (claims.exp + 4) * 1000 + 999;
    expect(await cache.verify(token, ringA, at(lastGoodMs))).toEqual(await verifyAccessToken(token, ringA, at(lastGoodMs)));
    expect((await cache.verify(token, ringA, at(lastGoodMs))).ok).toBe(true);
    const expiredMs = (claims.exp + 5) * 1000;
    const expired = await cache.verify(token, ringA, at(expiredMs));
    expect(expired).toEqual({ ok: false, reason: 'expired', claims });
    expect(expired).toEqual(await verifyAccessToken(token, ringA, at(expiredMs)));
    expect(cache.hits).toBe(3);
    expect(cache.size).toBe(0);
    // Renewal's view of the same token (allowExpired) is unchanged by the cache.
    expect(await cache.verify(token, ringA, at(expiredMs, true))).toEqual({ ok: true, claims });
  });

  it('keys on the whole token: the same claims under another signature are verified in full and refused', async () => {
    const cache = new VerifiedTokenCache(8);
    const claims = claimsAt(T0);
    const genuine = await signAccessToken(claims, ringA);
    await cache.verify(genuine, ringA, at(T0));
    // Same header (kid "key-a") and payload, signed by a key that is not in the ring.
    const impostorRing = await keyringOf({ ...keyB, kid: 'key-a' });
    const forged = await signAccessToken(claims, impostorRing);
    expect(forged.slice(0, forged.lastIndexOf('.'))).toBe(genuine.slice(0, genuine.lastIndexOf('.')));
    expect(forged).not.toBe(genuine);
    expect(await cache.verify(forged, ringA, at(T0))).toEqual({ ok: false, reason: 'invalid' });
    expect({ hits: cache.hits, misses: cache.misses }).toEqual({ hits: 0, misses: 2 });
  });

  it('is emptied by a keyring change: a key taken out of the ring stops verifying at once', async () => {
    const cache = new VerifiedTokenCache(8);
    const token = await signAccessToken(claimsAt(T0), ringA);
    await cache.verify(token, ringA, at(T0));
    const rotated = await keyringOf(keyB);
    expect(await cache.verify(token, rotated, at(T0))).toEqual({ ok: false, reason: 'invalid' });
    expect(cache.size).toBe(0);
    expect((await cache.verify(token, ringA, at(T0))).ok).toBe(true);
    expect({ hits: cache.hits, misses: cache.misses }).toEqual({ hits: 0, misses: 3 });
  });

  it('does not store a verdict reached under a keyring that was replaced while it was being verified', async () => {
    const cache = new VerifiedTokenCache(8);
    const ringB = await keyringOf(keyB);
    const tokenA = await signAccessToken(claimsAt(T0), ringA);
    const tokenB = await signAccessToken(claimsAt(T0), ringB);
    const [resultA, resultB] = await Promise.all([cache.verify(tokenA, ringA, at(T0)), cache.verify(tokenB, ringB, at(T0))]);
    expect([resultA.ok, resultB.ok]).toEqual([true, true]);
    expect(cache.size).toBe(1);
    await cache.verify(tokenA, ringB, at(T0));
    expect(cache.hits).toBe(0);
  });

  it('matches the expected issuer and audience: a hit under other expectations is a full verify', async () => {
    const cache = new VerifiedTokenCache(8);
    const token = await signAccessToken(claimsAt(T0), ringA);
    await cache.verify(token, ringA, at(T0));
    expect(await cache.verify(token, ringA, { ...at(T0), issuer: 'https://other.test' })).toEqual({ ok: false, reason: 'invalid' });
    expect(await cache.verify(token, ringA, { ...at(T0), audience: 'other' })).toEqual({ ok: false, reason: 'invalid' });
    expect(cache.hits).toBe(0);
  });

  it('is a miss when the clock reads earlier than the verification, so iat in the future is refused again', async () => {
    const cache = new VerifiedTokenCache(8);
    const token = await signAccessToken(claimsAt(T0), ringA);
    await cache.verify(token, ringA, at(T0));
    const earlier = at(T0 - 60_000);
    expect(await cache.verify(token, ringA, earlier)).toEqual({ ok: false, reason: 'invalid' });
    expect(await verifyAccessToken(token, ringA, earlier)).toEqual({ ok: false, reason: 'invalid' });
    expect(cache.hits).toBe(0);
  });

  it('never stores a failure: a bad token costs a full verification every time', async () => {
    const cache = new VerifiedTokenCache(8);
    const wrongIssuer = await signAccessToken(claimsAt(T0, { iss: 'https://evil.test' }), ringA);
    for (let i = 0; i < 3; i++) expect(await cache.verify(wrongIssuer, ringA, at(T0))).toEqual({ ok: false, reason: 'invalid' });
    expect({ hits: cache.hits, misses: cache.misses, size: cache.size }).toEqual({ hits: 0, misses: 3, size: 0 });
  });

  it('does not store a token that is already expired', async () => {
    const cache = new VerifiedTokenCache(8);
    const claims = claimsAt(T0);
    const token = await signAccessToken(claims, ringA);
    const late = at((claims.exp + 60) * 1000, true);
    expect((await cache.verify(token, ringA, late)).ok).toBe(true);
    expect(cache.size).toBe(0);
  });

  it('stays within its capacity, evicting the least recently used token', async () => {
    const cache = new VerifiedTokenCache(2);
    const [t1, t2, t3] = await Promise.all([1, 2, 3].map(() => signAccessToken(claimsAt(T0), ringA))) as [string, string, string];
    await cache.verify(t1, ringA, at(T0));
    await cache.verify(t2, ringA, at(T0));
    await cache.verify(t1, ringA, at(T0)); // hit: t1 is now the most recently used
    await cache.verify(t3, ringA, at(T0)); // evicts t2
    expect(cache.size).toBe(2);
    expect({ hits: cache.hits, misses: cache.misses }).toEqual({ hits: 1, misses: 3 });
    await cache.verify(t1, ringA, at(T0));
    await cache.verify(t3, ringA, at(T0));
    expect(cache.hits).toBe(3);
    await cache.verify(t2, ringA, at(T0));
    expect(cache.misses).toBe(4);
    expect(cache.size).toBe(2);
  });

  it('hands out claims that cannot be changed, so one request cannot alter what the next one sees', async () => {
    const cache = new VerifiedTokenCache(8);
    const claims = claimsAt(T0);
    const token = await signAccessToken(claims, ringA);
    await cache.verify(token, ringA, at(T0));
    const hit = await cache.verify(token, ringA, at(T0));
    if (!hit.ok) throw new Error('expected a hit');
    expect(() => {
      (hit.claims as { sub: string }).sub = 'someone-else';
    }).toThrow(TypeError);
    expect(await cache.verify(token, ringA, at(T0))).toEqual({ ok: true, claims });
  });

  it('answers exactly as a full verification over a sequence of tokens and instants', async () => {
    const cache = new VerifiedTokenCache(3);
    const ringB = await keyringOf(keyB);
    const tokens = [
      await signAccessToken(claimsAt(T0), ringA),
      await signAccessToken(claimsAt(T0 + 120_000), ringA),
      await signAccessToken(claimsAt(T0, { aud: 'elsewhere' }), ringA),
      await signAccessToken(claimsAt(T0), ringB),
      await signAccessToken(claimsAt(T0 - 200_000), ringA),
    ];
    const instants = [T0, T0 + 1000, T0 + 100_000, T0 + 110_000, T0 + 10_000, T0 + 300_000, T0 + 310_000, T0 + 500_000];
    for (const nowMs of instants) {
      for (const token of [...tokens, ...tokens.slice().reverse()]) {
        for (const allowExpired of [false, true]) {
          const expect_ = at(nowMs, allowExpired);
          expect(await cache.verify(token, ringA, expect_)).toEqual(await verifyAccessToken(token, ringA, expect_));
        }
      }
    }
    expect(cache.hits).toBeGreaterThan(0);
    expect(cache.size).toBeLessThanOrEqual(3);
  });

  it('the capacity must be a positive whole number', () => {
    expect(() => new VerifiedTokenCache(0)).toThrow(RangeError);
    expect(() => new VerifiedTokenCache(1.5)).toThrow(RangeError);
  });
});

describe('the cache on a protected route', () => {
  it('a token answered from the cache still expires on time, on stateless and strict routes', async () => {
    // Frozen at a whole second: the token's exp is then exactly 300 s away, however slowly the machine runs.
    testClock.set(Math.floor(Date.now() / 1000) * 1000);
    const { token } = await signedInUser();
    for (let i = 0; i < 2; i++) {
      expect((await call('/api/me', { token: token.access_token })).status).toBe(200);
      expect((await call('/api/account', { token: token.access_token })).status).toBe(200);
    }
    testClock.advance(300_000 + 4_000);
    expect((await call('/api/me', { token: token.access_token })).status).toBe(200);
    testClock.advance(1_000);
    await expectProblem(await call('/api/me', { token: token.access_token }), 401, 'token_expired');
    await expectProblem(await call('/api/account', { token: token.access_token }), 401, 'token_expired');
  });
});
