/**
 * The claims of the access tokens latchkey mints, built as pure functions beside the renewal
 * decision: the same session at the same generation always gives the same claims, so a generation
 * answered again (PROTOCOL.md rule 6) is the very same token.
 */
import type { Config } from '../config';
import type { AccessTokenClaims } from '../tokens/claims';
import type { SessionRecord } from './decide';

/**
 * The `jti` of a generation. Derived rather than random so that re-answering a generation
 * (PROTOCOL.md rule 6) reproduces the very same token without storing it.
 */
export function generationJti(sessionId: string, gen: number): string {
  return `${sessionId}.${gen}`;
}

/** What a token is minted from: a session at its current generation (field names as the session record has them). */
export interface GenerationOfSession {
  /** Session id. */
  id: string;
  userId: string;
  gen: number;
  /** When the current generation was minted, milliseconds since the epoch. */
  genMintedAt: number;
  /** Its `exp`, seconds since the epoch. */
  genExpiresAt: number;
}

/**
 * The claims of a session's current generation: the same every time they are asked for, so that a
 * generation answered again (PROTOCOL.md rule 6) is the same token. `jkt` is the thumbprint the
 * session was bound to at login (null or undefined: unbound); it goes into every token of the
 * session as `cnf.jkt`, and never changes for the life of the session.
 */
export function accessTokenClaims(input: {
  config: Pick<Config, 'issuer' | 'audience' | 'clientId'>;
  session: GenerationOfSession;
  jkt?: string | null;
  /** Whether the user's email was verified by the time this generation was minted. */
  emailVerified?: boolean;
}): AccessTokenClaims {
  const { config, session, jkt, emailVerified } = input;
  const claims: AccessTokenClaims = {
    iss: config.issuer,
    aud: config.audience,
    sub: session.userId,
    client_id: config.clientId,
    sid: session.id,
    gen: session.gen,
    iat: Math.floor(session.genMintedAt / 1000),
    exp: session.genExpiresAt,
    jti: generationJti(session.id, session.gen),
  };
  if (jkt !== undefined && jkt !== null) claims.cnf = { jkt };
  if (emailVerified !== undefined) claims.email_verified = emailVerified;
  return claims;
}

/**
 * The claims the user's object signs for a session's current generation. `email_verified` says
 * whether the email was verified (`emailVerifiedAt`, the user's clock) by the time the generation
 * was minted, so a grace answer after a verification is still the very same token.
 */
export function sessionTokenClaims(
  session: SessionRecord,
  emailVerifiedAt: number | null,
  config: Pick<Config, 'issuer' | 'audience' | 'clientId'>,
): AccessTokenClaims {
  return accessTokenClaims({
    config,
    session,
    jkt: session.dpopJkt,
    emailVerified: emailVerifiedAt !== null && emailVerifiedAt <= session.genMintedAt,
  });
}
