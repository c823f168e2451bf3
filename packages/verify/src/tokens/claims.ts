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

/** A `client_id` as latchkey mints and accepts it: 1 to 128 visible ASCII characters (RFC 6749 §A.1, without spaces). */
export const CLIENT_ID_PATTERN = /^[\x21-\x7E]{1,128}$/;

/** The media type of RFC 9068 access tokens, as `typ` carries it. */
export const ACCESS_TOKEN_TYP = 'at+jwt';
