import { isTransientPlatformFailure } from '../../packages/verify/src/platform';
import { ApiError, type ChallengeScheme, temporarilyUnavailable } from '../errors';
import type { UserAuthority } from './object';
import type { AuthorityResult } from './results';

export type AuthorityStub = DurableObjectStub<UserAuthority>;

/** The user's Durable Object. Only ever addressed by an id that exists or a verified token's `sub`. */
export function authorityStub(env: Pick<Env, 'USER_AUTHORITY'>, userId: string): AuthorityStub {
  return env.USER_AUTHORITY.get(env.USER_AUTHORITY.idFromName(userId));
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
    if (isTransientPlatformFailure(error)) {
      console.error('latchkey: Durable Object unavailable', String(error));
      throw temporarilyUnavailable();
    }
    throw error;
  }
  if (!result.ok) throw result.code === 'temporarily_unavailable' ? temporarilyUnavailable() : new ApiError(result.code, options);
  return result.value;
}

/** Calls a method of the user's object that answers its value as is, with the same 503 for a passing platform failure. */
export function callAuthorityForValue<T>(call: () => Promise<T>): Promise<T> {
  return callAuthority(async () => ({ ok: true as const, value: await call() }));
}
