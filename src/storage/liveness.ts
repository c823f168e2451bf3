import { now } from '../clock';
import type { Config } from '../config';
import { sessionState } from '../renewal/decide';
import { renewalPolicy } from '../renewal/decide';
import type { SessionWithUser } from './records';
import type { Store } from './store';

/** The code that answers a session that is not live (API.md, strict routes). */
export const NOT_LIVE = {
  revoked: 'session_revoked',
  expired: 'session_expired',
  inactive: 'session_inactive',
} as const;

/**
 * The strict check's one D1 read: the session of the token and the user's revocation instant,
 * judged live or not (revoked, past SESSION_MAX_AGE, idle past RENEW_WINDOW). Shared by latchkey's
 * own strict routes and by the strict check it answers for other Workers over a service binding.
 */
export async function readSessionLiveness(
  store: Store,
  claims: { sid: string; sub: string },
  config: Config,
): Promise<{ live: true; loaded: SessionWithUser } | { live: false; code: (typeof NOT_LIVE)[keyof typeof NOT_LIVE] }> {
  const loaded = await store.loadSession(claims.sid, claims.sub);
  const state = sessionState(loaded?.session ?? null, loaded?.user ?? null, now(), renewalPolicy(config));
  if (state === 'live' && loaded) return { live: true, loaded };
  return { live: false, code: NOT_LIVE[state === 'live' ? 'revoked' : state] };
}
