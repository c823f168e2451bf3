import { ACCESS_TOKEN_TYP, type AccessTokenClaims, CLIENT_ID_PATTERN } from './claims.js';
import { isLowS } from './ecdsa.js';
import type { SigningAlgorithm, VerificationKey } from './keys.js';

/** Leeway on `exp`, and on an `iat` in the future (API.md: at most 5 seconds). */
export const CLOCK_LEEWAY_SECONDS = 5;

/** Longest token accepted; ours are about 400 bytes, so anything near this is an attack. */
const MAX_TOKEN_LENGTH = 4096;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const IDENTIFIER = /^[A-Za-z0-9._:-]{1,128}$/;
/** An RFC 7638 SHA-256 thumbprint: 32 bytes in unpadded base64url. */
const JKT = /^[A-Za-z0-9_-]{43}$/;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * RFC 4648 §3.5: the last character of an unpadded segment may carry bits that decoders drop, so
 * one signature has up to 16 spellings that all verify. Only the canonical one (those bits zero) is
 * accepted: a token is a credential, and one token should have exactly one spelling wherever it is
 * compared, logged or deny-listed.
 */
function isCanonicalBase64url(segment: string): boolean {
  const unusedBits = [0, 6, 4, 2][segment.length % 4] as number;
  if (unusedBits === 6) return false;
  const last = BASE64URL.indexOf(segment.charAt(segment.length - 1));
  return (last & ((1 << unusedBits) - 1)) === 0;
}

/**
 * Header parameters that point at keys or certificates. Latchkey never takes a key from a token
 * (only from its own keyring, by `kid`), so a token carrying one is forged or confused: refuse it
 * rather than rely on ignoring it.
 */
const FORBIDDEN_HEADER_PARAMETERS = ['jku', 'jwk', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'crit', 'b64', 'zip', 'enc'];

export interface VerifyExpectations {
  issuer: string;
  audience: string;
  /** Milliseconds since the epoch. */
  nowMs: number;
  /** Renewal and logout take expired tokens; every other route does not. */
  allowExpired: boolean;
}

/**
 * Where the key a token names comes from: latchkey's own keyring (its `verifiers` by `kid`), or a
 * lookup by `kid` (a verifier elsewhere, whose keys come from a fetched JWKS). Asked only once the
 * token's shape and header have passed, so malformed input never reaches it.
 */
export type VerificationKeys =
  | { verifiers: ReadonlyMap<string, VerificationKey> }
  | ((kid: string) => Promise<VerificationKey | undefined>);

export type VerifyResult =
  | { ok: true; claims: AccessTokenClaims }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'expired'; claims: AccessTokenClaims };

/**
 * The problem code (API.md) of a token that did not verify: `token_expired` tells the client to
 * renew, `invalid_token` that renewing will not help. latchkey's routes and every verifier answer alike.
 */
export function tokenFailureCode(failure: { reason: 'invalid' | 'expired' }): 'token_expired' | 'invalid_token' {
  return failure.reason === 'expired' ? 'token_expired' : 'invalid_token';
}

const INVALID = { ok: false, reason: 'invalid' } as const;

/**
 * The WebCrypto parameters of each algorithm latchkey accepts. The algorithm always comes from the
 * key (found by `kid` among the trusted keys), never from the token: the header's `alg` must merely agree.
 */
const SIGNATURE_PARAMETERS = {
  EdDSA: { name: 'Ed25519' },
  ES256: { name: 'ECDSA', hash: 'SHA-256' },
} as const satisfies Record<SigningAlgorithm, { name: string; hash?: string }>;

// Shared: one decoder per isolate, not one per call. `fatal`: bytes that are not UTF-8 are refused.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
const ascii = new TextEncoder();

/** base64url without padding, as JWS uses it; undefined if it does not decode. */
function base64urlBytes(segment: string): Uint8Array<ArrayBuffer> | undefined {
  let binary: string;
  try {
    binary = atob(segment.replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    return undefined;
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function decodeJsonSegment(segment: string): unknown {
  const bytes = base64urlBytes(segment);
  if (!bytes) return undefined;
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNumericDate(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** RFC 9068 §4: `typ` is `at+jwt`, or the full media type, compared case-insensitively. */
function isAccessTokenTyp(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  return lower === ACCESS_TOKEN_TYP || lower === `application/${ACCESS_TOKEN_TYP}`;
}

/**
 * `cnf` (RFC 7800) as latchkey mints it: exactly `{"jkt": <thumbprint>}`. Any other confirmation
 * method, or another member beside `jkt`, is a binding latchkey cannot check, and a token whose
 * binding is ignored is a bearer token again: such a token is invalid, not unbound.
 */
function readConfirmation(cnf: unknown): { jkt: string } | undefined {
  if (!isRecord(cnf)) return undefined;
  const members = Object.keys(cnf);
  if (members.length !== 1 || members[0] !== 'jkt' || typeof cnf.jkt !== 'string' || !JKT.test(cnf.jkt)) return undefined;
  return { jkt: cnf.jkt };
}

/** Every claim present, of the right type and shape; anything else makes the token invalid. */
function readClaims(payload: unknown, expect: VerifyExpectations): AccessTokenClaims | undefined {
  if (!isRecord(payload)) return undefined;
  const { iss, aud, sub, sid, gen, iat, exp, jti, nbf, client_id, cnf, email_verified } = payload;
  if (iss !== expect.issuer || aud !== expect.audience) return undefined;
  if (typeof sub !== 'string' || !IDENTIFIER.test(sub)) return undefined;
  if (typeof sid !== 'string' || !IDENTIFIER.test(sid)) return undefined;
  if (typeof jti !== 'string' || !IDENTIFIER.test(jti)) return undefined;
  if (!Number.isSafeInteger(gen) || (gen as number) < 1) return undefined;
  if (!isNumericDate(iat) || !isNumericDate(exp) || exp <= iat) return undefined;
  const nowSeconds = expect.nowMs / 1000;
  if (iat > nowSeconds + CLOCK_LEEWAY_SECONDS) return undefined;
  if (nbf !== undefined && (!isNumericDate(nbf) || nbf > nowSeconds + CLOCK_LEEWAY_SECONDS)) return undefined;
  if (email_verified !== undefined && typeof email_verified !== 'boolean') return undefined;
  const claims: AccessTokenClaims = { iss, aud, sub, sid, gen: gen as number, iat, exp, jti };
  if (client_id !== undefined) {
    if (typeof client_id !== 'string' || !CLIENT_ID_PATTERN.test(client_id)) return undefined;
    claims.client_id = client_id;
  }
  if (cnf !== undefined) {
    const confirmation = readConfirmation(cnf);
    if (!confirmation) return undefined;
    claims.cnf = confirmation;
  }
  if (email_verified !== undefined) claims.email_verified = email_verified;
  return claims;
}

/**
 * Verifies a compact JWS access token against the keys: shape, header, signature by the key
 * the `kid` names with that key's own algorithm (so `alg: none`, HS256-with-the-public-key and
 * every other algorithm confusion fail), then every claim. No I/O of its own (a `kid` lookup may fetch).
 *
 * The JWS is checked here rather than by a general JOSE library: the header is parsed and vetted
 * once (above all, no `crit` and no `b64`, so the signing input is always the two segments as
 * sent), and the signature is checked by WebCrypto with the key's parameters. A general library
 * would parse and validate the header again and build its options per call; on a route where every
 * token is new, that work is a sizeable share of the request (bench/RESULTS.md).
 */
export async function verifyAccessToken(
  token: string,
  keys: VerificationKeys,
  expect: VerifyExpectations,
): Promise<VerifyResult> {
  if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) return INVALID;
  if (!token.split('.').every(isCanonicalBase64url)) return INVALID;
  const firstDot = token.indexOf('.');
  const lastDot = token.lastIndexOf('.');
  const header = decodeJsonSegment(token.slice(0, firstDot));
  if (!isRecord(header) || typeof header.kid !== 'string' || !isAccessTokenTyp(header.typ)) return INVALID;
  if (FORBIDDEN_HEADER_PARAMETERS.some((name) => Object.hasOwn(header, name))) return INVALID;
  const key = typeof keys === 'function' ? await keys(header.kid) : keys.verifiers.get(header.kid);
  if (!key || header.alg !== key.alg) return INVALID;

  const signature = base64urlBytes(token.slice(lastDot + 1));
  if (!signature) return INVALID;
  // One spelling per token: of an ECDSA pair (r, s) and (r, n - s), only the low one (ecdsa.ts).
  if (key.alg === 'ES256' && !isLowS(signature)) return INVALID;
  let valid: boolean;
  try {
    // The signing input is the ASCII of `header.payload` exactly as sent (RFC 7515 §5.2).
    const signingInput = ascii.encode(token.slice(0, lastDot));
    valid = await crypto.subtle.verify(SIGNATURE_PARAMETERS[key.alg], key.key, signature, signingInput);
  } catch {
    return INVALID;
  }
  if (!valid) return INVALID;
  const claims = readClaims(decodeJsonSegment(token.slice(firstDot + 1, lastDot)), expect);
  if (!claims) return INVALID;
  return judgeExpiry(claims, expect);
}

/** Past `exp` and its leeway at `nowMs`. */
export function isExpired(claims: AccessTokenClaims, nowMs: number): boolean {
  return claims.exp + CLOCK_LEEWAY_SECONDS <= nowMs / 1000;
}

/**
 * The verdict on claims that passed every other check. Expiry is the one check whose answer
 * changes as time moves forward, so a cached verification re-runs exactly this on every use.
 */
export function judgeExpiry(claims: AccessTokenClaims, expect: VerifyExpectations): VerifyResult {
  if (isExpired(claims, expect.nowMs) && !expect.allowExpired) return { ok: false, reason: 'expired', claims };
  return { ok: true, claims };
}
