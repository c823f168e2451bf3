import { ApiError } from '../errors';
import { readCappedBody } from './capped-body';

/** API.md: bodies over 16 KiB are refused. */
export const MAX_BODY_BYTES = 16 * 1024;

const invalid = (detail: string) => new ApiError('invalid_request', { detail });

async function readCapped(request: Request): Promise<Uint8Array> {
  const bytes = await readCappedBody(request, MAX_BODY_BYTES);
  if (bytes === undefined) throw new ApiError('payload_too_large');
  return bytes;
}

/**
 * Reads a request body that must be a JSON object: `application/json`, at most 16 KiB, valid
 * UTF-8, valid JSON, an object. Fields are read afterwards with the `field` helpers, which only
 * look at own properties, so keys such as `__proto__` are inert data.
 */
export async function readJsonObject(request: Request): Promise<Record<string, unknown>> {
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) throw invalid('The body must be JSON (Content-Type: application/json).');
  const bytes = await readCapped(request);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw invalid('The body is not valid UTF-8.');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid('The body is not valid JSON.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('The body must be a JSON object.');
  }
  return value as Record<string, unknown>;
}

/** Length in Unicode code points, as API.md counts. */
export function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

// Control and format characters (C0, C1, bidi overrides, zero-width) have no place in a label or email.
const CONTROL = /[\p{Cc}\p{Cf}]/u;
// A lone surrogate (JSON allows the escape "\ud800") is not Unicode text: D1 would store it as bytes
// that are not UTF-8 and hand back U+FFFD, and scrypt would hash it as U+FFFD. Refused like bad UTF-8.
const LONE_SURROGATE = /\p{Cs}/u;

export const field = {
  /** A required string of at most `max` code points. */
  string(body: Record<string, unknown>, name: string, max: number): string {
    const value = Object.hasOwn(body, name) ? body[name] : undefined;
    if (value === undefined) throw invalid(`"${name}" is required.`);
    if (typeof value !== 'string') throw invalid(`"${name}" must be a string.`);
    if (LONE_SURROGATE.test(value)) throw invalid(`"${name}" is not valid Unicode text.`);
    if (codePoints(value) > max) throw invalid(`"${name}" must be at most ${max} characters.`);
    return value;
  },

  /** An optional string label (no control characters); null when absent or null. */
  optionalLabel(body: Record<string, unknown>, name: string, max: number): string | null {
    const value = Object.hasOwn(body, name) ? body[name] : undefined;
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string') throw invalid(`"${name}" must be a string.`);
    if (LONE_SURROGATE.test(value)) throw invalid(`"${name}" is not valid Unicode text.`);
    const trimmed = value.trim();
    if (codePoints(trimmed) > max) throw invalid(`"${name}" must be at most ${max} characters.`);
    if (CONTROL.test(trimmed)) throw invalid(`"${name}" must not contain control characters.`);
    return trimmed === '' ? null : trimmed;
  },

  /** An optional value from a closed set. */
  optionalChoice<T extends string>(body: Record<string, unknown>, name: string, choices: readonly T[]): T | undefined {
    const value = Object.hasOwn(body, name) ? body[name] : undefined;
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !choices.includes(value as T)) {
      throw invalid(`"${name}" must be one of ${choices.map((choice) => `"${choice}"`).join(', ')}.`);
    }
    return value as T;
  },
};

/** Emails compare trimmed, NFKC-normalized and lower-cased (so full-width look-alikes fold too). */
export function normalizeEmail(raw: string): string {
  return raw.trim().normalize('NFKC').toLowerCase();
}

const EMAIL_SHAPE = /^[^\s@]+@[^\s@.][^\s@]*\.[^\s@]+$/u;

/** A normalized email that can be registered; throws `invalid_request` otherwise. */
export function registrableEmail(raw: string): string {
  const email = normalizeEmail(raw);
  if (codePoints(email) > 254 || !EMAIL_SHAPE.test(email) || CONTROL.test(email)) {
    throw invalid('"email" is not a valid email address.');
  }
  return email;
}
