// What a token carries is defined where every verifier checks it (packages/verify); minting is
// latchkey's, from a session's records (src/sessions/claims.ts).
export { ACCESS_TOKEN_TYP, type AccessTokenClaims, CLIENT_ID_PATTERN } from '../../packages/verify/src/tokens/claims';
