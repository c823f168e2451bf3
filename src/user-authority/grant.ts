import { sessionTokenClaims } from '../sessions/claims';
import type { SessionRecord } from '../sessions/decide';
import { keyringFor } from '../tokens/keys';
import { signAccessToken } from '../tokens/sign';
import type { AuthorityContext } from './context';
import type { TokenGrant } from './results';

/**
 * The signed token of the session's current generation (claims: sessions/claims.ts), the same
 * every time it is asked for. `verifiedAt` is the user's `email_verified_at`, read here unless the
 * caller read it in the same transaction (a renewal). `at` is the answer's instant.
 */
export async function grant(
  authority: AuthorityContext,
  session: SessionRecord,
  at: number,
  verifiedAt: number | null = authority.records.loadUser()?.emailVerifiedAt ?? null,
): Promise<TokenGrant> {
  const { config } = authority;
  const claims = sessionTokenClaims(session, verifiedAt, config);
  const keyring = await keyringFor(config.signingKeysJson);
  return {
    accessToken: await signAccessToken(claims, keyring),
    tokenType: session.dpopJkt === null ? 'Bearer' : 'DPoP',
    expiresIn: Math.max(0, claims.exp - Math.floor(at / 1000)),
    expiresAtSeconds: claims.exp,
    userId: session.userId,
    sessionId: session.id,
    sessionEndsAt: session.createdAt + config.sessionMaxAgeSeconds * 1000,
    deviceBound: session.dbscJkt !== null,
  };
}
