/**
 * Interoperability: a standard resource server accepts latchkey's access tokens. oauth4webapi's
 * `validateJwtAccessToken` implements RFC 9068 (the JWT profile latchkey's `typ: at+jwt` claims)
 * and RFC 9449 on the resource side; it fetches the keys from latchkey's own JWKS route. The
 * tokens are minted exactly as the user's object mints them: claims from `accessTokenClaims`,
 * signed by the service's key.
 */
import { env } from 'cloudflare:workers';
import { generateProof, generateKeyPair as generateProofKey } from 'dpop';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { describe, expect, it } from 'vitest';
import { now } from '../../src/clock';
import { configFrom } from '../../src/config';
import { checkPossession, readProofHeader } from '../../packages/verify/src/dpop/possession';
import { authorizationCredential } from '../../src/http/credentials';
import { accessTokenClaims } from '../../src/sessions/claims';
import { keyringFor } from '../../src/tokens/keys';
import { signAccessToken } from '../../src/tokens/sign';
import { verifyAccessToken } from '../../packages/verify/src/tokens/verify';
import { direct } from '../support/direct';

const config = configFrom(env);
const RESOURCE = 'https://api.example.test/notes';

/** latchkey as an RFC 8414 authorization server, as far as a resource server needs to know it. */
const authorizationServer: oauth.AuthorizationServer = {
  issuer: config.issuer,
  jwks_uri: new URL('/.well-known/jwks.json', config.issuer).href,
};

const options = {
  // The JWKS comes from latchkey's own route, whatever host the test configuration names.
  [oauth.customFetch]: (url: string) => direct(new URL(url).pathname),
  // The test ISSUER is http://localhost:8787.
  [oauth.allowInsecureRequests]: true,
};

async function mint(jkt?: string, changes: Record<string, unknown> = {}): Promise<string> {
  const mintedAt = now();
  const session = {
    id: crypto.randomUUID(),
    userId: crypto.randomUUID(),
    gen: 1,
    genMintedAt: mintedAt,
    genExpiresAt: Math.floor(mintedAt / 1000) + config.accessTokenTtlSeconds,
  };
  const claims = { ...accessTokenClaims({ config, session, jkt }), ...changes };
  return signAccessToken(claims, await keyringFor(config.signingKeysJson));
}

describe('RFC 9068: a standard validator accepts latchkey tokens', () => {
  it('an unbound token, as Bearer', async () => {
    const token = await mint();
    const request = new Request(RESOURCE, { headers: { authorization: `Bearer ${token}` } });
    const claims = await oauth.validateJwtAccessToken(authorizationServer, request, config.audience, options);
    expect(claims).toMatchObject({ iss: config.issuer, aud: config.audience, client_id: config.clientId });
    expect(claims).not.toHaveProperty('cnf');
  });

  it('a bound token, as DPoP with a proof, under requireDPoP; and latchkey agrees', async () => {
    const keyPair = await generateProofKey('ES256');
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
    const token = await mint(jkt);
    const proof = await generateProof(keyPair, RESOURCE, 'GET', undefined, token);
    const request = new Request(RESOURCE, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
    const claims = await oauth.validateJwtAccessToken(authorizationServer, request, config.audience, { ...options, requireDPoP: true });
    expect(claims.cnf).toEqual({ jkt });

    const verified = await verifyAccessToken(token, await keyringFor(config.signingKeysJson), {
      issuer: config.issuer,
      audience: config.audience,
      nowMs: now(),
      allowExpired: false,
    });
    expect(verified).toMatchObject({ ok: true, claims: { cnf: { jkt } } });
    const possession = await checkPossession({
      presentedAs: authorizationCredential(request)?.scheme ?? 'Bearer',
      token,
      boundJkt: jkt,
      proof: readProofHeader(request),
      method: request.method,
      url: request.url,
      nowMs: now(),
    });
    expect(possession).toMatchObject({ ok: true, proof: { jkt } });
  });

  it('and it refuses a bound token presented as Bearer, as latchkey does', async () => {
    const keyPair = await generateProofKey('ES256');
    const token = await mint(await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)));
    const request = new Request(RESOURCE, { headers: { authorization: `Bearer ${token}` } });
    await expect(oauth.validateJwtAccessToken(authorizationServer, request, config.audience, options)).rejects.toThrow(/DPoP/);
  });

  it('why client_id is carried: without it the profile refuses the token', async () => {
    const token = await mint(undefined, { client_id: undefined });
    const request = new Request(RESOURCE, { headers: { authorization: `Bearer ${token}` } });
    await expect(oauth.validateJwtAccessToken(authorizationServer, request, config.audience, options)).rejects.toThrow(
      /client_id/,
    );
  });
});
