import { env } from 'cloudflare:workers';
import { app } from './app';
import { configFrom } from './config';
import { pruneDirectory } from './storage/prune-directory';
import { assertAddressRateLimiter } from './http/rate-limit';
import { parseSigningKeys } from './tokens/keys';

// Validate configuration at start-up: a bad value stops the Worker from loading, with a message
// naming the variable, instead of failing on the first request.
parseSigningKeys(configFrom(env).signingKeysJson);
assertAddressRateLimiter(env, configFrom(env).addressRateLimit);

export { LatchkeyInternal } from './internal/entrypoint';
export { UserAuthority } from './user-authority/object';

export default {
  fetch: app.fetch,
  async scheduled(_controller, env) {
    await pruneDirectory(env.DB, configFrom(env));
  },
} satisfies ExportedHandler<Env>;
