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
  /** Exact origins browsers may call from. */
  allowedOrigins: readonly string[];
  /** The sender of verification and reset messages: an address, optionally as `Name <address>`. */
  emailFrom: { address: string; name: string | null };
  /**
   * The page that completes verification and reset: links are `APP_URL#verify=<token>` and
   * `APP_URL#reset=<token>`. Configured, never taken from a request's Host header, which an
   * attacker could set to their own site and so receive the token of the link they had mailed.
   */
  appUrl: string;
  /** How long a password-reset link works. Default 1800 (30 minutes). */
  resetTokenTtlSeconds: number;
  /** How long an email-verification link works. Default 86400 (24 hours). */
  verificationTokenTtlSeconds: number;
  /** Refuse logins of accounts whose email is not verified (403 `email_unverified`). Default false. */
  requireVerifiedEmail: boolean;
  /**
   * Whether the per-address request limit (the `ADDRESS_RATE_LIMITER` binding) guards the routes
   * that hash a password. Default on; `off` is for test suites and load runs that sign many users
   * in from one address, never for a deployment.
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
  EMAIL_FROM: 'latchkey <no-reply@localhost>',
  APP_URL: 'http://localhost:8787/',
  RESET_TOKEN_TTL: '1800',
  VERIFICATION_TOKEN_TTL: '86400',
  REQUIRE_VERIFIED_EMAIL: 'false',
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

function trueFalse(raw: RawConfig, name: keyof typeof DEFAULTS): boolean {
  const value = text(raw, name);
  if (value !== 'true' && value !== 'false') throw new ConfigError(`${name} must be "true" or "false", got ${JSON.stringify(value)}`);
  return value === 'true';
}

// No whitespace, angle brackets, quotes or commas in an address: it goes into a mail header as is.
const MAIL_ADDRESS = /^[^\s<>@",;\p{Cc}]+@[^\s<>@",;\p{Cc}]+$/u;
// A display name of printable ASCII without quotes, brackets or backslashes: no encoding needed.
const MAIL_NAME = /^[\x20-\x7e]+$/;

function emailFrom(raw: RawConfig): Config['emailFrom'] {
  const value = text(raw, 'EMAIL_FROM');
  const named = /^(.*?)\s*<([^<>]*)>$/.exec(value);
  const address = named ? (named[2] as string) : value;
  const name = named ? (named[1] as string).trim() : null;
  if (!MAIL_ADDRESS.test(address) || (name !== null && (name === '' || !MAIL_NAME.test(name) || /["<>\\]/.test(name)))) {
    throw new ConfigError(
      `EMAIL_FROM must be an address such as no-reply@example.com, or "Name <no-reply@example.com>", got ${JSON.stringify(value)}`,
    );
  }
  return { address, name };
}

const MAX_APP_URL_LENGTH = 512;

function appUrl(raw: RawConfig): string {
  const value = text(raw, 'APP_URL');
  let parsed: URL | undefined;
  try {
    parsed = new URL(value);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.hash !== '' || value.includes('#') || parsed.username || parsed.password) {
    throw new ConfigError(
      `APP_URL must be an http(s) URL without a fragment or credentials, such as https://app.example.com/account, got ${JSON.stringify(value)}`,
    );
  }
  // Links go into mail bodies as one line each, and a mail line is at most 998 octets.
  if (parsed.href.length > MAX_APP_URL_LENGTH) throw new ConfigError(`APP_URL must be at most ${MAX_APP_URL_LENGTH} characters`);
  return parsed.href;
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
  const emailFromAddress = emailFrom(raw);
  const appUrlValue = appUrl(raw);
  const resetTokenTtlSeconds = wholeNumber(raw, 'RESET_TOKEN_TTL', 60, DAY);
  const verificationTokenTtlSeconds = wholeNumber(raw, 'VERIFICATION_TOKEN_TTL', 300, 30 * DAY);
  const requireVerifiedEmail = trueFalse(raw, 'REQUIRE_VERIFIED_EMAIL');
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
    emailFrom: emailFromAddress,
    appUrl: appUrlValue,
    resetTokenTtlSeconds,
    verificationTokenTtlSeconds,
    requireVerifiedEmail,
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
