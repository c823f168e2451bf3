import { ConfigError } from './errors';

/**
 * Everything latchkey reads from `[vars]` and secrets, parsed and validated once per isolate.
 * Durations are whole seconds on the wire (API.md) and keep that unit in their names here.
 */
export interface Config {
  /** `iss` of every token. */
  issuer: string;
  /** `aud` of every token. */
  audience: string;
  /** Lifetime of an access token. Default 300. */
  accessTokenTtlSeconds: number;
  /** How long after `exp` a token can still be renewed (idle limit). Default 14 days. */
  renewWindowSeconds: number;
  /** Absolute lifetime of a session since its login. Default 30 days. */
  sessionMaxAgeSeconds: number;
  /** How long the previous generation still renews (PROTOCOL.md rule 6). Default 10. */
  reuseGraceSeconds: number;
  /** Shortest password accepted, in code points. Default 15. */
  passwordMinLength: number;
  /** Failed logins per (email, client address) before 429. Default 5. */
  loginMaxFailures: number;
  /** How long that 429 lasts. Default 900. */
  loginLockoutSeconds: number;
  /** Security events older than this are deleted by the user's object. Default 365. */
  eventRetentionDays: number;
  /** At most this many security events are kept per user, the newest. Default 1000. */
  eventRetentionCount: number;
  /** Exact origins browsers may call from; also the only origins a passkey ceremony is accepted from. */
  allowedOrigins: readonly string[];
  /**
   * The WebAuthn relying party ID: the domain passkeys are scoped to (WebAuthn §5.1.1). Each
   * origin that uses passkeys must be this host or a subdomain of it. Default `localhost`.
   */
  rpId: string;
  /** The relying party's name, shown by some authenticators when a passkey is created. Default `latchkey`. */
  rpName: string;
  /**
   * Whether the per-address request limits guard the routes that hash a password (the
   * `ADDRESS_RATE_LIMITER` binding) and the passkey sign-in routes (`PASSKEY_RATE_LIMITER`).
   * Default on; `off` is for test suites and load runs that sign many users in from one address,
   * never for a deployment.
   */
  addressRateLimit: boolean;
  /**
   * Whether password hashing is held to its bounded share of the isolate (passwords/budget.ts).
   * Default on; `off` is for test suites and load runs, never for a deployment.
   */
  hashBudget: boolean;
  /** Bearer token for /admin routes; undefined disables them. */
  adminToken: string | undefined;
  /** The raw private JWK set; parsed and imported by `tokens/keys.ts`. */
  signingKeysJson: string;
}

/** The variables as Workers hands them over: everything may be missing or mistyped. */
export type RawConfig = Partial<Record<keyof typeof DEFAULTS | 'SIGNING_KEYS' | 'ADMIN_TOKEN', unknown>>;

const DEFAULTS = {
  ISSUER: 'http://localhost:8787',
  AUDIENCE: 'latchkey',
  ACCESS_TOKEN_TTL: '300',
  RENEW_WINDOW: '1209600',
  SESSION_MAX_AGE: '2592000',
  REUSE_GRACE: '10',
  PASSWORD_MIN_LENGTH: '15',
  LOGIN_MAX_FAILURES: '5',
  LOGIN_LOCKOUT: '900',
  ALLOWED_ORIGINS: 'http://localhost:8787',
  RP_ID: 'localhost',
  RP_NAME: 'latchkey',
  EVENT_RETENTION_DAYS: '365',
  EVENT_RETENTION_COUNT: '1000',
  ADDRESS_RATE_LIMIT: 'on',
  HASH_BUDGET: 'on',
} as const;

const DAY = 86_400;

function text(raw: RawConfig, name: keyof typeof DEFAULTS): string {
  const value = raw[name] ?? DEFAULTS[name];
  if (typeof value !== 'string') throw new ConfigError(`${name} must be a string`);
  return value.trim();
}

function wholeNumber(raw: RawConfig, name: keyof typeof DEFAULTS, min: number, max: number): number {
  const value = text(raw, name);
  const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return parsed;
}

/** A test-only switch: `on` or `off`, nothing else, so a typo cannot silently turn a defence off. */
function onOff(raw: RawConfig, name: keyof typeof DEFAULTS): boolean {
  const value = text(raw, name);
  if (value !== 'on' && value !== 'off') throw new ConfigError(`${name} must be "on" or "off", got ${JSON.stringify(value)}`);
  return value === 'on';
}

function origins(value: string): string[] {
  if (value === '') return [];
  return value.split(',').map((entry) => {
    const origin = entry.trim();
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || parsed.origin !== origin || !/^https?:$/.test(parsed.protocol)) {
      throw new ConfigError(
        `ALLOWED_ORIGINS must be comma-separated origins such as https://app.example.com (scheme, host and port only), got ${JSON.stringify(origin)}`,
      );
    }
    return origin;
  });
}

// A lower-case DNS name: labels of letters, digits and inner hyphens. No scheme, port, path or IP
// address: browsers accept only a registrable domain suffix of the page's host as an RP ID.
const DOMAIN_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

function relyingPartyId(value: string): string {
  if (!DOMAIN_NAME.test(value) || /^[\d.]+$/.test(value)) {
    throw new ConfigError(`RP_ID must be a lower-case domain name such as example.com (no scheme or port), got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Parses and validates the configuration, throwing `ConfigError` with the variable's name. */
export function parseConfig(raw: RawConfig): Config {
  const issuer = text(raw, 'ISSUER');
  const audience = text(raw, 'AUDIENCE');
  if (issuer === '') throw new ConfigError('ISSUER must not be empty');
  if (audience === '') throw new ConfigError('AUDIENCE must not be empty');
  const accessTokenTtlSeconds = wholeNumber(raw, 'ACCESS_TOKEN_TTL', 1, DAY);
  const renewWindowSeconds = wholeNumber(raw, 'RENEW_WINDOW', 0, 366 * DAY);
  const sessionMaxAgeSeconds = wholeNumber(raw, 'SESSION_MAX_AGE', accessTokenTtlSeconds, 3660 * DAY);
  const reuseGraceSeconds = wholeNumber(raw, 'REUSE_GRACE', 0, 300);
  const passwordMinLength = wholeNumber(raw, 'PASSWORD_MIN_LENGTH', 8, 256);
  const loginMaxFailures = wholeNumber(raw, 'LOGIN_MAX_FAILURES', 1, 1000);
  const loginLockoutSeconds = wholeNumber(raw, 'LOGIN_LOCKOUT', 1, 7 * DAY);
  const allowedOrigins = origins(text(raw, 'ALLOWED_ORIGINS'));
  const rpId = relyingPartyId(text(raw, 'RP_ID'));
  const rpName = text(raw, 'RP_NAME');
  if (rpName === '' || [...rpName].length > 64) throw new ConfigError('RP_NAME must be 1 to 64 characters');
  const eventRetentionDays = wholeNumber(raw, 'EVENT_RETENTION_DAYS', 1, 3660);
  const eventRetentionCount = wholeNumber(raw, 'EVENT_RETENTION_COUNT', 10, 100_000);
  const addressRateLimit = onOff(raw, 'ADDRESS_RATE_LIMIT');
  const hashBudget = onOff(raw, 'HASH_BUDGET');

  const signingKeysJson = raw.SIGNING_KEYS;
  if (typeof signingKeysJson !== 'string' || signingKeysJson.trim() === '') {
    throw new ConfigError(
      'SIGNING_KEYS is not set: put a private JWK set with `wrangler secret put SIGNING_KEYS` (npm start writes one to .dev.vars)',
    );
  }
  const adminTokenRaw = raw.ADMIN_TOKEN;
  if (adminTokenRaw !== undefined && typeof adminTokenRaw !== 'string') {
    throw new ConfigError('ADMIN_TOKEN must be a string');
  }
  const adminToken = adminTokenRaw === undefined || adminTokenRaw.trim() === '' ? undefined : adminTokenRaw.trim();
  if (adminToken !== undefined && adminToken.length < 32) {
    throw new ConfigError('ADMIN_TOKEN must be at least 32 characters (use a random value)');
  }

  return {
    issuer,
    audience,
    accessTokenTtlSeconds,
    renewWindowSeconds,
    sessionMaxAgeSeconds,
    reuseGraceSeconds,
    passwordMinLength,
    loginMaxFailures,
    loginLockoutSeconds,
    eventRetentionDays,
    eventRetentionCount,
    allowedOrigins,
    rpId,
    rpName,
    addressRateLimit,
    hashBudget,
    adminToken,
    signingKeysJson,
  };
}

const resolved = new WeakMap<object, Config>();

/** The configuration of this isolate's `env`, parsed on first use and reused after. */
export function configFrom(env: object): Config {
  let config = resolved.get(env);
  if (!config) {
    config = parseConfig(env as RawConfig);
    resolved.set(env, config);
  }
  return config;
}
