import type { MiddlewareHandler } from 'hono';
import { now } from '../clock';
import { checkPossession, readProofHeader } from '../../packages/verify/src/dpop/possession';
import { MemoryReplayCache } from '../../packages/verify/src/dpop/replay';
import { ApiError } from '../errors';
import { readSessionLiveness } from '../storage/liveness';
import type { AccessTokenClaims } from '../tokens/claims';
import { verifyAccessTokenCached } from '../tokens/verified-cache';
import { tokenFailureCode, verifyAccessToken } from '../../packages/verify/src/tokens/verify';
import type { ProofOfPossession } from '../user-authority/results';
import type { AppContext, AppEnv } from './context';
import { requestCredential } from './request-credential';

/** A verified token, and the verified proof of its key when it is bound to one. */
export interface PresentedCredential {
  claims: AccessTokenClaims;
  /** Undefined for an unbound token. Its `jti` has not been checked against replays yet. */
  proof: ProofOfPossession | undefined;
}

/**
 * Verifies the presented access token (signature, algorithm, `typ`, `iss`, `aud`, every claim),
 * records in `credential` where it came from, and for a token bound to a key (`cnf.jkt`) checks
 * the request's DPoP proof (RFC 9449 §7): a bound token never goes on without a valid proof of its
 * key, whatever route it is shown to, so a copy of it can neither renew nor sign anyone out. A
 * refused proof is answered `invalid_dpop_proof` and, after the answer, recorded in the user's
 * object as a coalesced `proof_failed` event: nothing is revoked.
 *
 * Renewal and logout pass `allowExpired`; they apply the idle limit themselves.
 */
export async function presentedCredential(c: AppContext, options: { allowExpired: boolean }): Promise<PresentedCredential> {
  const presented = requestCredential(c);
  if (presented === undefined) throw new ApiError('missing_token');
  c.set('credential', presented.via);
  const scheme = presented.via === 'DPoP' ? 'DPoP' : 'Bearer';
  const token = presented.token;
  if (token === undefined) throw new ApiError('missing_token', { scheme });
  const config = c.var.config;
  const nowMs = now();
  // Renewal and logout see a token about once (renewal supersedes it): caching those would only
  // push out tokens that clients are still presenting. The cache answers as a full verify would.
  const verify = options.allowExpired ? verifyAccessToken : verifyAccessTokenCached;
  const result = await verify(token, await c.var.keyring(), {
    issuer: config.issuer,
    audience: config.audience,
    nowMs,
    allowExpired: options.allowExpired,
  });
  if (!result.ok) throw new ApiError(tokenFailureCode(result), { scheme });
  const claims = result.claims;
  const possession = await checkPossession({
    presentedAs: presented.via,
    token,
    boundJkt: claims.cnf?.jkt,
    proof: readProofHeader(c.req.raw),
    method: c.req.method,
    url: c.req.url,
    nowMs,
  });
  if (!possession.ok) {
    if (possession.code === 'invalid_dpop_proof') {
      c.executionCtx.waitUntil(
        c.var.authority(claims.sub).recordProofFailure({ userId: claims.sub, sessionId: claims.sid }),
      );
    }
    throw new ApiError(possession.code, { scheme });
  }
  const proof = possession.proof && {
    kind: 'dpop' as const,
    jkt: possession.proof.jkt,
    jti: possession.proof.jti,
    usableUntilMs: possession.proof.usableUntilMs,
  };
  return { claims, proof };
}

/**
 * Proofs already used on the routes below, in this isolate. Renewal and logout, which change what
 * a token can do, record theirs in the user's object instead, strongly consistent and durable;
 * here a proof replayed to another isolate within its minute goes unseen (docs/SECURITY.md says
 * what that allows: repeating the very request the proof was made for, with the same token).
 */
const routeProofs = new MemoryReplayCache();

/**
 * Guards a route with a valid (unexpired) access token and sets `caller`.
 *
 * - `stateless`: the token alone (and its proof, if bound), no database read. A stolen token works
 *   until it expires, which is why tokens are short-lived; a stolen bound token does not work.
 * - `strict`: also one D1 read of the session and the user's revocation instant, so a revoked
 *   session is refused at once. For changing a password, paying, and the like.
 */
export function requireAccessToken(mode: 'stateless' | 'strict'): MiddlewareHandler<AppEnv> {
  if (mode !== 'stateless' && mode !== 'strict') throw new TypeError(`unknown verification mode ${String(mode)}`);
  return async (c, next) => {
    const { claims, proof } = await presentedCredential(c, { allowExpired: false });
    if (proof !== undefined && !(await routeProofs.useOnce(proof.jti, proof.usableUntilMs, proof.jkt))) {
      throw new ApiError('invalid_dpop_proof');
    }
    if (mode === 'strict') {
      const liveness = await readSessionLiveness(c.var.store, claims, c.var.config);
      if (!liveness.live) throw new ApiError(liveness.code, { scheme: proof ? 'DPoP' : 'Bearer' });
      c.set('caller', { claims, email: liveness.mirror.user.email, emailVerified: liveness.mirror.user.emailVerified });
    } else {
      c.set('caller', { claims });
    }
    await next();
  };
}
