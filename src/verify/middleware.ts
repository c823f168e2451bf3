import type { MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { AccessTokenClaims } from '../tokens/claims';
import { dpopPolicyOf, failureResponse, type LatchkeyVerifier, type VerifyOptions } from './verifier';

/** What `latchkeyAuth` sets on the context: `c.get('latchkey')` is the verified token's claims. */
export interface LatchkeyVariables {
  latchkey: AccessTokenClaims;
}

/**
 * Hono middleware that lets a request through only with a valid latchkey access token, and sets
 * `latchkey` (its claims). A refusal is thrown as an `HTTPException` whose response is already the
 * problem document latchkey itself would answer, `WWW-Authenticate` included, so it needs no
 * `onError` of the app's.
 *
 * Stateless by default: the signature and claims alone, no call anywhere once the keys are cached;
 * a stolen token works until it expires. `{ strict: true }` also asks latchkey, through the
 * service binding, whether the session is still live: for changing money or credentials.
 *
 * A token bound to a key (`cnf.jkt`, RFC 9449) is accepted only as `Authorization: DPoP` with a
 * valid `DPoP` proof of that key, whatever the options; `{ dpop: 'required' }` accepts bound
 * tokens only. Options are checked here, when the middleware is built.
 *
 * `{ requireVerifiedEmail: true }` refuses tokens of users whose email is not verified (403).
 */
export function latchkeyAuth(
  verifier: LatchkeyVerifier,
  options: VerifyOptions = {},
): MiddlewareHandler<{ Variables: LatchkeyVariables }> {
  if (typeof verifier?.verifyRequest !== 'function') throw new TypeError('latchkeyAuth: pass a verifier from createVerifier');
  const strict = options.strict === true;
  const requireVerifiedEmail = options.requireVerifiedEmail === true;
  if (strict && !verifier.supportsStrict) {
    throw new TypeError('latchkeyAuth: strict checks need a verifier with the binding key source');
  }
  const dpop = dpopPolicyOf(options);
  return async (c, next) => {
    const outcome = await verifier.verifyRequest(c.req.raw, { strict, dpop, requireVerifiedEmail });
    if (!outcome.ok) {
      const res = failureResponse(outcome);
      throw new HTTPException(res.status as 401 | 403 | 503, { res });
    }
    c.set('latchkey', outcome.claims);
    await next();
  };
}
