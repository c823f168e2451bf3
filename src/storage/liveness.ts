import { now } from '../clock';
import type { Config } from '../config';
import { renewalPolicy, type SessionLiveness, revocationStanding } from '../sessions/decide';
import type { SessionMirror } from './records';
import type { Store } from './store';

/** The code that answers a session that is not live (API.md, strict routes). */
export const NOT_LIVE = {
  revoked: 'session_revoked',
  expired: 'session_expired',
  inactive: 'session_inactive',
} as const satisfies Record<Exclude<SessionLiveness, 'live'>, string>;

/**
 * The strict check's one D1 read: D1's mirror of the token's session and the user's revocation
 * instant, judged revoked or past SESSION_MAX_AGE. The idle limit needs no read here: the token
 * presented is unexpired, and the session's newest token expires no earlier. Shared by
 * latchkey's own strict routes and by the strict check it answers for other Workers.
 */
export async function readSessionLiveness(
  store: Store,
  claims: { sid: string; sub: string },
  config: Config,
): Promise<{ live: true; mirror: SessionMirror } | { live: false; code: (typeof NOT_LIVE)[keyof typeof NOT_LIVE] }> {
  const mirror = await store.readSessionMirror(claims.sid, claims.sub);
  const standing = revocationStanding(mirror?.session ?? null, mirror?.user ?? null, now(), renewalPolicy(config));
  if (standing === 'live' && mirror) return { live: true, mirror };
  return { live: false, code: NOT_LIVE[standing === 'live' ? 'revoked' : standing] };
}
