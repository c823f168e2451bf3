import type { Context, MiddlewareHandler } from 'hono';
import { type Config, configFrom } from '../config';
import { type Store, storeFor } from '../storage/store';
import type { AccessTokenClaims } from '../tokens/claims';
import { type Keyring, keyringFor } from '../tokens/keys';
import { type AuthorityStub, authorityStub } from '../user-authority/call';
import { throttleAddress } from './address';
import type { CredentialSource } from './credentials';

/** What a route knows about the caller once its token passed the route's check. */
export interface Caller {
  claims: AccessTokenClaims;
  /** Present after the strict check, which reads it with the session anyway. */
  email?: string;
  /** Present after the strict check, read with the email. */
  emailVerified?: boolean;
}

/** What every handler reaches the service through, set once per request by `requestState()`. */
export interface RequestState {
  /** The isolate's configuration, parsed on the first request of its `env`. */
  config: Config;
  /** D1: the directory of users, the login throttle, the mirror of revocations. */
  store: Store;
  /** The signing keys, imported on first use: most routes verify or sign a token, /health does neither. */
  keyring: () => Promise<Keyring>;
  /** The user's Durable Object; call it through `callAuthority` (user-authority/call.ts). */
  authority: (userId: string) => AuthorityStub;
}

export interface AppEnv {
  Bindings: Env;
  Variables: RequestState & {
    caller: Caller;
    /** Where the access token came from; cookie-authenticated answers renew or clear the cookie. */
    credential: CredentialSource;
  };
}

export type AppContext = Context<AppEnv>;

/** Puts `RequestState` on `c.var`; registered once, ahead of every route (app.ts). */
export function requestState(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const config = configFrom(c.env);
    let keyring: Promise<Keyring> | undefined;
    c.set('config', config);
    c.set('store', storeFor(c.env.DB));
    c.set('keyring', () => {
      keyring ??= keyringFor(config.signingKeysJson);
      return keyring;
    });
    c.set('authority', (userId) => authorityStub(c.env, userId));
    await next();
  };
}

/** The client address for login throttling; the edge sets CF-Connecting-IP on every request. */
export function clientAddress(c: AppContext): string {
  return throttleAddress(c.req.header('cf-connecting-ip') ?? 'unknown');
}
