/**
 * examples/resource-worker, running next to latchkey, accepts latchkey's tokens through each of
 * its three key sources, and refuses everything else the way latchkey would.
 */
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { expectProblem, kidOf, send, signIn, workers } from './workers';

const SOURCES = [
  ['jwks', workers.RESOURCE_JWKS],
  ['binding', workers.RESOURCE_BINDING],
  ['inline', workers.RESOURCE_INLINE],
] as const;

/** A token with latchkey's claims and latchkey's kid, signed by a key latchkey never had. */
async function forgedLike(token: string): Promise<string> {
  const { privateKey } = await generateKeyPair('EdDSA');
  const claims = JSON.parse(atob((token.split('.')[1] as string).replace(/-/g, '+').replace(/_/g, '/')));
  return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: kidOf(token), typ: 'at+jwt' }).sign(privateKey);
}

describe.each(SOURCES)('the resource Worker with the %s key source', (name, resource) => {
  it('runs with that source', async () => {
    const response = await send(resource, '/health');
    expect(await response.json()).toEqual({ ok: true, key_source: name });
  });

  it("accepts latchkey's token on a stateless route", async () => {
    const { token, userId } = await signIn();
    const response = await send(resource, '/notes', { token });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ user_id: userId, notes: [] });
  });

  it('answers missing_token without a token, with a bare challenge', async () => {
    const response = await send(resource, '/notes');
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    await expectProblem(response, 401, 'missing_token');
  });

  it("refuses a token signed with another key under latchkey's kid", async () => {
    const { token } = await signIn();
    const response = await send(resource, '/notes', { token: await forgedLike(token) });
    await expectProblem(response, 401, 'invalid_token');
  });

  it('refuses a token under a kid latchkey never published', async () => {
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true });
    const kid = (await exportJWK(publicKey)).x as string;
    const { token } = await signIn();
    const claims = JSON.parse(atob((token.split('.')[1] as string).replace(/-/g, '+').replace(/_/g, '/')));
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid, typ: 'at+jwt' }).sign(privateKey);
    await expectProblem(await send(resource, '/notes', { token: forged }), 401, 'invalid_token');
  });

  it('stateless routes keep accepting a signed-out token until it expires (why strict exists)', async () => {
    const { token } = await signIn();
    expect((await send(workers.LATCHKEY, '/auth/logout', { method: 'POST', token })).status).toBe(204);
    expect((await send(resource, '/notes', { token })).status).toBe(200);
  });
});

describe('strict routes, through the service binding', () => {
  it('accept a live session', async () => {
    const { token, userId } = await signIn();
    const response = await send(workers.RESOURCE_BINDING, '/payments', { method: 'POST', token });
    expect(response.status).toBe(201);
    expect(await response.json()).toEqual({ user_id: userId, accepted: true });
  });

  it('refuse a session signed out a moment ago: session_revoked', async () => {
    const { token } = await signIn();
    expect((await send(workers.LATCHKEY, '/auth/logout', { method: 'POST', token })).status).toBe(204);
    const response = await send(workers.RESOURCE_BINDING, '/payments', { method: 'POST', token });
    await expectProblem(response, 401, 'session_revoked');
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('refuse every session of a user signed out everywhere', async () => {
    const { token } = await signIn();
    expect((await send(workers.LATCHKEY, '/auth/logout-all', { method: 'POST', token })).status).toBe(204);
    await expectProblem(await send(workers.RESOURCE_BINDING, '/payments', { method: 'POST', token }), 401, 'session_revoked');
  });

  it.each([
    ['jwks', workers.RESOURCE_JWKS],
    ['inline', workers.RESOURCE_INLINE],
  ])('do not exist with the %s source, which cannot ask latchkey', async (_name, resource) => {
    const { token } = await signIn();
    await expectProblem(await send(resource, '/payments', { method: 'POST', token }), 404, 'not_found');
  });
});

describe("latchkey's LatchkeyInternal entrypoint", () => {
  it('serves the public JWKS through fetch', async () => {
    const response = await workers.LATCHKEY_INTERNAL.fetch(`${workers.ISSUER}/.well-known/jwks.json`);
    expect(response.status).toBe(200);
    const { token } = await signIn();
    const { keys } = (await response.json()) as { keys: Array<Record<string, unknown>> };
    expect(keys.map((key) => key.kid)).toContain(kidOf(token));
    expect(keys.every((key) => key.d === undefined)).toBe(true);
  });

  it('sessionStatus: live, then session_revoked after logout', async () => {
    const { token } = await signIn();
    expect(await workers.LATCHKEY_INTERNAL.sessionStatus(token)).toEqual({ status: 'live' });
    await send(workers.LATCHKEY, '/auth/logout', { method: 'POST', token });
    expect(await workers.LATCHKEY_INTERNAL.sessionStatus(token)).toEqual({ status: 'session_revoked' });
  });

  it('sessionStatus: invalid_token for anything that is not a valid token of its own', async () => {
    const { token } = await signIn();
    expect(await workers.LATCHKEY_INTERNAL.sessionStatus(await forgedLike(token))).toEqual({ status: 'invalid_token' });
    expect(await workers.LATCHKEY_INTERNAL.sessionStatus('a.b.c')).toEqual({ status: 'invalid_token' });
    expect(await workers.LATCHKEY_INTERNAL.sessionStatus({ token })).toEqual({ status: 'invalid_token' });
  });
});
