import { appUrl, mailSender, onOff, origins, relyingPartyId, tcpPort, trueFalse, wholeNumber as wholeNumberOf } from './config-values';
import { ConfigError } from './errors';
import { CLIENT_ID_PATTERN } from '../packages/verify/src/tokens/claims';

/**
 * Everything latchkey reads from `[vars]` and secrets, parsed and validated once per isolate.
 * Durations are whole seconds on the wire (API.md) and keep that unit in their names here.
 */
export interface Config {
  /** `iss` of every token. */
  issuer: string;
  /** `aud` of every token. */
  audience: string;
  /**
   * `client_id` of every token (RFC 9068 §2.2, which requires it). Latchkey has no client
   * registration: every token is requested through its own login by the deployment's first-party
   * app, so one identifier names that app. Default `latchkey`.
   */
  clientId: string;
  /** Lifetime of an access token. Default 300. */
  accessTokenTtlSeconds: number;
  /** How long after `exp` a token can still be renewed (idle limit). Default 14 days. */
  renewWindowSeconds: number;
  /** Absolute lifetime of a session since its login. Default 30 days. */
  sessionMaxAgeSeconds: number;
  /** How long the previous generation still renews (PROTOCOL.md rule 6). Default 10; below `accessTokenTtlSeconds`. */
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
  /** Exact origins browsers may call from: ALLOWED_ORIGINS, plus the dev server's own under `npm start`; also the only origins a passkey ceremony is accepted from. */
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
  /** Whether every login must bind its session to a DPoP key (RFC 9449). Default false. */
  requireDpop: boolean;
  /** The port `npm start` serves on (LATCHKEY_DEV_SERVER_PORT); undefined everywhere else. */
  devServerPort: number | undefined;
  /** Bearer token for /admin routes; undefined disables them. */
  adminToken: string | undefined;
  /** The raw private JWK set; parsed and imported by `tokens/keys.ts`. */
  signingKeysJson: string;
}

/** The variables as Workers hands them over: everything may be missing or mistyped. */
export type RawConfig = Partial<
  Record<keyof typeof DEFAULTS | 'SIGNING_KEYS' | 'ADMIN_TOKEN' | typeof DEV_SERVER_PORT, unknown>
>;

/**
 * Set only by `npm start` (scripts/start.mjs passes `--var` with the port it hands to `wrangler
 * dev`), so that the demo page works on whatever port the server runs, without editing
 * ALLOWED_ORIGINS. It is in no wrangler.toml section, and `wrangler dev --var` reaches no deployed
 * Worker; `npm run deploy` refuses a configuration that sets it. It can only ever add loopback
 * origins, and even if a deployed Worker had it, a page on the visitor's own machine would gain
 * nothing: latchkey's cookie is SameSite=Strict, so a browser never sends it from localhost to
 * another site.
 */
export const DEV_SERVER_PORT = 'LATCHKEY_DEV_SERVER_PORT';

const DEFAULTS = {
  ISSUER: 'http://localhost:8787',
  AUDIENCE: 'latchkey',
  CLIENT_ID: 'latchkey',
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
  RP_ID: 'localhost',
  RP_NAME: 'latchkey',
  EVENT_RETENTION_DAYS: '365',
  EVENT_RETENTION_COUNT: '1000',
  ADDRESS_RATE_LIMIT: 'on',
  HASH_BUDGET: 'on',
  REQUIRE_DPOP: 'false',
} as const;

const DAY = 86_400;

function text(raw: RawConfig, name: keyof typeof DEFAULTS): string {
  const value = raw[name] ?? DEFAULTS[name];
  if (typeof value !== 'string') throw new ConfigError(`${name} must be a string`);
  return value.trim();
}

function wholeNumber(raw: RawConfig, name: keyof typeof DEFAULTS, min: number, max: number): number {
  return wholeNumberOf(name, text(raw, name), min, max);
}

/** `http://localhost:PORT` and `http://127.0.0.1:PORT`: the two names a browser uses for the dev server. */
export function devServerOrigins(port: number): string[] {
  return [`http://localhost:${port}`, `http://127.0.0.1:${port}`];
}

/** Parses and validates the configuration, throwing `ConfigError` with the variable's name. */
export function parseConfig(raw: RawConfig): Config {
  const issuer = text(raw, 'ISSUER');
  const audience = text(raw, 'AUDIENCE');
  if (issuer === '') throw new ConfigError('ISSUER must not be empty');
  if (audience === '') throw new ConfigError('AUDIENCE must not be empty');
  const clientId = text(raw, 'CLIENT_ID');
  if (!CLIENT_ID_PATTERN.test(clientId)) {
    throw new ConfigError(`CLIENT_ID must be 1 to 128 visible ASCII characters without spaces, got ${JSON.stringify(clientId)}`);
  }
  const accessTokenTtlSeconds = wholeNumber(raw, 'ACCESS_TOKEN_TTL', 1, DAY);
  const renewWindowSeconds = wholeNumber(raw, 'RENEW_WINDOW', 0, 366 * DAY);
  const sessionMaxAgeSeconds = wholeNumber(raw, 'SESSION_MAX_AGE', accessTokenTtlSeconds, 3660 * DAY);
  const reuseGraceSeconds = wholeNumber(raw, 'REUSE_GRACE', 0, 300);
  // Rule 6 answers a retry with the current generation's token, minted up to REUSE_GRACE ago. A
  // grace as long as the token's life hands back tokens that are already expired, and it makes
  // theft detection's blind spot (a replay of the previous token is answered, not detected)
  // outlast the very token that was stolen. No setting wants that, so it stops the Worker from
  // loading like any other bad value, rather than a warning in a log nobody reads.
  if (reuseGraceSeconds >= accessTokenTtlSeconds) {
    throw new ConfigError(
      `REUSE_GRACE must be below ACCESS_TOKEN_TTL, got REUSE_GRACE=${reuseGraceSeconds} and ACCESS_TOKEN_TTL=${accessTokenTtlSeconds}: a renewal answered within the grace window would hand back an already expired token. Lower REUSE_GRACE too (e.g. REUSE_GRACE=${Math.max(0, Math.floor(accessTokenTtlSeconds / 2))})`,
    );
  }
  const passwordMinLength = wholeNumber(raw, 'PASSWORD_MIN_LENGTH', 8, 256);
  const loginMaxFailures = wholeNumber(raw, 'LOGIN_MAX_FAILURES', 1, 1000);
  const loginLockoutSeconds = wholeNumber(raw, 'LOGIN_LOCKOUT', 1, 7 * DAY);
  const explicitOrigins = origins(text(raw, 'ALLOWED_ORIGINS'));
  const devPort = tcpPort(DEV_SERVER_PORT, raw[DEV_SERVER_PORT]);
  const allowedOrigins =
    devPort === undefined ? explicitOrigins : [...new Set([...explicitOrigins, ...devServerOrigins(devPort)])];
  const emailFromAddress = mailSender(text(raw, 'EMAIL_FROM'));
  const appUrlValue = appUrl(text(raw, 'APP_URL'));
  const resetTokenTtlSeconds = wholeNumber(raw, 'RESET_TOKEN_TTL', 60, DAY);
  const verificationTokenTtlSeconds = wholeNumber(raw, 'VERIFICATION_TOKEN_TTL', 300, 30 * DAY);
  const requireVerifiedEmail = trueFalse('REQUIRE_VERIFIED_EMAIL', text(raw, 'REQUIRE_VERIFIED_EMAIL'));
  const rpId = relyingPartyId(text(raw, 'RP_ID'));
  const rpName = text(raw, 'RP_NAME');
  if (rpName === '' || [...rpName].length > 64) throw new ConfigError('RP_NAME must be 1 to 64 characters');
  const eventRetentionDays = wholeNumber(raw, 'EVENT_RETENTION_DAYS', 1, 3660);
  const eventRetentionCount = wholeNumber(raw, 'EVENT_RETENTION_COUNT', 10, 100_000);
  const addressRateLimit = onOff('ADDRESS_RATE_LIMIT', text(raw, 'ADDRESS_RATE_LIMIT'));
  const hashBudget = onOff('HASH_BUDGET', text(raw, 'HASH_BUDGET'));
  const requireDpop = trueFalse('REQUIRE_DPOP', text(raw, 'REQUIRE_DPOP'));

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
    clientId,
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
    rpId,
    rpName,
    addressRateLimit,
    hashBudget,
    requireDpop,
    devServerPort: devPort,
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
