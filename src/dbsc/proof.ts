import { base64url, type CryptoKey, calculateJwkThumbprint, errors, importJWK, type JWK, jwtVerify } from 'jose';
import { PRIVATE_JWK_MEMBERS, proofHeader } from '../../packages/verify/src/dpop/proof';
import { type DbscAlgorithm, isDbscAlgorithm } from './algorithms';

/**
 * A DBSC session's public key as latchkey keeps it: the algorithm and the RFC 7638 required
 * members of the JWK, nothing else. It must be kept whole, not only its thumbprint: a refresh
 * proof carries no key (the draft forbids `jwk` on refresh), so it is verified with this one.
 */
export interface DbscPublicKey {
  alg: DbscAlgorithm;
  /** `{crv, kty, x, y}` for ES256, `{e, kty, n}` for RS256. */
  jwk: JWK;
}

/** Longest proof read; see MAX_PROOF_HEADER_LENGTH. */
const MAX_PROOF_LENGTH = 8192;
/** Longest `jti` accepted. latchkey's challenges are 43 characters; this refuses junk early. */
const MAX_JTI_LENGTH = 256;
/** A P-256 coordinate: 32 bytes, unpadded base64url. */
const P256_COORDINATE = /^[A-Za-z0-9_-]{43}$/;
/**
 * RSA moduli accepted, in bytes: 2048 bits at least (RFC 7518 §3.3), 4096 at most, since the
 * cost of verifying grows with the modulus and the key is chosen by whoever registers.
 */
const RSA_MODULUS_BYTES = { min: 256, max: 512 };
/** RSA public exponents accepted: at most 4 bytes (65537 is 3). */
const RSA_MAX_EXPONENT_BYTES = 4;

/**
 * Header parameters that point elsewhere for the key or change how the JWS is read: the key of a
 * registration is the `jwk` in its header, the key of a refresh the one registered, and nothing
 * else; `crit` and `b64` would make the signing input something other than the two segments sent.
 */
const FORBIDDEN_HEADER_PARAMETERS = ['jku', 'x5u', 'x5c', 'x5t', 'x5t#S256', 'crit', 'b64', 'zip', 'enc'];

/**
 * Why a proof is refused. Internal: on the wire a refused registration is a 400 and a refused
 * refresh a 403 with a new challenge; the name is for tests and logs.
 * - `malformed`: not a compact JWS of JSON objects, or too long
 * - `header`: a forbidden header parameter; or a `jwk` on a refresh, where the draft forbids it
 * - `typ`: `typ` is not `dbsc+jwt`
 * - `alg`: not ES256 or RS256 (`none`, HMAC, another curve or hash), or not the registered key's
 * - `jwk`: a registration without a usable public key of its `alg` in `jwk` (missing, private,
 *   symmetric, an RSA key too small or too large, a point not on the curve)
 * - `signature`: not signed by the key (the one in `jwk`, or the registered one)
 * - `jti`: missing, not a string, too long, or not the challenge expected
 * - `time`: an `exp` or `nbf` the proof carries says it is not valid now
 */
export type DbscProofFailure = 'malformed' | 'header' | 'typ' | 'alg' | 'jwk' | 'signature' | 'jti' | 'time';

interface CommonExpectations {
  /** The server's clock, in milliseconds: `exp` and `nbf`, when a proof has them, are judged by it. */
  nowMs: number;
  /**
   * The challenge the proof must sign, when the caller knows it. Otherwise the caller looks the
   * returned `jti` up among the session's live challenges (and uses it up) itself.
   */
  challenge?: string;
}

export type DbscProofExpectations =
  /** The first proof of a session: its key is the `jwk` in its header. */
  | ({ use: 'registration' } & CommonExpectations)
  /** A refresh: signed by the key registered for the session, with no `jwk` of its own. */
  | ({ use: 'refresh'; key: DbscPublicKey } & CommonExpectations);

export interface VerifiedDbscProof {
  /** The challenge it signs. */
  jti: string;
  /** The key that signed it: the one to keep for the session, on registration. */
  key: DbscPublicKey;
  /** RFC 7638 SHA-256 thumbprint of that key. */
  jkt: string;
}

export type DbscProofResult = ({ ok: true } & VerifiedDbscProof) | { ok: false; reason: DbscProofFailure };

function failed(reason: DbscProofFailure): DbscProofResult {
  return { ok: false, reason };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The length in bytes of a base64url unsigned integer (RFC 7518 §6.3.1), undefined unless it is
 * one in its shortest form: a leading zero byte would make a modulus look longer than it is.
 */
function unsignedIntegerLength(value: unknown): number | undefined {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]+$/.test(value)) return undefined;
  let bytes: Uint8Array;
  try {
    bytes = base64url.decode(value);
  } catch {
    return undefined;
  }
  return bytes.length === 0 || bytes[0] === 0 ? undefined : bytes.length;
}

/**
 * The RFC 7638 required members of `jwk` if it is a public key of the shape `alg` is used with,
 * undefined otherwise. Members that do not change the key (`kid`, `use: "sig"`, a matching `alg`)
 * are allowed and dropped; members of a private or symmetric key refuse it.
 */
export function publicDbscJwk(jwk: unknown, alg: DbscAlgorithm): JWK | undefined {
  if (!isRecord(jwk) || PRIVATE_JWK_MEMBERS.some((name) => Object.hasOwn(jwk, name))) return undefined;
  if ((jwk.use !== undefined && jwk.use !== 'sig') || (jwk.alg !== undefined && jwk.alg !== alg)) return undefined;
  if (alg === 'ES256') {
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') return undefined;
    if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string' || !P256_COORDINATE.test(jwk.x) || !P256_COORDINATE.test(jwk.y)) return undefined;
    return { crv: 'P-256', kty: 'EC', x: jwk.x, y: jwk.y };
  }
  if (jwk.kty !== 'RSA') return undefined;
  const modulusBytes = unsignedIntegerLength(jwk.n);
  const exponentBytes = unsignedIntegerLength(jwk.e);
  if (modulusBytes === undefined || modulusBytes < RSA_MODULUS_BYTES.min || modulusBytes > RSA_MODULUS_BYTES.max) return undefined;
  if (exponentBytes === undefined || exponentBytes > RSA_MAX_EXPONENT_BYTES) return undefined;
  return { e: jwk.e as string, kty: 'RSA', n: jwk.n as string };
}

/** Why jose refused a JWS whose header and key already passed the checks above. */
function joseFailure(error: unknown): DbscProofFailure {
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'signature';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'alg';
  if (error instanceof errors.JWTExpired || error instanceof errors.JWTClaimValidationFailed) return 'time';
  if (error instanceof errors.JOSEError) return 'malformed';
  // Not a refusal of the proof: a bug or a platform failure, which must not pass for a bad proof.
  throw error;
}

/**
 * Verifies a DBSC proof (the `Secure-Session-Response` JWT): `typ: dbsc+jwt`, `alg` ES256 or
 * RS256, the key (the public `jwk` of its header on registration, the registered key on
 * refresh), the signature, and `jti` (a string; the expected challenge when one is given).
 *
 * Returns a tagged result and never throws for a bad proof. Whether the `jti` is a live,
 * unused challenge of this session is decided by the caller (see challenges.ts), after this,
 * since the challenges live in the user's Durable Object: verify first (crypto, awaited), then
 * use the challenge up and act on the session in one storage transaction.
 */
export async function verifyDbscProof(proof: string, expect: DbscProofExpectations): Promise<DbscProofResult> {
  const read = proofHeader(proof, { maxLength: MAX_PROOF_LENGTH, forbidden: FORBIDDEN_HEADER_PARAMETERS, typ: 'dbsc+jwt' });
  if (!read.ok) return failed(read.reason);
  const { header } = read;
  const alg = header.alg;
  if (!isDbscAlgorithm(alg)) return failed('alg');

  let key: DbscPublicKey;
  if (expect.use === 'registration') {
    const jwk = publicDbscJwk(header.jwk, alg);
    if (jwk === undefined) return failed('jwk');
    key = { alg, jwk };
  } else {
    // The draft: `jwk` "MUST not be present for refresh requests". The registered key is the
    // only one a refresh is checked with; a proof naming another key is not a refresh proof.
    if (Object.hasOwn(header, 'jwk')) return failed('header');
    if (alg !== expect.key.alg) return failed('alg');
    key = expect.key;
  }

  let cryptoKey: CryptoKey;
  let jkt: string;
  try {
    cryptoKey = (await importJWK(key.jwk, key.alg)) as CryptoKey;
    jkt = await calculateJwkThumbprint(key.jwk, 'sha256');
  } catch {
    // An EC point that is not on the curve, an RSA key WebCrypto refuses.
    return failed('jwk');
  }

  let claims: Record<string, unknown>;
  try {
    ({ payload: claims } = await jwtVerify(proof, cryptoKey, { algorithms: [key.alg], currentDate: new Date(expect.nowMs) }));
  } catch (error) {
    return failed(joseFailure(error));
  }

  const { jti } = claims;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) return failed('jti');
  if (expect.challenge !== undefined && jti !== expect.challenge) return failed('jti');
  return { ok: true, jti, key, jkt };
}
