import { base64url, type CryptoKey, calculateJwkThumbprint, decodeProtectedHeader, errors, importJWK, type JWK, jwtVerify } from 'jose';
import { DPOP_ALGORITHMS, type DpopAlgorithm } from './algorithms.js';
import { comparableHtu } from './htu.js';

/**
 * How old a proof may be, by the server's clock (RFC 9449 §4.3 check 11, §11.1). A proof is made
 * for one request just before it is sent, so a minute covers a slow network and a slow device,
 * and bounds how long a captured proof (and so its `jti`) has to be remembered.
 */
export const PROOF_MAX_AGE_SECONDS = 60;
/** How far ahead of the server's clock an `iat` may be: the leeway latchkey allows any `iat`. */
export const PROOF_FUTURE_LEEWAY_SECONDS = 5;

/** Longest proof accepted. One with a P-256 key and `ath` is about 600 characters. */
const MAX_PROOF_LENGTH = 4096;
/** Longest `jti` accepted: it is stored per proof; UUIDs and 256-bit random values fit. */
const MAX_JTI_LENGTH = 128;
/** A SHA-256 digest in unpadded base64url (`ath`, `jkt`). */
const SHA256_BASE64URL = /^[A-Za-z0-9_-]{43}$/;

/** RFC 7517/7518 members that only private or symmetric keys carry (RFC 9449 §4.3 check 6). */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
/**
 * Header parameters that point elsewhere for the key or change how the JWS is read. The key of a
 * proof is the `jwk` in its header and nothing else (RFC 9449 §4.2); `crit` and `b64` would make
 * the signing input something other than the two segments as sent.
 */
const FORBIDDEN_HEADER_PARAMETERS = ['jku', 'x5u', 'x5c', 'crit', 'b64', 'zip', 'enc'];
/** The key type each algorithm is used with. */
const KEY_SHAPE = {
  ES256: { kty: 'EC', crv: 'P-256' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { kty: 'OKP', crv: 'Ed25519' },
} as const satisfies Record<DpopAlgorithm, { kty: string; crv: string }>;

/**
 * Why a proof is refused. Internal: every one of them is answered `invalid_dpop_proof` on the wire,
 * and the name is for tests and logs.
 * - `malformed`: not a compact JWS of JSON, too long, or its payload not a JSON object
 * - `header`: a forbidden header parameter (`jku`, `x5u`, `x5c`, `crit`, `b64`, ...)
 * - `typ`: `typ` is not `dpop+jwt`
 * - `alg`: not an allowed asymmetric algorithm (`none`, HMAC, RSA, another curve)
 * - `jwk`: no public key of the algorithm's type in `jwk` (missing, private, symmetric, unusable)
 * - `signature`: not signed by the key in `jwk`
 * - `jti`, `htm`, `htu`, `iat`, `ath`: that claim missing or not as the request requires
 * - `time`: an `exp` or `nbf` the proof carries says it is not valid now
 * - `jkt`: signed by a key other than the one the token is bound to
 */
export type ProofFailure =
  | 'malformed'
  | 'header'
  | 'typ'
  | 'alg'
  | 'jwk'
  | 'signature'
  | 'jti'
  | 'htm'
  | 'htu'
  | 'iat'
  | 'time'
  | 'ath'
  | 'jkt';

/** What a proof is checked against: the request it came with, and the token it came with. */
export interface ProofExpectations {
  /** The request's method, compared exactly (RFC 9449 §4.3 check 8). */
  method: string;
  /** The request's URL; compared with `htu` as `comparableHtu` says. */
  url: string;
  /** The server's clock, milliseconds since the epoch: `iat` is judged by it, never by the client's. */
  nowMs: number;
  /**
   * The access token presented with the proof: `ath` must be its SHA-256 (check 12). Absent when no
   * token is presented (login), and in cookie mode, where the client cannot read its token; then
   * `ath` is not looked at.
   */
  accessToken?: string;
  /** The RFC 7638 thumbprint the proof's key must have: the presented token's `cnf.jkt`. */
  jkt?: string;
}

export interface VerifiedProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's public key. */
  jkt: string;
  jti: string;
  /** The proof's `iat`, in milliseconds. */
  iatMs: number;
  /** Until when this proof would be accepted: how long its `jti` must be remembered. */
  usableUntilMs: number;
}

export type ProofResult = ({ ok: true } & VerifiedProof) | { ok: false; reason: ProofFailure };

function failed(reason: ProofFailure): ProofResult {
  return { ok: false, reason };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isAllowedAlgorithm(alg: unknown): alg is DpopAlgorithm {
  return (DPOP_ALGORITHMS as readonly unknown[]).includes(alg);
}

const utf8 = new TextEncoder();

/** base64url(SHA-256(token)): `ath` (RFC 9449 §4.2). */
export async function accessTokenHash(token: string): Promise<string> {
  return base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8.encode(token))));
}

/** A compact JWS; the signature may be empty here so that `alg: none` is refused by name. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * The protected header of a proof (DPoP here, DBSC in the service), judged before any key or
 * signature: at most `maxLength` characters of compact JWS, a JSON object, none of the `forbidden`
 * parameters, and `typ` exactly as given.
 */
export function proofHeader(
  proof: string,
  expect: { maxLength: number; forbidden: readonly string[]; typ: string },
): { ok: true; header: Record<string, unknown> } | { ok: false; reason: 'malformed' | 'header' | 'typ' } {
  if (proof.length > expect.maxLength || !COMPACT_JWS.test(proof)) return { ok: false, reason: 'malformed' };
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(proof) as Record<string, unknown>;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (expect.forbidden.some((name) => Object.hasOwn(header, name))) return { ok: false, reason: 'header' };
  if (header.typ !== expect.typ) return { ok: false, reason: 'typ' };
  return { ok: true, header };
}

/** Why jose refused a JWS whose header and key already passed the checks above. */
function joseFailure(error: unknown): ProofFailure {
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'signature';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'alg';
  // jose reads `iat` only for its type here (its window is checked below); `exp` and `nbf` fully.
  if (error instanceof errors.JWTExpired || error instanceof errors.JWTClaimValidationFailed) {
    return error.claim === 'iat' ? 'iat' : 'time';
  }
  if (error instanceof errors.JOSEError) return 'malformed';
  // Not a refusal of the proof: a bug or a platform failure, which must not pass for a bad proof.
  throw error;
}

/**
 * Verifies a DPoP proof (RFC 9449 §4.3) for one request: its shape and header, its signature by
 * the public key in its `jwk` header (jose's `jwtVerify` with that key), and `jti`, `htm`, `htu`,
 * `iat` (by the server's clock), `ath` when a token is presented, and the key's thumbprint when
 * the token is bound to one.
 *
 * Returns a tagged result and never throws for a bad proof: the caller decides what a refusal
 * means (400 at login, 401 on a route) and whether it is logged. Whether the `jti` was seen before
 * is not decided here: the caller records it in a `DpopReplayStore` once every other check passed,
 * until `usableUntilMs`.
 */
export async function verifyDpopProof(proof: string, expect: ProofExpectations): Promise<ProofResult> {
  const read = proofHeader(proof, { maxLength: MAX_PROOF_LENGTH, forbidden: FORBIDDEN_HEADER_PARAMETERS, typ: 'dpop+jwt' });
  if (!read.ok) return failed(read.reason);
  const { header } = read;
  const alg = header.alg;
  if (!isAllowedAlgorithm(alg)) return failed('alg');

  const jwk = header.jwk;
  if (!isRecord(jwk) || PRIVATE_JWK_MEMBERS.some((name) => Object.hasOwn(jwk, name))) return failed('jwk');
  const shape = KEY_SHAPE[alg];
  if (jwk.kty !== shape.kty || jwk.crv !== shape.crv) return failed('jwk');
  if ((jwk.use !== undefined && jwk.use !== 'sig') || (jwk.alg !== undefined && jwk.alg !== alg)) return failed('jwk');
  let key: CryptoKey;
  let jkt: string;
  try {
    key = (await importJWK(jwk as JWK, alg)) as CryptoKey;
    jkt = await calculateJwkThumbprint(jwk as JWK, 'sha256');
  } catch {
    return failed('jwk');
  }
  if (key.type !== 'public') return failed('jwk');

  let claims: Record<string, unknown>;
  try {
    ({ payload: claims } = await jwtVerify(proof, key, {
      algorithms: [alg],
      currentDate: new Date(expect.nowMs),
      clockTolerance: PROOF_FUTURE_LEEWAY_SECONDS,
    }));
  } catch (error) {
    return failed(joseFailure(error));
  }

  const { jti, htm, htu, iat, ath } = claims;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) return failed('jti');
  if (typeof htm !== 'string' || htm !== expect.method) return failed('htm');
  const expectedHtu = comparableHtu(expect.url);
  if (typeof htu !== 'string' || expectedHtu === undefined || comparableHtu(htu) !== expectedHtu) return failed('htu');
  if (typeof iat !== 'number' || !Number.isFinite(iat)) return failed('iat');
  const iatMs = iat * 1000;
  if (iatMs < expect.nowMs - PROOF_MAX_AGE_SECONDS * 1000 || iatMs > expect.nowMs + PROOF_FUTURE_LEEWAY_SECONDS * 1000) {
    return failed('iat');
  }
  if (expect.accessToken !== undefined) {
    if (typeof ath !== 'string' || !SHA256_BASE64URL.test(ath) || ath !== (await accessTokenHash(expect.accessToken))) {
      return failed('ath');
    }
  }
  if (expect.jkt !== undefined && jkt !== expect.jkt) return failed('jkt');
  return { ok: true, jkt, jti, iatMs, usableUntilMs: iatMs + PROOF_MAX_AGE_SECONDS * 1000 };
}
