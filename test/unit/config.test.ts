import { describe, expect, it } from 'vitest';
import { DEV_SERVER_PORT, parseConfig, type RawConfig } from '../../src/config';
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
      clientId: 'latchkey',
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
      devServerPort: undefined,
      adminToken: undefined,
      emailFrom: { address: 'no-reply@localhost', name: 'latchkey' },
      appUrl: 'http://localhost:8787/',
      resetTokenTtlSeconds: 1800,
      verificationTokenTtlSeconds: 86_400,
      requireVerifiedEmail: false,
    });
  });

  it('reads EMAIL_FROM as an address or "Name <address>", APP_URL as a URL, REQUIRE_VERIFIED_EMAIL as true or false', () => {
    expect(
      parseConfig({
        ...base,
        EMAIL_FROM: 'accounts@mail.example.com',
        APP_URL: 'https://app.example.com/account?from=mail',
        REQUIRE_VERIFIED_EMAIL: 'true',
      }),
    ).toMatchObject({
      emailFrom: { address: 'accounts@mail.example.com', name: null },
      appUrl: 'https://app.example.com/account?from=mail',
      requireVerifiedEmail: true,
    });
    expect(parseConfig({ ...base, EMAIL_FROM: 'Example Accounts <accounts@mail.example.com>' }).emailFrom).toEqual({
      address: 'accounts@mail.example.com',
      name: 'Example Accounts',
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
    [{ ACCESS_TOKEN_TTL: '2' }, /REUSE_GRACE must be below ACCESS_TOKEN_TTL, got REUSE_GRACE=10 and ACCESS_TOKEN_TTL=2/],
    [{ ACCESS_TOKEN_TTL: '10', REUSE_GRACE: '10' }, /REUSE_GRACE must be below ACCESS_TOKEN_TTL/],
    [{ ACCESS_TOKEN_TTL: '1', REUSE_GRACE: '1' }, /e\.g\. REUSE_GRACE=0/],
    [{ [DEV_SERVER_PORT]: '0' }, /LATCHKEY_DEV_SERVER_PORT must be a TCP port from 1 to 65535, got "0"/],
    [{ [DEV_SERVER_PORT]: '65536' }, /LATCHKEY_DEV_SERVER_PORT/],
    [{ [DEV_SERVER_PORT]: '8787/evil' }, /LATCHKEY_DEV_SERVER_PORT/],
    [{ PASSWORD_MIN_LENGTH: '4' }, /PASSWORD_MIN_LENGTH/],
    [{ LOGIN_MAX_FAILURES: '0' }, /LOGIN_MAX_FAILURES/],
    [{ LOGIN_LOCKOUT: '' }, /LOGIN_LOCKOUT/],
    [{ ALLOWED_ORIGINS: 'https://a.example.com/path' }, /ALLOWED_ORIGINS/],
    [{ ALLOWED_ORIGINS: 'ftp://a.example.com' }, /ALLOWED_ORIGINS/],
    [{ ISSUER: ' ' }, /ISSUER must not be empty/],
    [{ CLIENT_ID: '' }, /CLIENT_ID must be 1 to 128 visible ASCII characters/],
    [{ CLIENT_ID: 'notes app' }, /CLIENT_ID/],
    [{ CLIENT_ID: 'x'.repeat(129) }, /CLIENT_ID/],
    [{ CLIENT_ID: 'café' }, /CLIENT_ID/],
    [{ SIGNING_KEYS: undefined }, /SIGNING_KEYS is not set/],
    [{ ADMIN_TOKEN: 'short' }, /ADMIN_TOKEN must be at least 32 characters/],
    [{ ADDRESS_RATE_LIMIT: 'false' }, /ADDRESS_RATE_LIMIT must be "on" or "off", got "false"/],
    [{ HASH_BUDGET: 'Off' }, /HASH_BUDGET must be "on" or "off"/],
    [{ EMAIL_FROM: 'not an address' }, /EMAIL_FROM must be an address/],
    [{ EMAIL_FROM: 'a@example.com\r\nBcc: victim@example.com' }, /EMAIL_FROM must be an address/],
    [{ EMAIL_FROM: '"Quoted" <a@example.com>' }, /EMAIL_FROM must be an address/],
    [{ EMAIL_FROM: '<a@example.com>' }, /EMAIL_FROM must be an address/],
    [{ APP_URL: 'app.example.com' }, /APP_URL must be an http\(s\) URL/],
    [{ APP_URL: 'javascript:alert(1)' }, /APP_URL must be an http\(s\) URL/],
    [{ APP_URL: 'https://app.example.com/#done' }, /APP_URL must be an http\(s\) URL without a fragment/],
    [{ APP_URL: 'https://user:pass@app.example.com/' }, /APP_URL/],
    [{ RESET_TOKEN_TTL: '0' }, /RESET_TOKEN_TTL must be a whole number from 60 to 86400/],
    [{ VERIFICATION_TOKEN_TTL: '31536000' }, /VERIFICATION_TOKEN_TTL/],
    [{ REQUIRE_VERIFIED_EMAIL: 'yes' }, /REQUIRE_VERIFIED_EMAIL must be "true" or "false", got "yes"/],
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

  it('takes a CLIENT_ID of visible ASCII, a URL included', () => {
    expect(parseConfig({ ...base, CLIENT_ID: 'https://notes.example.com' }).clientId).toBe('https://notes.example.com');
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

  it('accepts a grace just below the lifetime, and none at all', () => {
    expect(parseConfig({ ...base, ACCESS_TOKEN_TTL: '2', REUSE_GRACE: '1' })).toMatchObject({
      accessTokenTtlSeconds: 2,
      reuseGraceSeconds: 1,
    });
    expect(parseConfig({ ...base, ACCESS_TOKEN_TTL: '1', REUSE_GRACE: '0' }).reuseGraceSeconds).toBe(0);
  });
});

describe('the dev server under npm start', () => {
  it("allows the dev server's own origin, by both loopback names, on whatever port it runs", () => {
    const config = parseConfig({ ...base, [DEV_SERVER_PORT]: '8790' });
    expect(config.devServerPort).toBe(8790);
    expect(config.allowedOrigins).toEqual(['http://localhost:8787', 'http://localhost:8790', 'http://127.0.0.1:8790']);
  });

  it('keeps the explicit list first and lists an origin once', () => {
    const config = parseConfig({ ...base, ALLOWED_ORIGINS: 'https://app.example.com', [DEV_SERVER_PORT]: '8787' });
    expect(config.allowedOrigins).toEqual(['https://app.example.com', 'http://localhost:8787', 'http://127.0.0.1:8787']);
    expect(parseConfig({ ...base, [DEV_SERVER_PORT]: '8787' }).allowedOrigins).toEqual([
      'http://localhost:8787',
      'http://127.0.0.1:8787',
    ]);
  });

  it('adds nothing when the variable is absent, as in production', () => {
    const config = parseConfig({ ...base, ALLOWED_ORIGINS: 'https://app.example.com' });
    expect(config.devServerPort).toBeUndefined();
    expect(config.allowedOrigins).toEqual(['https://app.example.com']);
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
