/**
 * The browser client's proofs and clock, outside a browser: what makeProof builds is what
 * latchkey's proof check accepts, dated by the clock the client learned from latchkey's Date
 * header rather than by the device's. (Key storage and the tabs need a browser: test/browser/.)
 */
import { calculateJwkThumbprint } from 'jose';
import { describe, expect, it } from 'vitest';
import { makeProof, type ProofSigner } from '../../packages/client/src/proof';
import { ServerClock } from '../../packages/client/src/server-clock';
import { verifyDpopProof } from '../../packages/verify/src/dpop/proof';

async function signer(): Promise<ProofSigner> {
  const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  const { kty, crv, x, y } = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as JsonWebKey;
  if (kty === undefined || crv === undefined || x === undefined || y === undefined) throw new Error('the exported public JWK lacks a member');
  return { privateKey: pair.privateKey, jwk: { kty, crv, x, y } };
}

describe("the browser client's DPoP proofs", () => {
  it('pass latchkey\'s check: htu without query, ath over the token, the key\'s thumbprint, iat as given', async () => {
    const key = await signer();
    const nowMs = Date.UTC(2026, 0, 1, 12);
    const proof = await makeProof(key, {
      method: 'GET',
      url: 'https://auth.example.test/api/me?x=1#y',
      iatSeconds: nowMs / 1000 - 3,
      accessToken: 'the.access.token',
    });
    const result = await verifyDpopProof(proof, {
      method: 'GET',
      url: 'https://auth.example.test/api/me',
      nowMs,
      accessToken: 'the.access.token',
      jkt: await calculateJwkThumbprint(key.jwk),
    });
    expect(result).toMatchObject({ ok: true, iatMs: nowMs - 3000 });
  });

  it('carry no ath without a token (login, cookie mode), and the private key cannot be exported', async () => {
    const key = await signer();
    const proof = await makeProof(key, { method: 'POST', url: 'https://auth.example.test/auth/login', iatSeconds: 1_767_268_800 });
    const [header = '', payload = ''] = proof.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    expect(claims).not.toHaveProperty('ath');
    expect(Object.keys(JSON.parse(Buffer.from(header, 'base64url').toString()).jwk).sort()).toEqual(['crv', 'kty', 'x', 'y']);
    await expect(crypto.subtle.exportKey('jwk', key.privateKey)).rejects.toThrow();
  });
});

describe("the browser client's server clock", () => {
  it('dates by the Date of latchkey\'s answer carried forward, not by the device clock', () => {
    const clock = new ServerClock();
    expect(Math.abs(clock.nowSeconds() - Date.now() / 1000)).toBeLessThanOrEqual(1);
    // Measured against the monotonic clock the estimate runs on: in a long-lived process the wall
    // clock drifts from it by more than the second this allows.
    const twoHoursAheadMs = Math.floor((performance.timeOrigin + performance.now() + 7_200_000) / 1000) * 1000;
    clock.observe(new Response(null, { headers: { date: new Date(twoHoursAheadMs).toUTCString() } }), performance.now());
    expect(Math.abs(clock.nowSeconds() - twoHoursAheadMs / 1000)).toBeLessThanOrEqual(1);
    expect(clock.nowSeconds() - Date.now() / 1000).toBeGreaterThan(7_100);
  });

  it('ignores an answer without a usable Date, and another tab\'s offset once it has its own', () => {
    const clock = new ServerClock();
    clock.observe(new Response(null, { headers: { date: 'not a date' } }), performance.now());
    expect(clock.offsetMs).toBeNull();
    clock.adopt(60_000);
    expect(clock.offsetMs).toBe(60_000);
    clock.observe(new Response(null, { headers: { date: new Date().toUTCString() } }), performance.now());
    const own = clock.offsetMs;
    clock.adopt(999_999);
    expect(clock.offsetMs).toBe(own);
  });
});
