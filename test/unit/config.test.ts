import { describe, expect, it } from 'vitest';
import { parseConfig, type RawConfig } from '../../src/config';
import { assertAddressRateLimiter } from '../../src/http/rate-limit';
import { parseSigningKeys } from '../../src/tokens/keys';

const KEYS = JSON.stringify({
  keys: [{ kty: 'OKP', crv: 'Ed25519', kid: 'k1', x: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', d: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }],
});
const base: RawConfig = { SIGNING_KEYS: KEYS };

describe('configuration', () => {
  it('applies API.md defaults, in seconds', () => {
    expect(parseConfig(base)).toMatchObject({
      issuer: 'http://localhost:8787',
      audience: 'latchkey',
      accessTokenTtlSeconds: 300,
      renewWindowSeconds: 1_209_600,
      sessionMaxAgeSeconds: 2_592_000,
      reuseGraceSeconds: 10,
      passwordMinLength: 15,
      loginMaxFailures: 5,
      loginLockoutSeconds: 900,
      allowedOrigins: ['http://localhost:8787'],
      rpId: 'localhost',
      rpName: 'latchkey',
      addressRateLimit: true,
      hashBudget: true,
      adminToken: undefined,
    });
  });

  it('reads the test-only switches ADDRESS_RATE_LIMIT and HASH_BUDGET as "on" or "off"', () => {
    expect(parseConfig({ ...base, ADDRESS_RATE_LIMIT: 'off', HASH_BUDGET: 'off' })).toMatchObject({
      addressRateLimit: false,
      hashBudget: false,
    });
    expect(parseConfig({ ...base, ADDRESS_RATE_LIMIT: 'on', HASH_BUDGET: 'on' })).toMatchObject({
      addressRateLimit: true,
      hashBudget: true,
    });
  });

  it('refuses to start with the per-address limit on and its binding missing', () => {
    expect(() => assertAddressRateLimiter({}, true)).toThrow(/ADDRESS_RATE_LIMITER binding is missing/);
    expect(() => assertAddressRateLimiter({}, false)).not.toThrow();
    const limiter = { limit: async () => ({ success: true }) };
    expect(() => assertAddressRateLimiter({ ADDRESS_RATE_LIMITER: limiter }, true)).toThrow(/PASSKEY_RATE_LIMITER binding is missing/);
    expect(() => assertAddressRateLimiter({ ADDRESS_RATE_LIMITER: limiter, PASSKEY_RATE_LIMITER: limiter }, true)).not.toThrow();
  });

  it.each([
    [{ ACCESS_TOKEN_TTL: 'abc' }, /ACCESS_TOKEN_TTL must be a whole number from 1 to 86400, got "abc"/],
    [{ ACCESS_TOKEN_TTL: '0' }, /ACCESS_TOKEN_TTL/],
    [{ ACCESS_TOKEN_TTL: '1.5' }, /ACCESS_TOKEN_TTL/],
    [{ RENEW_WINDOW: '-1' }, /RENEW_WINDOW/],
    [{ SESSION_MAX_AGE: '10' }, /SESSION_MAX_AGE must be a whole number from 300/],
    [{ REUSE_GRACE: '301' }, /REUSE_GRACE/],
    [{ PASSWORD_MIN_LENGTH: '4' }, /PASSWORD_MIN_LENGTH/],
    [{ LOGIN_MAX_FAILURES: '0' }, /LOGIN_MAX_FAILURES/],
    [{ LOGIN_LOCKOUT: '' }, /LOGIN_LOCKOUT/],
    [{ ALLOWED_ORIGINS: 'https://a.example.com/path' }, /ALLOWED_ORIGINS/],
    [{ ALLOWED_ORIGINS: 'ftp://a.example.com' }, /ALLOWED_ORIGINS/],
    [{ ISSUER: ' ' }, /ISSUER must not be empty/],
    [{ SIGNING_KEYS: undefined }, /SIGNING_KEYS is not set/],
    [{ ADMIN_TOKEN: 'short' }, /ADMIN_TOKEN must be at least 32 characters/],
    [{ ADDRESS_RATE_LIMIT: 'false' }, /ADDRESS_RATE_LIMIT must be "on" or "off", got "false"/],
    [{ HASH_BUDGET: 'Off' }, /HASH_BUDGET must be "on" or "off"/],
    [{ RP_ID: 'https://example.com' }, /RP_ID must be a lower-case domain name/],
    [{ RP_ID: 'example.com:8443' }, /RP_ID/],
    [{ RP_ID: 'Example.com' }, /RP_ID/],
    [{ RP_ID: '192.0.2.1' }, /RP_ID/],
    [{ RP_ID: '' }, /RP_ID/],
    [{ RP_NAME: ' ' }, /RP_NAME must be 1 to 64 characters/],
    [{ RP_NAME: 'x'.repeat(65) }, /RP_NAME/],
  ])('refuses %o with a message naming the variable', (override, message) => {
    expect(() => parseConfig({ ...base, ...override })).toThrow(message);
  });

  it('reads the relying party of passkeys', () => {
    expect(parseConfig({ ...base, RP_ID: 'auth.example.com', RP_NAME: 'Example' })).toMatchObject({
      rpId: 'auth.example.com',
      rpName: 'Example',
    });
  });

  it('reads a comma-separated origin list, and an empty one', () => {
    expect(parseConfig({ ...base, ALLOWED_ORIGINS: 'https://a.example.com, http://localhost:3000' }).allowedOrigins).toEqual([
      'https://a.example.com',
      'http://localhost:3000',
    ]);
    expect(parseConfig({ ...base, ALLOWED_ORIGINS: '' }).allowedOrigins).toEqual([]);
  });
});

describe('SIGNING_KEYS', () => {
  it.each([
    ['not JSON', 'nope', /not valid JSON/],
    ['an empty set', '{"keys": []}', /at least one private JWK/],
    ['a public key only', JSON.stringify({ keys: [{ kty: 'OKP', crv: 'Ed25519', kid: 'k', x: 'AAAA' }] }), /lacks a base64url "d"/],
    ['an RSA key', JSON.stringify({ keys: [{ kty: 'RSA', kid: 'k', n: 'AA', e: 'AQAB', d: 'AA' }] }), /Ed25519 \(OKP\) or P-256/],
    ['a symmetric key', JSON.stringify({ keys: [{ kty: 'oct', kid: 'k', k: 'AAAA' }] }), /Ed25519 \(OKP\) or P-256/],
    ['a key without kid', JSON.stringify({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'AA', d: 'AA' }] }), /needs a "kid"/],
  ])('refuses %s', (_name, json, message) => {
    expect(() => parseSigningKeys(json)).toThrow(message);
  });

  it('refuses two keys with one kid', () => {
    const key = JSON.parse(KEYS).keys[0];
    expect(() => parseSigningKeys(JSON.stringify({ keys: [key, key] }))).toThrow(/two keys with kid "k1"/);
  });

  it('publishes an allow-list of public members, never d', () => {
    const [parsed] = parseSigningKeys(
      JSON.stringify({ keys: [{ ...JSON.parse(KEYS).keys[0], p: 'secret', dp: 'secret', ext: true }] }),
    );
    expect(parsed?.publicJwk).toEqual({
      kty: 'OKP',
      crv: 'Ed25519',
      x: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      kid: 'k1',
      alg: 'EdDSA',
      use: 'sig',
    });
  });
});
