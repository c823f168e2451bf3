/**
 * Keys, tokens and a scripted JWKS endpoint for testing `@latchkey/verify` without latchkey
 * itself. Runtime-neutral: these tests run in workerd and in Node.
 */
import { base64url, type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { nowSeconds } from '../../packages/verify/src/clock';

export const ISSUER = 'https://issuer.test';
export const AUDIENCE = 'latchkey';
export const JWKS_URL = `${ISSUER}/.well-known/jwks.json`;

export interface TestKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: Record<string, unknown>;
}

export async function makeKey(kid: string = crypto.randomUUID()): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' } };
}

/** A token as latchkey mints it, signed by `key`; claims and header can be overridden. */
export function sign(
  key: TestKey,
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  const iat = nowSeconds();
  return new SignJWT({
    iss: ISSUER,
    aud: AUDIENCE,
    sub: 'user-1',
    sid: 'session-1',
    gen: 1,
    iat,
    exp: iat + 300,
    jti: 'session-1.1',
    ...claims,
  })
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'at+jwt', ...header })
    .sign(key.privateKey);
}

/** An issuer's JWKS endpoint whose keys, headers and failures the test controls; it counts requests. */
export class ScriptedJwks {
  requests = 0;
  paths: string[] = [];
  keys: TestKey[];
  cacheControl: string | null = 'public, max-age=300';
  age: string | null = null;
  /** Set to answer with this instead of the key set. */
  failure: (() => Response | Promise<Response>) | null = null;

  constructor(...keys: TestKey[]) {
    this.keys = keys;
  }

  readonly fetch = async (request: Request): Promise<Response> => {
    this.requests += 1;
    this.paths.push(new URL(request.url).pathname);
    if (this.failure) return this.failure();
    const headers = new Headers({ 'content-type': 'application/json' });
    if (this.cacheControl !== null) headers.set('cache-control', this.cacheControl);
    if (this.age !== null) headers.set('age', this.age);
    return new Response(JSON.stringify({ keys: this.keys.map((key) => key.publicJwk) }), { headers });
  };
}

/** A client's DPoP key: ES256, as the browser client makes it. */
export interface ProofKey {
  privateKey: CryptoKey;
  publicJwk: Record<string, unknown>;
  jkt: string;
}

export async function makeProofKey(): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk) };
}

/** A DPoP proof (RFC 9449 §4.2) for `method` `url`, with `ath` over `token`, dated by the test clock. */
export async function proofFor(key: ProofKey, method: string, url: string, token?: string): Promise<string> {
  const claims: Record<string, unknown> = { jti: crypto.randomUUID(), htm: method, htu: url, iat: nowSeconds() };
  if (token !== undefined) {
    claims.ath = base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))));
  }
  return new SignJWT(claims).setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicJwk }).sign(key.privateKey);
}
