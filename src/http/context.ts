import type { Context } from 'hono';
import { type Config, configFrom } from '../config';
import { ApiError, type ChallengeScheme } from '../errors';
import { throttleAddress } from './address';
import { Store } from '../storage/store';
import type { AccessTokenClaims } from '../tokens/claims';
import { type Keyring, keyringFor } from '../tokens/keys';
import type { UserAuthority } from '../user-authority/object';
import type { AuthorityResult } from '../user-authority/results';
import type { CredentialSource } from './presented-token';

/** What a route knows about the caller once its token passed the route's check. */
export interface Caller {
  claims: AccessTokenClaims;
  /** Present after the strict check, which reads it with the session anyway. */
  email?: string;
  /** Present after the strict check, read with the email. */
  emailVerified?: boolean;
}

export interface AppEnv {
  Bindings: Env;
  Variables: {
    caller: Caller;
    /** Where the access token came from; cookie-authenticated answers renew or clear the cookie. */
    credential: CredentialSource;
  };
}

export type AppContext = Context<AppEnv>;

export function configOf(c: AppContext): Config {
  return configFrom(c.env);
}

export function keyringOf(c: AppContext): Promise<Keyring> {
  return keyringFor(configOf(c).signingKeysJson);
}

export function storeOf(c: AppContext): Store {
  return new Store(c.env.DB);
}

/** The user's Durable Object. Only ever addressed by an id that exists or a verified token's `sub`. */
export function authorityOf(c: AppContext, userId: string): DurableObjectStub<UserAuthority> {
  const namespace = c.env.USER_AUTHORITY as unknown as DurableObjectNamespace<UserAuthority>;
  return namespace.get(namespace.idFromName(userId));
}

/**
 * Calls the user's object and unwraps its tagged result. The platform marks failures of the
 * object itself (reset, overloaded, unreachable) as retryable: those are 503, like D1's.
 */
export async function callAuthority<T>(
  call: () => Promise<AuthorityResult<T>>,
  options: { scheme?: ChallengeScheme } = {},
): Promise<T> {
  let result: AuthorityResult<T>;
  try {
    result = await call();
  } catch (error) {
    const flags = error as { retryable?: boolean; overloaded?: boolean };
    if (flags?.retryable || flags?.overloaded) {
      console.error('latchkey: Durable Object unavailable', String(error));
      throw new ApiError('temporarily_unavailable', { retryAfterSeconds: 1 });
    }
    throw error;
  }
  if (!result.ok) {
    throw new ApiError(result.code, result.code === 'temporarily_unavailable' ? { retryAfterSeconds: 1 } : options);
  }
  return result.value;
}

/** The client address for login throttling; the edge sets CF-Connecting-IP on every request. */
export function clientAddress(c: AppContext): string {
  return throttleAddress(c.req.header('cf-connecting-ip') ?? 'unknown');
}
