import { env, exports } from 'cloudflare:workers';
import { expect } from 'vitest';

export const PASSWORD = 'correct horse battery staple';

let counter = 0;
/** A fresh email per call: tests share one D1, so each one makes its own users. */
export function uniqueEmail(prefix = 'user'): string {
  counter += 1;
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}-${counter}@example.com`;
}

export type CallInit = RequestInit & { token?: string; json?: unknown };

/** A request to `path`, with `token` as a bearer token and `json` as a JSON body. */
export function requestTo(path: string, init: CallInit = {}): Request {
  const headers = new Headers(init.headers);
  if (init.token !== undefined) headers.set('authorization', `Bearer ${init.token}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set('content-type', 'application/json');
    body = JSON.stringify(init.json);
  }
  return new Request(`http://localhost${path}`, { ...init, headers, body });
}

/** A request through the Worker's own fetch handler, in this isolate. */
export function call(path: string, init: CallInit = {}): Promise<Response> {
  return exports.default.fetch(requestTo(path, init));
}

export interface TokenBody {
  access_token: string;
  token_type: string;
  expires_in: number;
  session_id: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
}

/** Asserts a problem document with `status` and `code`, and returns it. */
export async function expectProblem(response: Response, status: number, code: string): Promise<Problem> {
  const text = await response.text();
  expect({ status: response.status, text }).toMatchObject({ status });
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  const problem = JSON.parse(text) as Problem;
  expect(problem).toMatchObject({ status, code });
  return problem;
}

export async function register(email = uniqueEmail(), password = PASSWORD): Promise<{ id: string; email: string }> {
  const response = await call('/auth/register', { method: 'POST', json: { email, password } });
  expect(response.status).toBe(201);
  const { user } = (await response.json()) as { user: { id: string; email: string } };
  return user;
}

export async function login(email: string, password = PASSWORD, client?: string): Promise<TokenBody> {
  const response = await call('/auth/login', { method: 'POST', json: { email, password, client } });
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as TokenBody;
}

/** A registered user with one logged-in session. */
export async function signedInUser(client?: string) {
  const email = uniqueEmail();
  const user = await register(email);
  const token = await login(email, PASSWORD, client);
  return { ...user, email, token };
}

export function renew(token: string): Promise<Response> {
  return call('/auth/renew', { method: 'POST', token });
}

export async function renewOk(token: string): Promise<TokenBody> {
  const response = await renew(token);
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as TokenBody;
}

/** The claims of a token, unverified (tests only). */
export function claimsOf(token: string): Record<string, unknown> {
  const payload = token.split('.')[1] as string;
  return JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/')));
}

export async function eventsOf(token: string): Promise<Array<{ type: string; session_id: string | null; detail: unknown }>> {
  const response = await call('/auth/events', { token });
  expect(response.status).toBe(200);
  return ((await response.json()) as { events: Array<{ type: string; session_id: string | null; detail: unknown }> })
    .events;
}

export function adminToken(): string {
  return env.ADMIN_TOKEN;
}
