import { Hono } from 'hono';
import { timingSafeEqual } from 'node:crypto';
import { ApiError } from '../errors';
import { bearerToken } from '../http/credentials';
import { type AppEnv, authorityOf, callAuthority, configOf, storeOf } from '../http/context';

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

/** Operator routes. Invisible (404) unless ADMIN_TOKEN is set. */
export const adminRoutes = new Hono<AppEnv>()
  .use(async (c, next) => {
    const expected = configOf(c).adminToken;
    if (expected === undefined) throw new ApiError('not_found');
    const presented = bearerToken(c.req.raw) ?? '';
    // Digests first: equal lengths for the constant-time comparison, whatever was presented.
    if (!timingSafeEqual(await sha256(presented), await sha256(expected))) throw new ApiError('unauthorized');
    await next();
  })
  .post('/users/:id/revoke', async (c) => {
    const userId = c.req.param('id');
    // Checked in D1 first so that a guessed id never creates a Durable Object.
    if (userId.length > 128 || !(await storeOf(c).userExists(userId))) throw new ApiError('not_found');
    await callAuthority(() => authorityOf(c, userId).adminRevoke({ userId }));
    return c.body(null, 204);
  });
