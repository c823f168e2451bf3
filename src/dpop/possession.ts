import type { TokenScheme } from '../http/credentials';
import { type ProofFailure, type VerifiedProof, verifyDpopProof } from './proof';

/** The `DPoP` request header as sent: absent, one proof, or more than one. */
export type ProofHeader = { kind: 'absent' } | { kind: 'one'; proof: string } | { kind: 'several' };

/**
 * Reads the `DPoP` header. RFC 9449 §4.3 check 1: exactly one. `Headers` joins repeated fields
 * with ", ", and a compact JWS holds neither a comma nor a space, so a value with either is more
 * than one header (or none that could be a proof).
 */
export function readProofHeader(request: Request): ProofHeader {
  const value = request.headers.get('dpop');
  if (value === null) return { kind: 'absent' };
  return /[,\s]/.test(value.trim()) ? { kind: 'several' } : { kind: 'one', proof: value.trim() };
}

/** Why a request does not prove possession of the key its token is bound to. */
export type PossessionFailure =
  | ProofFailure
  /** A bound token with no `DPoP` header. */
  | 'missing'
  /** More than one `DPoP` header. */
  | 'several'
  /** A bound token presented as `Bearer` (RFC 9449 §7.2: refused, never accepted without its proof). */
  | 'scheme';

export type PossessionResult =
  /** Go on. `proof` is the verified proof of a bound token, undefined for an unbound one. */
  | { ok: true; proof: VerifiedProof | undefined }
  | { ok: false; code: 'invalid_dpop_proof'; reason: PossessionFailure }
  /** An unbound token presented as `DPoP`: there is no key it could be proven with (RFC 9449 §7.1). */
  | { ok: false; code: 'invalid_token'; reason: 'unbound' };

export interface PossessionInput {
  /** How the token came: under an `Authorization` scheme, or as the cookie of cookie mode. */
  presentedAs: TokenScheme | 'cookie';
  /** The token, already verified. */
  token: string;
  /** Its `cnf.jkt`: the thumbprint of the key it is bound to, undefined if it is not bound. */
  boundJkt: string | undefined;
  proof: ProofHeader;
  method: string;
  url: string;
  nowMs: number;
}

/**
 * Decides whether a request holding a verified access token also proves possession of the key
 * that token is bound to (RFC 9449 §7), statelessly: the caller then records the proof's `jti`
 * in its replay store, and refuses the request if it was seen.
 *
 * - A bound token needs a valid proof by its key, with `ath` over the token when the token came in
 *   the `Authorization` header, and must come under the `DPoP` scheme there: as `Bearer` it is
 *   refused (`scheme`), so that a copy of it is worth nothing without the key.
 * - In cookie mode the token is in an HttpOnly cookie the client cannot read, so the proof has no
 *   `ath`: it still names the method and URL, is fresh and single-use, and is signed by the key
 *   the cookie's token is bound to.
 * - An unbound token under the `DPoP` scheme is `invalid_token`; under `Bearer` or in the cookie
 *   it goes on without a proof (any `DPoP` header is then ignored).
 */
export async function checkPossession(input: PossessionInput): Promise<PossessionResult> {
  if (input.boundJkt === undefined) {
    return input.presentedAs === 'DPoP' ? { ok: false, code: 'invalid_token', reason: 'unbound' } : { ok: true, proof: undefined };
  }
  if (input.presentedAs === 'Bearer') return { ok: false, code: 'invalid_dpop_proof', reason: 'scheme' };
  if (input.proof.kind !== 'one') {
    return { ok: false, code: 'invalid_dpop_proof', reason: input.proof.kind === 'absent' ? 'missing' : 'several' };
  }
  const result = await verifyDpopProof(input.proof.proof, {
    method: input.method,
    url: input.url,
    nowMs: input.nowMs,
    jkt: input.boundJkt,
    ...(input.presentedAs === 'DPoP' ? { accessToken: input.token } : {}),
  });
  if (!result.ok) return { ok: false, code: 'invalid_dpop_proof', reason: result.reason };
  const { ok: _ok, ...proof } = result;
  return { ok: true, proof };
}

export type TokenRequestProofResult =
  /** `proof` undefined: no `DPoP` header, an unbound session is asked for. */
  | { ok: true; proof: VerifiedProof | undefined }
  | { ok: false; code: 'invalid_dpop_proof'; reason: ProofFailure | 'several' };

/**
 * The proof on a request for a new token (login, RFC 9449 §5): no `DPoP` header asks for an
 * unbound session; a header that is there must be a valid proof for this request, with no `ath`
 * (no token is presented), or the request is refused: never silently answered unbound, or a
 * client that believes its session is bound would be handed a bearer token.
 */
export async function checkTokenRequestProof(input: {
  proof: ProofHeader;
  method: string;
  url: string;
  nowMs: number;
}): Promise<TokenRequestProofResult> {
  if (input.proof.kind === 'absent') return { ok: true, proof: undefined };
  if (input.proof.kind === 'several') return { ok: false, code: 'invalid_dpop_proof', reason: 'several' };
  const result = await verifyDpopProof(input.proof.proof, { method: input.method, url: input.url, nowMs: input.nowMs });
  if (!result.ok) return { ok: false, code: 'invalid_dpop_proof', reason: result.reason };
  const { ok: _ok, ...proof } = result;
  return { ok: true, proof };
}
