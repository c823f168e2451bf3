/**
 * The session records the user's object writes, built as pure functions beside the decision that
 * calls for them: the clock reading (`at`, the user's clock, milliseconds) and the configuration
 * come in as arguments, so what a login or a rotation stores is tested without any storage.
 */
import type { RenewalDecision, SessionRecord, TokenGeneration } from './decide';

/** `exp` of a token minted at `at`: whole seconds, as the token carries it. */
function expiresAtSeconds(at: number, accessTokenTtlSeconds: number): number {
  return Math.floor(at / 1000) + accessTokenTtlSeconds;
}

/**
 * The record of a session opened at `at`: its login instant, and its first generation minted at
 * that same instant. `dpopJkt` is the key the login proved (bound for the session's whole life);
 * a DBSC key is bound later, by the browser.
 */
export function newSession(input: {
  id: string;
  userId: string;
  client: string | null;
  dpopJkt: string | null;
  at: number;
  accessTokenTtlSeconds: number;
}): SessionRecord {
  return {
    id: input.id,
    userId: input.userId,
    client: input.client,
    createdAt: input.at,
    gen: 1,
    genMintedAt: input.at,
    genExpiresAt: expiresAtSeconds(input.at, input.accessTokenTtlSeconds),
    revokedAt: null,
    dpopJkt: input.dpopJkt,
    dbscJkt: null,
  };
}

/** Rule 5's next record: the decision's session at generation `nextGen`, minted at `at`. */
export function rotatedSession(
  decision: Extract<RenewalDecision, { kind: 'rotate' }>,
  at: number,
  accessTokenTtlSeconds: number,
): SessionRecord {
  return {
    ...decision.session,
    gen: decision.nextGen,
    genMintedAt: at,
    genExpiresAt: expiresAtSeconds(at, accessTokenTtlSeconds),
  };
}

/** The session's current token as renewal sees it: what a browser that kept its cookie would show. */
export function currentGeneration(session: SessionRecord): TokenGeneration {
  return { gen: session.gen, iat: Math.floor(session.genMintedAt / 1000), exp: session.genExpiresAt };
}
