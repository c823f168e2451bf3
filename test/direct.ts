import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { app } from '../src/app';

/**
 * A request straight into the Worker's fetch handler (what src/index.ts exports), with the
 * bindings given. Two uses: the D1 the Worker itself reads and writes can be swapped for a faulty
 * one (the Durable Object keeps its own, see faults.ts); and long request loops stay fast, where
 * the test pool's `exports.default.fetch` slows down request after request once large headers
 * have gone through it.
 */
export async function direct(
  path: string,
  init: RequestInit & { token?: string; json?: unknown } = {},
  bindings: Env = env,
): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token !== undefined) headers.set('authorization', `Bearer ${init.token}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set('content-type', 'application/json');
    body = JSON.stringify(init.json);
  }
  const ctx = createExecutionContext();
  const response = await app.fetch(new Request(`http://localhost${path}`, { ...init, headers, body }), bindings, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}
