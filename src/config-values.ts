import { ConfigError } from './errors';

/**
 * The parsers of config.ts's values, one a kind: each takes the variable's trimmed text and its
 * name, and throws `ConfigError` naming the variable and what it expects.
 */

export function wholeNumber(name: string, value: string, min: number, max: number): number {
  const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return parsed;
}

/** A test-only switch: `on` or `off`, nothing else, so a typo cannot silently turn a defence off. */
export function onOff(name: string, value: string): boolean {
  if (value !== 'on' && value !== 'off') throw new ConfigError(`${name} must be "on" or "off", got ${JSON.stringify(value)}`);
  return value === 'on';
}

export function trueFalse(name: string, value: string): boolean {
  if (value !== 'true' && value !== 'false') throw new ConfigError(`${name} must be "true" or "false", got ${JSON.stringify(value)}`);
  return value === 'true';
}

// No whitespace, angle brackets, quotes or commas in an address: it goes into a mail header as is.
const MAIL_ADDRESS = /^[^\s<>@",;\p{Cc}]+@[^\s<>@",;\p{Cc}]+$/u;
// A display name of printable ASCII without quotes, brackets or backslashes: no encoding needed.
const MAIL_NAME = /^[\x20-\x7e]+$/;

/** EMAIL_FROM: an address, optionally as `Name <address>`. */
export function mailSender(value: string): { address: string; name: string | null } {
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

/** APP_URL: an http(s) URL without a fragment or credentials, normalized. */
export function appUrl(value: string): string {
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

/** ALLOWED_ORIGINS: comma-separated exact origins. */
export function origins(value: string): string[] {
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

/** A TCP port, 1 to 65535; undefined when the variable is unset or empty. */
export function tcpPort(name: string, value: unknown): number | undefined {
  if (value === undefined || value === '') return undefined;
  const parsed = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 65_535) {
    throw new ConfigError(`${name} must be a TCP port from 1 to 65535, got ${JSON.stringify(value)}`);
  }
  return parsed;
}

// A lower-case DNS name: labels of letters, digits and inner hyphens. No scheme, port, path or IP
// address: browsers accept only a registrable domain suffix of the page's host as an RP ID.
const DOMAIN_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** RP_ID: a lower-case domain name. */
export function relyingPartyId(value: string): string {
  if (!DOMAIN_NAME.test(value) || /^[\d.]+$/.test(value)) {
    throw new ConfigError(`RP_ID must be a lower-case domain name such as example.com (no scheme or port), got ${JSON.stringify(value)}`);
  }
  return value;
}
