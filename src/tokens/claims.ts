import type { Config } from '../config';

/**
 * The claims of a latchkey access token (API.md, "The access token"), which follow RFC 9068's JWT
 * profile for OAuth 2.0 access tokens (`typ: at+jwt`), so that a standard resource server accepts
 * them too.
 */
export interface AccessTokenClaims {
  iss: string;
  aud: string;
  /** User id. */
  sub: string;
  /**
   * RFC 9068 §2.2: the OAuth client the token was issued to (CLIENT_ID). Optional when read, so
   * that tokens minted before it was carried still renew; every token minted now has it.
   */
  client_id?: string;
  /** Session id. */
  sid: string;
  /** Generation of this token within its session, from 1. */
  gen: number;
  /** NumericDate, seconds. */
  iat: number;
  /** NumericDate, seconds; `exp - iat` is ACCESS_TOKEN_TTL. */
  exp: number;
  /** Unique per (session, generation): every token of one generation carries the same one. */
  jti: string;
  /**
   * RFC 7800 confirmation, RFC 9449 §6.1: the RFC 7638 SHA-256 thumbprint of the public key the
   * session is bound to. Absent for an unbound session. A token that carries it is only accepted
   * with a DPoP proof signed by that key.
   */
  cnf?: { jkt: string };
  /**
   * Whether the user's email address was verified when this generation was minted. Absent from
   * tokens minted before latchkey sent verification links; a verifier treats absent as false.
   */
  email_verified?: boolean;
}

/**
 * The `jti` of a generation. Derived rather than random so that re-answering a generation
 * (PROTOCOL.md rule 6) reproduces the very same token without storing it.
 */
export function generationJti(sessionId: string, gen: number): string {
  return `${sessionId}.${gen}`;
}

/** A `client_id` as latchkey mints and accepts it: 1 to 128 visible ASCII characters (RFC 6749 §A.1, without spaces). */
export const CLIENT_ID_PATTERN = /^[\x21-\x7E]{1,128}$/;

/** The media type of RFC 9068 access tokens, as `typ` carries it. */
export const ACCESS_TOKEN_TYP = 'at+jwt';

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
