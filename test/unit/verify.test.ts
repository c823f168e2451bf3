/**
 * The genuine side of verifyAccessToken, for both algorithms a keyring can hold: a token signed by
 * the keyring verifies, and one changed in its signature does not. (Forgeries of every other kind
 * are in malicious-tokens.test.ts.)
 */
import { base64url, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { accessTokenClaims } from '../../src/sessions/claims';
import type { AccessTokenClaims } from '../../src/tokens/claims';
import { isLowS, toLowS } from '../../packages/verify/src/tokens/ecdsa';
import { type Keyring, keyringFor } from '../../src/tokens/keys';
import { signAccessToken } from '../../src/tokens/sign';
import { verifyAccessToken } from '../../packages/verify/src/tokens/verify';

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
      const [header = ''] = token.split('.');
      expect(JSON.parse(atob(header))).toMatchObject({ alg, typ: 'at+jwt' });
      expect(await verifyAccessToken(token, keyring, expect_)).toEqual({ ok: true, claims });
    });

    it(`${alg}: one changed bit of the signature makes it invalid`, async () => {
      const keyring = await keyringWith(alg);
      const token = await signAccessToken(claims, keyring);
      expect(await verifyAccessToken(withAlteredSignature(token), keyring, expect_)).toEqual({ ok: false, reason: 'invalid' });
    });
  }

  it("EdDSA: the token is byte for byte the one jose's SignJWT makes of the same header and claims", async () => {
    // A generation is answered again as the same token (rule 6): the signer may change, its bytes may not.
    const keyring = await keyringWith('EdDSA');
    const bound = { ...claims, client_id: 'app', cnf: { jkt: 'thumbprint' }, email_verified: true };
    for (const signed of [claims, bound]) {
      const byJose = await new SignJWT({ ...signed })
        .setProtectedHeader({ alg: 'EdDSA', kid: keyring.signer.kid, typ: 'at+jwt' })
        .sign(keyring.signer.key);
      expect(await signAccessToken(signed, keyring)).toBe(byJose);
    }
  });

  it("ES256: the header and claims are byte for byte jose's SignJWT's (the signature is randomized)", async () => {
    const keyring = await keyringWith('ES256');
    const byJose = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: keyring.signer.kid, typ: 'at+jwt' })
      .sign(keyring.signer.key);
    const token = await signAccessToken(claims, keyring);
    expect(token.slice(0, token.lastIndexOf('.'))).toBe(byJose.slice(0, byJose.lastIndexOf('.')));
  });

  it('refuses claims whose iat or exp is not a finite number, which JSON would turn into null', async () => {
    const keyring = await keyringWith('EdDSA');
    await expect(signAccessToken({ ...claims, exp: Number.NaN }, keyring)).rejects.toThrow(TypeError);
    await expect(signAccessToken({ ...claims, iat: Number.POSITIVE_INFINITY }, keyring)).rejects.toThrow(TypeError);
  });

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

/** The P-256 group order: (r, s) and (r, n - s) are both valid ECDSA signatures of one message. */
const P256_ORDER = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function bigintOf(bytes: Uint8Array): bigint {
  return bytes.reduce((value, byte) => (value << 8n) | BigInt(byte), 0n);
}

/** The other spelling of an ES256 token's signature: s replaced by n - s. */
function withOtherS(token: string): string {
  const dot = token.lastIndexOf('.');
  const signature = base64url.decode(token.slice(dot + 1));
  let other = P256_ORDER - bigintOf(signature.subarray(32));
  const flipped = new Uint8Array(signature);
  for (let i = 63; i >= 32; i--) {
    flipped[i] = Number(other & 0xffn);
    other >>= 8n;
  }
  return `${token.slice(0, dot + 1)}${base64url.encode(flipped)}`;
}

async function verifiesWithWebCrypto(token: string, keyring: Keyring): Promise<boolean> {
  const dot = token.lastIndexOf('.');
  const verifier = keyring.verifiers.get(keyring.signer.kid);
  if (verifier === undefined) throw new Error('the keyring has no verifier for its signer');
  const key = verifier.key;
  return crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-256' },
    key,
    base64url.decode(token.slice(dot + 1)),
    new TextEncoder().encode(token.slice(0, dot)),
  );
}

describe('ES256: one spelling per token', () => {
  it('signs with the low s, every time', async () => {
    const keyring = await keyringWith('ES256');
    // WebCrypto picks either half at random: twenty signatures all but surely include high ones.
    for (let i = 0; i < 20; i++) {
      const token = await signAccessToken({ ...claims, gen: i + 1 }, keyring);
      expect(isLowS(base64url.decode(token.slice(token.lastIndexOf('.') + 1)))).toBe(true);
    }
  });

  it('refuses the high-s spelling of a genuine token, which WebCrypto alone would accept', async () => {
    const keyring = await keyringWith('ES256');
    const token = await signAccessToken(claims, keyring);
    const high = withOtherS(token);
    expect(high).not.toBe(token);
    expect(await verifiesWithWebCrypto(high, keyring)).toBe(true);
    expect(await verifyAccessToken(token, keyring, expect_)).toEqual({ ok: true, claims });
    expect(await verifyAccessToken(high, keyring, expect_)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('toLowS leaves a low s alone and maps a high one to n - s', () => {
    const alreadyLow = new Uint8Array(64).fill(1);
    expect(toLowS(alreadyLow)).toBe(alreadyLow);
    // s = n - 1, the highest valid s: its low spelling is 1.
    const high = new Uint8Array(64).fill(7);
    high.set(Uint8Array.from((P256_ORDER - 1n).toString(16).match(/../g) ?? [], (pair) => Number.parseInt(pair, 16)), 32);
    expect(isLowS(high)).toBe(false);
    const low = toLowS(high);
    expect(bigintOf(low.subarray(32))).toBe(1n);
    expect(low.subarray(0, 32)).toEqual(high.subarray(0, 32));
    expect(isLowS(new Uint8Array(64))).toBe(false);
    expect(isLowS(new Uint8Array(63).fill(1))).toBe(false);
  });
});

describe('RFC 9068 and RFC 9449 claims', () => {
  const config = { issuer: expect_.issuer, audience: expect_.audience, clientId: 'notes-app' };
  const session = { id: 's-1', userId: 'u-1', gen: 3, genMintedAt: NOW_MS + 250, genExpiresAt: NOW_MS / 1000 + 300 };
  const jkt = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs';

  it('builds the claims of a generation: client_id always, cnf only for a bound session', () => {
    expect(accessTokenClaims({ config, session })).toEqual({
      iss: expect_.issuer,
      aud: expect_.audience,
      sub: 'u-1',
      client_id: 'notes-app',
      sid: 's-1',
      gen: 3,
      iat: NOW_MS / 1000,
      exp: NOW_MS / 1000 + 300,
      jti: 's-1.3',
    });
    expect(accessTokenClaims({ config, session, jkt: null })).not.toHaveProperty('cnf');
    expect(accessTokenClaims({ config, session, jkt }).cnf).toEqual({ jkt });
  });

  it('verifies client_id and cnf.jkt and hands them to the caller', async () => {
    const keyring = await keyringWith('EdDSA');
    const bound = accessTokenClaims({ config, session, jkt });
    expect(await verifyAccessToken(await signAccessToken(bound, keyring), keyring, expect_)).toEqual({ ok: true, claims: bound });
  });

  it('still verifies a token minted without client_id', async () => {
    const keyring = await keyringWith('EdDSA');
    expect(await verifyAccessToken(await signAccessToken(claims, keyring), keyring, expect_)).toEqual({ ok: true, claims });
  });

  it.each([
    ['a cnf that is not an object', { cnf: 'x' }],
    ['a cnf without jkt', { cnf: {} }],
    ['a cnf with another confirmation method beside jkt', { cnf: { jkt, 'x5t#S256': jkt } }],
    ['a cnf with only another confirmation method', { cnf: { 'x5t#S256': jkt } }],
    ['a jkt that is not a SHA-256 thumbprint', { cnf: { jkt: 'abc' } }],
    ['a numeric jkt', { cnf: { jkt: 42 } }],
    ['a client_id with a space', { client_id: 'notes app' }],
    ['an empty client_id', { client_id: '' }],
    ['a numeric client_id', { client_id: 7 }],
  ])('refuses %s, even signed by the keyring', async (_name, changes) => {
    const keyring = await keyringWith('EdDSA');
    const { signer } = keyring;
    const token = await new SignJWT({ ...claims, ...changes })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })
      .sign(signer.key);
    expect(await verifyAccessToken(token, keyring, expect_)).toEqual({ ok: false, reason: 'invalid' });
  });
});
