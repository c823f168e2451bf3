// Sessions bound to DPoP keys (RFC 9449) for the bound-renewal row of bench/run.mjs, and the proofs
// the driver sends with each of their renewals. The sessions are made through latchkey's own API
// (register, then one login without a proof and one with), so that their binding is exactly what a
// client's login leaves; every user has one of each, so the bound and the unbound renewals reach
// the same objects.
import { createHash, createPrivateKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { requestJson } from './http.mjs';

/** Users, each with one unbound and one bound session: twice the 32 connections of the widest run. */
const USERS = 64;
/** Logins in flight while seeding: scrypt-bound either way, a few keep workerd busy. */
const IN_FLIGHT = 4;

const b64 = (bytes) => Buffer.from(bytes).toString('base64url');

/** A client key: the private JWK crosses to the driver process over IPC, where `proofKey` imports it. */
function newKey() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ format: 'jwk' });
}

/** A signer for `privateJwk`: Node's synchronous `sign`, since autocannon builds each request synchronously. */
export function proofKey(privateJwk) {
  const { kty, crv, x, y } = privateJwk;
  return {
    privateKey: createPrivateKey({ key: privateJwk, format: 'jwk' }),
    header: b64(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } })),
  };
}

/** A fresh DPoP proof for one request, `ath` over `token` when one is sent (RFC 9449 §4.2). */
export function proofFor(key, { method, url, token }) {
  const claims = { jti: randomUUID(), htm: method, htu: url, iat: Math.floor(Date.now() / 1000) };
  if (token !== undefined) claims.ath = createHash('sha256').update(token).digest('base64url');
  const input = `${key.header}.${b64(JSON.stringify(claims))}`;
  // ES256 signatures in JWS are r || s, not DER (RFC 7518 §3.4).
  return `${input}.${b64(sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }))}`;
}

/** The headers of a bound session's renewal: its token under the DPoP scheme, and a proof of its key. */
export function boundRenewalHeaders(session, url) {
  session.signer ??= proofKey(session.proofJwk);
  return { authorization: `DPoP ${session.token}`, dpop: proofFor(session.signer, { method: 'POST', url, token: session.token }) };
}

/**
 * Registers USERS users and signs each in twice. Returns the sessions as the driver's renewal sets
 * take them: `{ sid, token }`, and for a bound one also `proofJwk`, its private key.
 */
export async function seedBound(url, { password, runId }) {
  // The hash budget would space these logins out (it is measured elsewhere); off for them.
  const headers = { 'x-bench-hash-budget': 'off' };
  const renewUnbound = [];
  const renewBound = [];
  const signUp = async (index) => {
    const email = `bound-${index}-${runId}@bench.test`;
    await requestJson(`${url}/auth/register`, { method: 'POST', headers, body: { email, password } });
    const unbound = await requestJson(`${url}/auth/login`, { method: 'POST', headers, body: { email, password, client: 'bench unbound' } });
    const proofJwk = newKey();
    const dpop = proofFor(proofKey(proofJwk), { method: 'POST', url: `${url}/auth/login` });
    const bound = await requestJson(`${url}/auth/login`, {
      method: 'POST',
      headers: { ...headers, dpop },
      body: { email, password, client: 'bench bound' },
    });
    if (unbound.token_type !== 'Bearer' || bound.token_type !== 'DPoP') {
      throw new Error(`seeding bound sessions: logins answered ${unbound.token_type} and ${bound.token_type}`);
    }
    renewUnbound.push({ sid: unbound.session_id, token: unbound.access_token });
    renewBound.push({ sid: bound.session_id, token: bound.access_token, proofJwk });
  };
  for (let start = 0; start < USERS; start += IN_FLIGHT) {
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, USERS - start) }, (_, i) => signUp(start + i)));
  }
  return { renewUnbound, renewBound };
}
