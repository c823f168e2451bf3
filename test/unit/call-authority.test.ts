import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from '../../src/errors';
import { callAuthority, callAuthorityForValue } from '../../src/user-authority/call';

function platformFailure(flags: { retryable?: boolean; overloaded?: boolean }): Error {
  return Object.assign(new Error('Durable Object reset because its code was updated.'), flags);
}

async function refusal(call: Promise<unknown>): Promise<ApiError> {
  const error = await call.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('callAuthority', () => {
  it('unwraps a value, and answers a refusal with its code and the scheme the token came with', async () => {
    expect(await callAuthority(async () => ({ ok: true as const, value: 7 }))).toBe(7);
    const refused = await refusal(callAuthority(async () => ({ ok: false as const, code: 'session_revoked' as const }), { scheme: 'DPoP' }));
    expect([refused.code, refused.scheme, refused.retryAfterSeconds]).toEqual(['session_revoked', 'DPoP', undefined]);
  });

  it('answers the object\'s own 503 with Retry-After 1', async () => {
    const refused = await refusal(callAuthority(async () => ({ ok: false as const, code: 'temporarily_unavailable' as const })));
    expect([refused.code, refused.status, refused.retryAfterSeconds]).toEqual(['temporarily_unavailable', 503, 1]);
  });

  it.each([{ retryable: true }, { overloaded: true }])('answers a platform failure flagged %o as 503 with Retry-After 1, and logs it', async (flags) => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const refused = await refusal(callAuthorityForValue(() => Promise.reject(platformFailure(flags))));
    expect([refused.code, refused.status, refused.retryAfterSeconds]).toEqual(['temporarily_unavailable', 503, 1]);
    expect(log).toHaveBeenCalledWith(
      'latchkey: Durable Object unavailable',
      'Error: Durable Object reset because its code was updated.',
    );
  });

  it('lets any other failure through as it is: a bug is not a 503', async () => {
    const bug = new TypeError('not a function');
    await expect(callAuthorityForValue(() => Promise.reject(bug))).rejects.toBe(bug);
    await expect(callAuthorityForValue(() => Promise.reject(platformFailure({ retryable: false })))).rejects.not.toBeInstanceOf(ApiError);
  });
});
