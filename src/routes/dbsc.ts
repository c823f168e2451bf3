import { Hono } from 'hono';
import { now } from '../clock';
import {
  challengeHeaderValue,
  DBSC_HEADERS,
  DBSC_REFRESH_PATH,
  DBSC_REGISTRATION_PATH,
  readProofField,
  readSessionIdField,
  registrationHeaderValue,
} from '../dbsc/headers';
import { END_SESSION_INSTRUCTIONS, sessionInstructions } from '../dbsc/instructions';
import { verifyDbscProof } from '../dbsc/proof';
import { dbscSessionIdentifier, parseDbscSessionIdentifier } from '../dbsc/session-identifier';
import { ApiError, problemResponse } from '../errors';
import type { AppContext, AppEnv } from '../http/context';
import { type EndedCode, setEndedCookie, setTokenCookie, tokenFromCookie } from '../http/token-cookie';
import { tokenFailureCode, verifyAccessToken } from '../../packages/verify/src/tokens/verify';
import { callAuthority, callAuthorityForValue } from '../user-authority/call';
import type { TokenGrant } from '../user-authority/results';

/**
 * Device Bound Session Credentials (W3C draft, as Chromium speaks it): the browser binds a
 * cookie-mode session to a key it keeps (in a TPM where there is one), and from then on renews
 * the token cookie itself, proving that key, whenever the cookie is gone. A copied cookie then
 * works only until its token expires: it renews nothing (PROTOCOL.md rule 1b).
 *
 * Neither route asks for an Origin the way cookie-authenticated state changes do: the browser
 * sends these requests itself, without one. Nothing here can be forged from another page: a
 * registration needs a challenge that only the sign-in's answer carried, and a refresh a proof of
 * the session's key.
 */
export const dbscRoutes = new Hono<AppEnv>()
  /**
   * Registration: the session's cookie, and the browser's proof over the challenge offered with
   * the sign-in, its new public key in the proof's header.
   */
  .post(DBSC_REGISTRATION_PATH, async (c) => {
    c.header('cache-control', 'no-store');
    const token = tokenFromCookie(c);
    if (token === undefined) throw new ApiError('missing_token');
    const config = c.var.config;
    const nowMs = now();
    const verifiedToken = await verifyAccessToken(token, await c.var.keyring(), {
      issuer: config.issuer,
      audience: config.audience,
      nowMs,
      allowExpired: false,
    });
    if (!verifiedToken.ok) throw new ApiError(tokenFailureCode(verifiedToken));
    const claims = verifiedToken.claims;
    const field = readProofField(c.req.raw);
    if (field.kind !== 'one') throw new ApiError('invalid_dbsc_proof');
    const proof = await verifyDbscProof(field.value, { use: 'registration', nowMs });
    if (!proof.ok) throw new ApiError('invalid_dbsc_proof');
    const registered = await callAuthority(() =>
      c.var.authority(claims.sub).registerDbsc({ token: claims, proof: { jti: proof.jti, key: proof.key, jkt: proof.jkt } }),
    );
    console.log(`latchkey: dbsc registered session ${claims.sid} (${proof.key.alg})`);
    return boundSessionAnswer(c, registered.grant, registered.challenge);
  })

  /**
   * Refresh: the browser names the session (`Sec-Secure-Session-Id`) and, once it has a
   * challenge, proves the session's key over it. The answers are the draft's: 403 with a
   * challenge to sign, the session instructions with the next cookie, or `continue: false`.
   */
  .post(DBSC_REFRESH_PATH, async (c) => {
    c.header('cache-control', 'no-store');
    const idField = readSessionIdField(c.req.raw);
    if (idField.kind !== 'one') {
      throw new ApiError('invalid_request', { detail: `${DBSC_HEADERS.sessionId} must name one session.` });
    }
    const ref = parseDbscSessionIdentifier(idField.value);
    if (ref === undefined) return endSession(c, 'session_revoked');
    const proofField = readProofField(c.req.raw);
    // `async`: the stub's answer, a union, is one promise to await rather than a promise of each variant.
    const outcome = await callAuthorityForValue(async () =>
      c.var.authority(ref.userId).refreshDbsc({
        userId: ref.userId,
        sessionId: ref.sessionId,
        proof: proofField.kind === 'one' ? proofField.value : null,
      }),
    );
    // One line per refresh: an operator (and the browser tests) can follow a bound session's life.
    const detail = outcome.kind === 'end' ? outcome.code : outcome.kind === 'refreshed' ? 'proof verified' : 'proof asked for';
    console.log(`latchkey: dbsc refresh of session ${ref.sessionId}: ${outcome.kind} (${detail})`);
    switch (outcome.kind) {
      case 'end':
        return endSession(c, outcome.code);
      case 'challenge': {
        const answer = problemResponse(new ApiError('dbsc_proof_required'));
        answer.headers.set(DBSC_HEADERS.challenge, challengeHeaderValue(outcome.challenge, idField.value));
        return answer;
      }
      case 'refreshed':
        return boundSessionAnswer(c, outcome.grant, outcome.challenge);
    }
  });

/**
 * Offers DBSC registration on the answer that opened a cookie-mode session. An offer that cannot
 * be made (the object unreachable for a moment) costs the session its binding, not the sign-in.
 */
export async function offerDeviceBinding(c: AppContext, grant: TokenGrant): Promise<void> {
  try {
    const offered = await c.var.authority(grant.userId).offerDbscRegistration({ userId: grant.userId, sessionId: grant.sessionId });
    if (offered.ok) c.header(DBSC_HEADERS.registration, registrationHeaderValue(offered.value));
  } catch (error) {
    console.error('latchkey: could not offer a DBSC registration', String(error));
  }
}

/** The session instructions, the session's cookie (living as long as its token), and a challenge sent ahead. */
function boundSessionAnswer(c: AppContext, grant: TokenGrant, challenge: string): Response {
  const identifier = dbscSessionIdentifier({ userId: grant.userId, sessionId: grant.sessionId });
  setTokenCookie(c, grant);
  c.header(DBSC_HEADERS.challenge, challengeHeaderValue(challenge, identifier));
  return c.json(
    sessionInstructions({ sessionIdentifier: identifier, requestUrl: c.req.url, allowedOrigins: c.var.config.allowedOrigins }),
  );
}

/**
 * Ends the browser's DBSC session and leaves the page the reason. The token cookie is not cleared:
 * the browser refreshes because it is gone (or about to go), and the same browser may hold a newer
 * session's cookie under the same name by now (after a password change, or another sign-in),
 * which clearing would sign out.
 */
function endSession(c: AppContext, code: EndedCode): Response {
  setEndedCookie(c, code);
  return c.json(END_SESSION_INSTRUCTIONS);
}
