import { DBSC_ALGORITHMS } from './algorithms';

/**
 * The header fields of Device Bound Session Credentials, as the draft names them and Chromium
 * sends and reads them.
 * - `registration` (response): asks the browser to make a key and register it.
 * - `challenge` (response): a challenge for one session's next proof; on a 403 from the refresh
 *   URL it asks for a proof at once, on any other answer it is kept for the next refresh.
 * - `response` (request): the proof, a `dbsc+jwt` signed by the session's key.
 * - `sessionId` (request): which session a refresh is for. The `Sec-` prefix is a forbidden
 *   header name for page scripts, so a page cannot send it itself: only the browser's own
 *   refresh carries it.
 * - `skipped` (request): the browser sends a request without the bound cookie on purpose (its
 *   refresh quota, an unreachable refresh URL); informational.
 */
export const DBSC_HEADERS = {
  registration: 'Secure-Session-Registration',
  challenge: 'Secure-Session-Challenge',
  response: 'Secure-Session-Response',
  sessionId: 'Sec-Secure-Session-Id',
  skipped: 'Secure-Session-Skipped',
} as const;

/** Where browsers register their key; named in the registration header. */
export const DBSC_REGISTRATION_PATH = '/auth/dbsc/register';
/** Where browsers refresh the bound cookie; named in the session instructions. */
export const DBSC_REFRESH_PATH = '/auth/dbsc/refresh';

/**
 * Longest `Secure-Session-Response` read. A proof with an RSA-4096 key in its header is about
 * 1.9 KB; anything past this is not a proof, and is refused before any parsing or crypto.
 */
export const MAX_PROOF_HEADER_LENGTH = 8192;
/** Longest `Sec-Secure-Session-Id` read: latchkey's identifiers are 73 characters. */
export const MAX_SESSION_ID_HEADER_LENGTH = 256;

/**
 * An RFC 9651 §4.1.6 String: printable ASCII only, with `"` and `\` escaped. Throws for anything
 * else, which would be a bug here (challenges and identifiers are base64url and UUIDs).
 */
export function serializeSfString(value: string): string {
  if (!/^[\x20-\x7e]*$/.test(value)) throw new RangeError('a structured-field string holds printable ASCII only');
  return `"${value.replace(/[\\"]/g, (character) => `\\${character}`)}"`;
}

/**
 * The value of `Secure-Session-Registration` for one login: an inner list of the algorithms
 * latchkey verifies, the registration path, and the challenge the registration proof must sign
 * (its `jti`). No `authorization` parameter: the session's own cookie goes with the
 * registration, and the challenge is single-use and tied to that session.
 */
export function registrationHeaderValue(challenge: string, path: string = DBSC_REGISTRATION_PATH): string {
  return `(${DBSC_ALGORITHMS.join(' ')});path=${serializeSfString(path)};challenge=${serializeSfString(challenge)}`;
}

/** The value of `Secure-Session-Challenge`: the challenge, for the session named in `id`. */
export function challengeHeaderValue(challenge: string, sessionIdentifier: string): string {
  return `${serializeSfString(challenge)};id=${serializeSfString(sessionIdentifier)}`;
}

/** A request header that carries one string: absent, malformed (or repeated), or its value. */
export type StringField = { kind: 'absent' } | { kind: 'malformed' } | { kind: 'one'; value: string };

/** A bare value: visible ASCII without the characters that delimit or quote structured fields. */
const BARE_VALUE = /^[\x21-\x7e]+$/;
const BARE_EXCLUDED = /[",;\\]/;

/**
 * Parses an RFC 9651 §4.2.5 String at the start of `text`, then skips any parameters after it
 * (the draft: "Any parameters SHOULD be ignored"). Undefined when `text` is not exactly that:
 * a second list member (a repeated header, joined with ", ") is not one string.
 */
function parseSfStringItem(text: string): string | undefined {
  let value = '';
  let index = 1;
  for (;;) {
    if (index >= text.length) return undefined;
    const character = text[index] as string;
    index += 1;
    if (character === '\\') {
      const escaped = text[index];
      if (escaped !== '"' && escaped !== '\\') return undefined;
      value += escaped;
      index += 1;
    } else if (character === '"') {
      break;
    } else if (/^[\x20-\x7e]$/.test(character)) {
      value += character;
    } else {
      return undefined;
    }
  }
  const parameters = text.slice(index);
  // Parameters: `;key` or `;key=bare-item`, with optional spaces before each key. Their values are
  // not used, so only their shape is checked: no second item may hide among them.
  if (!/^(\s*;\s*[a-z*][a-z0-9_.*-]*(=("([^"\\]|\\["\\])*"|[^\s;,"]+))?)*$/.test(parameters)) return undefined;
  return value;
}

/**
 * Reads a request header that the draft defines as a structured-field String. Chromium sends it
 * bare (the JWT or the identifier as it is, without quotes), which is read as well; a value that
 * is neither, or more than one value, is malformed. `maxLength` bounds the raw header.
 */
export function readStringField(request: Request, name: string, maxLength: number): StringField {
  const raw = request.headers.get(name);
  if (raw === null) return { kind: 'absent' };
  const text = raw.trim();
  if (text.length === 0 || text.length > maxLength) return { kind: 'malformed' };
  if (text.startsWith('"')) {
    const value = parseSfStringItem(text);
    return value === undefined || value.length === 0 ? { kind: 'malformed' } : { kind: 'one', value };
  }
  return BARE_VALUE.test(text) && !BARE_EXCLUDED.test(text) ? { kind: 'one', value: text } : { kind: 'malformed' };
}

/** The proof a request carries in `Secure-Session-Response`. */
export function readProofField(request: Request): StringField {
  return readStringField(request, DBSC_HEADERS.response, MAX_PROOF_HEADER_LENGTH);
}

/** The session a refresh names in `Sec-Secure-Session-Id`. */
export function readSessionIdField(request: Request): StringField {
  return readStringField(request, DBSC_HEADERS.sessionId, MAX_SESSION_ID_HEADER_LENGTH);
}
