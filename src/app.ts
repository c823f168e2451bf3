import { Hono } from 'hono';
import { ApiError, ConfigError, logStorageUnavailable, problemResponse, StorageUnavailableError, temporarilyUnavailable } from './errors';
import { type AppEnv, requestState } from './http/context';
import { cors } from './http/cors';
import { serverDate } from './http/server-date';
import { accountRoutes } from './routes/account';
import { adminRoutes } from './routes/admin';
import { apiRoutes } from './routes/api';
import { authRoutes } from './routes/auth';
import { dbscRoutes } from './routes/dbsc';
import { recoveryRoutes } from './routes/recovery';
import { passkeyRoutes } from './routes/passkeys';

/** The Worker's routes. Every failure leaves as a problem document (errors.ts). */
export const app = new Hono<AppEnv>()
  .use(serverDate())
  .use(requestState())
  .use(cors())
  .get('/health', (c) => c.json({ ok: true }))
  .get('/.well-known/jwks.json', async (c) => {
    const keyring = await c.var.keyring();
    // Short enough that a key added for rotation reaches verifiers well before it signs.
    c.header('cache-control', 'public, max-age=300');
    return c.body(keyring.jwksJson, 200, { 'content-type': 'application/json' });
  })
  .route('/auth', authRoutes)
  .route('/auth', recoveryRoutes)
  .route('/auth', passkeyRoutes)
  .route('/', dbscRoutes)
  .route('/auth', accountRoutes)
  .route('/api', apiRoutes)
  .route('/admin', adminRoutes);

app.notFound(() => problemResponse(new ApiError('not_found')));

app.onError((error) => {
  if (error instanceof ApiError) return problemResponse(error);
  if (error instanceof StorageUnavailableError) {
    logStorageUnavailable(error);
    return problemResponse(temporarilyUnavailable());
  }
  if (error instanceof ConfigError) console.error(error.message);
  else console.error('latchkey: unexpected error', error);
  return problemResponse(new ApiError('internal_error'));
});
