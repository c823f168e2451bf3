/** The claims of a latchkey access token (API.md, "The access token"). */
export interface AccessTokenClaims {
  iss: string;
  aud: string;
  /** User id. */
  sub: string;
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

/** The media type of RFC 9068 access tokens, as `typ` carries it. */
export const ACCESS_TOKEN_TYP = 'at+jwt';
