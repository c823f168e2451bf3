import { env } from 'cloudflare:workers';
import { expect } from 'vitest';
import type { SessionStatus } from '../../src/verify/session-status';

/** The runner's bindings (test/two-workers/vitest.config.ts). */
export interface TwoWorkers {
  ISSUER: string;
  LATCHKEY: Fetcher;
  LATCHKEY_INTERNAL: Fetcher & { sessionStatus(token: unknown): Promise<SessionStatus> };
  RESOURCE_JWKS: Fetcher;
  RESOURCE_BINDING: Fetcher;
  RESOURCE_INLINE: Fetcher;
  ROTATION_0: Fetcher;
  ROTATION_1: Fetcher;
  ROTATION_2: Fetcher;
  ROTATION_3: Fetcher;
  LATCHKEY_SIGNING_KEYS: string;
  ROTATION_OLD_KID: string;
  ROTATION_NEW_KID: string;
}

export const workers = env as unknown as TwoWorkers;

/** A request to a Worker through its binding; the host is the issuer's, for latchkey's sake. */
export function send(
  worker: Fetcher,
  path: string,
  init: { method?: string; token?: string; scheme?: 'Bearer' | 'DPoP'; dpop?: string; json?: unknown } = {},
): Promise<Response> {
  const headers = new Headers();
  if (init.token !== undefined) headers.set('authorization', `${init.scheme ?? 'Bearer'} ${init.token}`);
  if (init.dpop !== undefined) headers.set('dpop', init.dpop);
  if (init.json !== undefined) headers.set('content-type', 'application/json');
  return worker.fetch(`${workers.ISSUER}${path}`, {
    method: init.method ?? 'GET',
    headers,
    body: init.json === undefined ? undefined : JSON.stringify(init.json),
  });
}

const PASSWORD = 'correct horse battery staple';

/** Registers a fresh user at `latchkey` (any deployment of it) and logs in: the access token. */
export async function signIn(latchkey: Fetcher = workers.LATCHKEY): Promise<{ token: string; userId: string }> {
  const email = `two-workers-${crypto.randomUUID()}@example.com`;
  const registered = await send(latchkey, '/auth/register', { method: 'POST', json: { email, password: PASSWORD } });
  expect(registered.status).toBe(201);
  const { user } = (await registered.json()) as { user: { id: string } };
  return { token: await logIn(latchkey, email), userId: user.id };
}

async function logIn(latchkey: Fetcher, email: string): Promise<string> {
  const response = await send(latchkey, '/auth/login', { method: 'POST', json: { email, password: PASSWORD } });
  expect(response.status, await response.clone().text()).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** Renews at `latchkey`; the new access token. */
export async function renewAt(latchkey: Fetcher, token: string): Promise<string> {
  const response = await send(latchkey, '/auth/renew', { method: 'POST', token });
  expect(response.status, await response.clone().text()).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** The `kid` of a token's header (unverified, tests only). */
export function kidOf(token: string): string {
  const header = token.split('.')[0] as string;
  return (JSON.parse(atob(header.replace(/-/g, '+').replace(/_/g, '/'))) as { kid: string }).kid;
}

/** Asserts a problem document with `status` and `code`. */
export async function expectProblem(response: Response, status: number, code: string): Promise<void> {
  expect({ status: response.status, body: await response.clone().text() }).toMatchObject({ status });
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  expect(await response.json()).toMatchObject({ status, code });
}
