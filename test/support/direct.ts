import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { app } from '../../src/app';
import { type CallInit, requestTo } from './helpers';

/**
 * A request straight into the Worker's fetch handler (what src/index.ts exports), with the
 * bindings given. Two uses: the D1 the Worker itself reads and writes can be swapped for a faulty
 * one (the Durable Object keeps its own, see faults.ts); and long request loops stay fast, where
 * the test pool's `exports.default.fetch` slows down request after request once large headers
 * have gone through it.
 */
export async function direct(path: string, init: CallInit = {}, bindings: Env = env): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await app.fetch(requestTo(path, init), bindings, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}
