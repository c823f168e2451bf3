import { Hono } from 'hono';
import type { AppEnv } from '../http/context';
import { requireAccessToken } from '../http/require-token';
import { isoInstant } from './responses';

/** Sample protected routes: one stateless, one strict. */
export const apiRoutes = new Hono<AppEnv>()
  .get('/me', requireAccessToken('stateless'), (c) => {
    const { claims } = c.get('caller');
    return c.json({ user_id: claims.sub, session_id: claims.sid, expires_at: isoInstant(claims.exp * 1000) });
  })
  .get('/account', requireAccessToken('strict'), (c) => {
    const { claims, email, emailVerified } = c.get('caller');
    return c.json({ user_id: claims.sub, email, email_verified: emailVerified, session_id: claims.sid });
  });
