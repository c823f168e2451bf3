/**
 * `npm start` passes LATCHKEY_DEV_SERVER_PORT, so the demo page works on whatever port the server
 * runs (scripts/start.mjs). The Worker runs here with its test env and with a copy of it that has
 * the variable, as `npm start -- --port 8790` would give it.
 */
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { app } from '../../src/app';
import { DEV_SERVER_PORT } from '../../src/config';
import { expectProblem, PASSWORD, register, uniqueEmail } from '../support/helpers';

const PORT = 8790;
const underNpmStart = { ...env, [DEV_SERVER_PORT]: String(PORT) } as Env;

async function send(workerEnv: Env, path: string, init: RequestInit): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await app.fetch(new Request(`http://localhost:${PORT}${path}`, init), workerEnv, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

/** The demo page's sign-in: cookie mode, from the page's own origin. */
function cookieLogin(workerEnv: Env, email: string, origin: string): Promise<Response> {
  return send(workerEnv, '/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin },
    body: JSON.stringify({ email, password: PASSWORD, mode: 'cookie', client: 'demo' }),
  });
}

describe('the dev server origin', () => {
  it.each([`http://localhost:${PORT}`, `http://127.0.0.1:${PORT}`])(
    'lets the demo sign in with a cookie from %s under npm start',
    async (origin) => {
      const email = uniqueEmail();
      await register(email);
      const response = await cookieLogin(underNpmStart, email, origin);
      expect(response.status, await response.clone().text()).toBe(200);
      expect(response.headers.getSetCookie()).toHaveLength(1);
      expect(response.headers.get('access-control-allow-origin')).toBe(origin);
    },
  );

  it('is refused from that origin without the variable, as in production', async () => {
    const email = uniqueEmail();
    await register(email);
    await expectProblem(await cookieLogin(env, email, `http://localhost:${PORT}`), 403, 'forbidden_origin');
  });

  it('allows only the port the server runs on, not its neighbours', async () => {
    const email = uniqueEmail();
    await register(email);
    await expectProblem(await cookieLogin(underNpmStart, email, `http://localhost:${PORT + 1}`), 403, 'forbidden_origin');
  });

  it('answers the preflight of the dev origin with CORS headers', async () => {
    const preflight = (workerEnv: Env) =>
      send(workerEnv, '/auth/login', {
        method: 'OPTIONS',
        headers: { origin: `http://127.0.0.1:${PORT}`, 'access-control-request-method': 'POST' },
      });
    expect((await preflight(underNpmStart)).headers.get('access-control-allow-origin')).toBe(`http://127.0.0.1:${PORT}`);
    expect((await preflight(env)).headers.get('access-control-allow-origin')).toBeNull();
  });
});
