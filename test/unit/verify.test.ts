/**
 * The genuine side of verifyAccessToken, for both algorithms a keyring can hold: a token signed by
 * the keyring verifies, and one changed in its signature does not. (Forgeries of every other kind
 * are in malicious-tokens.test.ts.)
 */
import { exportJWK, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import type { AccessTokenClaims } from '../../src/tokens/claims';
import { keyringFor } from '../../src/tokens/keys';
import { signAccessToken } from '../../src/tokens/sign';
import { verifyAccessToken } from '../../src/tokens/verify';

const NOW_MS = 1_900_000_000_000;
const expect_ = { issuer: 'https://issuer.test', audience: 'verify-test', nowMs: NOW_MS, allowExpired: false };
const claims: AccessTokenClaims = {
  iss: expect_.issuer,
  aud: expect_.audience,
  sub: 'u-1',
  sid: 's-1',
  gen: 1,
  iat: NOW_MS / 1000,
  exp: NOW_MS / 1000 + 300,
  jti: 's-1.1',
};

async function keyringWith(alg: 'EdDSA' | 'ES256') {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return keyringFor(JSON.stringify({ keys: [{ ...(await exportJWK(privateKey)), kid: `key-${alg}`, alg }] }));
}

/** The token with the first byte of its signature changed. */
function withAlteredSignature(token: string): string {
  const dot = token.lastIndexOf('.');
  const bytes = Uint8Array.from(atob(token.slice(dot + 1).replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  const encoded = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `${token.slice(0, dot)}.${encoded}`;
}

describe('verifyAccessToken, genuine tokens', () => {
  for (const alg of ['EdDSA', 'ES256'] as const) {
    it(`${alg}: a token the keyring signed verifies, with its claims`, async () => {
      const keyring = await keyringWith(alg);
      const token = await signAccessToken(claims, keyring);
      expect(JSON.parse(atob(token.split('.')[0]!))).toMatchObject({ alg, typ: 'at+jwt' });
      expect(await verifyAccessToken(token, keyring, expect_)).toEqual({ ok: true, claims });
    });

    it(`${alg}: one changed bit of the signature makes it invalid`, async () => {
      const keyring = await keyringWith(alg);
      const token = await signAccessToken(claims, keyring);
      expect(await verifyAccessToken(withAlteredSignature(token), keyring, expect_)).toEqual({ ok: false, reason: 'invalid' });
    });
  }

  it('ES256: a DER-encoded signature (not the raw r || s of JWS) is invalid', async () => {
    const keyring = await keyringWith('ES256');
    const token = await signAccessToken(claims, keyring);
    const dot = token.lastIndexOf('.');
    const raw = Uint8Array.from(atob(token.slice(dot + 1).replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    // DER: SEQUENCE { INTEGER r, INTEGER s }, each with a leading zero byte so it stays positive.
    const integer = (bytes: Uint8Array) => [0x02, bytes.length + 1, 0x00, ...bytes];
    const body = [...integer(raw.slice(0, 32)), ...integer(raw.slice(32))];
    const der = Uint8Array.from([0x30, body.length, ...body]);
    const encoded = btoa(String.fromCharCode(...der)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    expect(await verifyAccessToken(`${token.slice(0, dot)}.${encoded}`, keyring, expect_)).toEqual({ ok: false, reason: 'invalid' });
  });
});
