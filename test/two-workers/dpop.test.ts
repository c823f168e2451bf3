/**
 * examples/resource-worker with tokens bound to a client's key (RFC 9449), through each of its key
 * sources: the owner's requests, each with a fresh proof, pass; a copy of the token without the
 * key gets nothing, however it is presented; a proof is accepted once. The tokens are minted with
 * latchkey's own signing key and claims (`accessTokenClaims`), as latchkey's object mints them.
 */
import { generateProof, generateKeyPair as generateProofKey, type KeyPair } from 'dpop';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { now } from '../../src/clock';
import { parseConfig } from '../../src/config';
import { accessTokenClaims } from '../../src/sessions/claims';
import { keyringFor } from '../../src/tokens/keys';
import { signAccessToken } from '../../src/tokens/sign';
import { expectProblem, send, workers } from './workers';

const SOURCES = [
  ['jwks', workers.RESOURCE_JWKS],
  ['binding', workers.RESOURCE_BINDING],
  ['inline', workers.RESOURCE_INLINE],
] as const;

const config = parseConfig({ ISSUER: workers.ISSUER, SIGNING_KEYS: workers.LATCHKEY_SIGNING_KEYS });
const NOTES = `${workers.ISSUER}/notes`;

/** A client with its own key, and a token of a session bound to that key. */
async function boundClient(): Promise<{ keyPair: KeyPair; jkt: string; token: string }> {
  const keyPair = await generateProofKey('ES256');
  const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
  return { keyPair, jkt, token: await mint(jkt) };
}

async function mint(jkt?: string): Promise<string> {
  const mintedAt = now();
  const session = {
    id: crypto.randomUUID(),
    userId: crypto.randomUUID(),
    gen: 1,
    genMintedAt: mintedAt,
    genExpiresAt: Math.floor(mintedAt / 1000) + config.accessTokenTtlSeconds,
  };
  return signAccessToken(accessTokenClaims({ config, session, jkt }), await keyringFor(config.signingKeysJson));
}

describe.each(SOURCES)('the resource Worker with the %s key source, and bound tokens', (_name, resource) => {
  it('accepts the key holder, each request with its own proof, on both routes', async () => {
    const { keyPair, jkt, token } = await boundClient();
    for (const method of ['GET', 'POST']) {
      const dpop = await generateProof(keyPair, NOTES, method, undefined, token);
      const response = await send(resource, '/notes', { method, token, scheme: 'DPoP', dpop });
      expect(response.status, await response.clone().text()).toBe(method === 'GET' ? 200 : 201);
      if (method === 'POST') expect(await response.json()).toMatchObject({ bound_to: jkt, saved: true });
    }
  });

  it('gives a copy of the token nothing without the key: as Bearer, without a proof, or with the thief’s own key', async () => {
    const { token } = await boundClient();
    const thief = await generateProofKey('ES256');
    const attempts = [
      { scheme: 'Bearer' as const },
      { scheme: 'DPoP' as const },
      { scheme: 'DPoP' as const, dpop: await generateProof(thief, NOTES, 'GET', undefined, token) },
    ];
    for (const attempt of attempts) {
      const response = await send(resource, '/notes', { token, ...attempt });
      expect(response.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_dpop_proof"/);
      await expectProblem(response, 401, 'invalid_dpop_proof');
    }
  });

  it('accepts a proof once', async () => {
    const { keyPair, token } = await boundClient();
    const dpop = await generateProof(keyPair, NOTES, 'GET', undefined, token);
    expect((await send(resource, '/notes', { token, scheme: 'DPoP', dpop })).status).toBe(200);
    await expectProblem(await send(resource, '/notes', { token, scheme: 'DPoP', dpop }), 401, 'invalid_dpop_proof');
  });

  it('refuses a proof made for another route', async () => {
    const { keyPair, token } = await boundClient();
    const dpop = await generateProof(keyPair, NOTES, 'GET', undefined, token);
    await expectProblem(await send(resource, '/notes', { method: 'POST', token, scheme: 'DPoP', dpop }), 401, 'invalid_dpop_proof');
  });

  it("keeps POST /notes for bound tokens: an unbound token is invalid_token there, and fine on GET", async () => {
    const token = await mint();
    expect((await send(resource, '/notes', { token })).status).toBe(200);
    const response = await send(resource, '/notes', { method: 'POST', token });
    expect(response.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token"/);
    await expectProblem(response, 401, 'invalid_token');
  });
});
