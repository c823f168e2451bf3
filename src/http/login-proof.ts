import { now } from '../clock';
import { checkTokenRequestProof, readProofHeader } from '../../packages/verify/src/dpop/possession';
import { ApiError } from '../errors';
import type { ProofOfPossession } from '../user-authority/results';
import type { AppContext } from './context';

/**
 * The DPoP proof of a sign-in, by password or passkey (RFC 9449 §5): none asks for an unbound session, unless REQUIRE_DPOP;
 * one that is there must be valid for this request, never silently ignored, or a client that
 * believes its session bound would be handed a bearer token.
 */
export async function loginProof(c: AppContext): Promise<ProofOfPossession | null> {
  const checked = await checkTokenRequestProof({
    proof: readProofHeader(c.req.raw),
    method: c.req.method,
    url: c.req.url,
    nowMs: now(),
  });
  if (!checked.ok || (checked.proof === undefined && c.var.config.requireDpop)) {
    throw new ApiError('invalid_dpop_proof', { tokenRequest: true });
  }
  if (checked.proof === undefined) return null;
  const { jkt, jti, usableUntilMs } = checked.proof;
  return { kind: 'dpop', jkt, jti, usableUntilMs };
}

