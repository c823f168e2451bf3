/**
 * Sessions bound to a key (RFC 9449, PROTOCOL.md row 1b) through latchkey's own routes: binding at
 * login, renewal and logout with a proof, and what a copy of a bound token is worth without the
 * key: nothing, on any route, and the owner's session goes on untouched.
 */
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeProof, type ProofSigner } from '../../packages/client/src/proof';
import { app } from '../../src/app';
import { now, testClock } from '../../src/clock';
import { direct } from '../support/direct';
import { evictUserObjects } from '../support/faults';
import { claimsOf, expectProblem, PASSWORD, register, type TokenBody, uniqueEmail } from '../support/helpers';
import { objectRows } from '../support/user-object';
import { makeProofKeys, materialize, proofCorpus, type ProofKeys } from '../support/dpop-recipes';

const ORIGIN = 'http://localhost';
const GRACE_MS = 10_000;

interface Client {
  key: ProofSigner & { jkt: string };
  token: TokenBody;
}

async function newKey(): Promise<ProofSigner & { jkt: string }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = (await exportJWK(publicKey)) as ProofSigner['jwk'];
  return { privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
}

function proofFor(key: ProofSigner, method: string, path: string, accessToken?: string): Promise<string> {
  return makeProof(key, { method, url: `${ORIGIN}${path}`, iatSeconds: Math.floor(now() / 1000), accessToken });
}

async function bindingLogin(email: string, key: ProofSigner): Promise<Response> {
  return direct('/auth/login', {
    method: 'POST',
    headers: { dpop: await proofFor(key, 'POST', '/auth/login') },
    json: { email, password: PASSWORD, client: 'bound' },
  });
}

async function boundUser(): Promise<Client & { id: string; email: string }> {
  const email = uniqueEmail('dpop');
  const { id } = await register(email);
  const key = await newKey();
  const response = await bindingLogin(email, key);
  expect(response.status, await response.clone().text()).toBe(200);
  return { id, email, key, token: (await response.json()) as TokenBody };
}

/** A request with the token under the DPoP scheme and a fresh proof by `key` (or none). */
async function withProof(method: string, path: string, token: string, key: ProofSigner | null): Promise<Response> {
  const headers: Record<string, string> = { authorization: `DPoP ${token}` };
  if (key) headers.dpop = await proofFor(key, method, path, token);
  return direct(path, { method, headers });
}

async function renewBound(client: Client, key: ProofSigner | null = client.key): Promise<Response> {
  return withProof('POST', '/auth/renew', client.token.access_token, key);
}

describe('binding at login', () => {
  it('a login with a DPoP proof opens a bound session: token_type DPoP, cnf.jkt the key thumbprint', async () => {
    const { id, key, token } = await boundUser();
    expect(token.token_type).toBe('DPoP');
    expect(claimsOf(token.access_token)).toMatchObject({ cnf: { jkt: key.jkt }, client_id: 'latchkey' });
    const rows = await objectRows(id);
    expect(rows.sessions[0]).toMatchObject({ dpop_jkt: key.jkt, dbsc_jkt: null });
  });

  it('a login without one opens an unbound session, as before', async () => {
    const email = uniqueEmail('dpop');
    await register(email);
    const response = await direct('/auth/login', { method: 'POST', json: { email, password: PASSWORD } });
    const token = (await response.json()) as TokenBody;
    expect(token.token_type).toBe('Bearer');
    expect(claimsOf(token.access_token).cnf).toBeUndefined();
  });

  it('a DPoP header that is not a valid proof for the login is 400 invalid_dpop_proof, never an unbound session, and no attempt is counted', async () => {
    const email = uniqueEmail('dpop');
    await register(email);
    const key = await newKey();
    const wrongUrl = await makeProof(key, { method: 'POST', url: `${ORIGIN}/auth/renew`, iatSeconds: Math.floor(now() / 1000) });
    for (let attempt = 0; attempt < 7; attempt++) {
      const response = await direct('/auth/login', { method: 'POST', headers: { dpop: wrongUrl }, json: { email, password: PASSWORD } });
      await expectProblem(response, 400, 'invalid_dpop_proof');
      expect(response.headers.get('www-authenticate')).toBeNull();
    }
    // Seven refusals, more than LOGIN_MAX_FAILURES: none was charged to the throttle.
    expect((await bindingLogin(email, key)).status).toBe(200);
  });

  it('REQUIRE_DPOP=true refuses a login without a proof', async () => {
    const email = uniqueEmail('dpop');
    await register(email);
    const strict = { ...env, REQUIRE_DPOP: 'true' } as Env;
    const response = await direct('/auth/login', { method: 'POST', json: { email, password: PASSWORD } }, strict);
    await expectProblem(response, 400, 'invalid_dpop_proof');
    const key = await newKey();
    const bound = await direct(
      '/auth/login',
      { method: 'POST', headers: { dpop: await proofFor(key, 'POST', '/auth/login') }, json: { email, password: PASSWORD } },
      strict,
    );
    expect(bound.status).toBe(200);
  });
});

describe('using a bound session', () => {
  it('renews with a proof of its key: the next token is bound to the same key', async () => {
    const client = await boundUser();
    const response = await renewBound(client);
    expect(response.status, await response.clone().text()).toBe(200);
    const next = (await response.json()) as TokenBody;
    expect(next.token_type).toBe('DPoP');
    expect(claimsOf(next.access_token)).toMatchObject({ gen: 2, cnf: { jkt: client.key.jkt } });
  });

  it.each([
    ['GET', '/api/me'],
    ['GET', '/api/account'],
    ['GET', '/auth/sessions'],
    ['GET', '/auth/events'],
  ])('%s %s takes the bound token with its proof', async (method, path) => {
    const client = await boundUser();
    const response = await withProof(method, path, client.token.access_token, client.key);
    expect(response.status, await response.clone().text()).toBe(200);
  });

  it('logs out with a proof; without one, nothing happens', async () => {
    const client = await boundUser();
    await expectProblem(await withProof('POST', '/auth/logout', client.token.access_token, null), 401, 'invalid_dpop_proof');
    const thief = await newKey();
    await expectProblem(await withProof('POST', '/auth/logout', client.token.access_token, thief), 401, 'invalid_dpop_proof');
    expect((await withProof('POST', '/auth/logout', client.token.access_token, client.key)).status).toBe(204);
    await expectProblem(await renewBound(client), 401, 'session_revoked');
  });

  it('a password change keeps the new session bound to the same key', async () => {
    const client = await boundUser();
    const response = await direct('/auth/password', {
      method: 'POST',
      headers: {
        authorization: `DPoP ${client.token.access_token}`,
        dpop: await proofFor(client.key, 'POST', '/auth/password', client.token.access_token),
      },
      json: { current_password: PASSWORD, new_password: `${PASSWORD} anew` },
    });
    expect(response.status, await response.clone().text()).toBe(200);
    const fresh = (await response.json()) as TokenBody;
    expect(fresh.token_type).toBe('DPoP');
    expect(claimsOf(fresh.access_token).cnf).toEqual({ jkt: client.key.jkt });
  });
});

describe('Security: a copy of a bound token without the key', () => {
  it('renews nothing, expired or not, logs out nothing, and the owner goes on untouched', async () => {
    const owner = await boundUser();
    const thief = await newKey();
    const copy = owner.token.access_token;
    for (const advance of [0, 400_000]) {
      testClock.advance(advance);
      await expectProblem(await withProof('POST', '/auth/renew', copy, thief), 401, 'invalid_dpop_proof');
      await expectProblem(await withProof('POST', '/auth/renew', copy, null), 401, 'invalid_dpop_proof');
      await expectProblem(await direct('/auth/renew', { method: 'POST', token: copy }), 401, 'invalid_dpop_proof');
      await expectProblem(await withProof('POST', '/auth/logout', copy, thief), 401, 'invalid_dpop_proof');
      // A strict route takes no expired token at all, bound or not.
      const everywhere = await withProof('POST', '/auth/logout-all', copy, thief);
      await expectProblem(everywhere, 401, advance === 0 ? 'invalid_dpop_proof' : 'token_expired');
    }
    const rows = await objectRows(owner.id);
    expect(rows.sessions[0]).toMatchObject({ gen: 1, revoked_at: null });
    expect(rows.events.map((event) => [event.type, event.count])).toEqual([
      ['login', 1],
      ['proof_failed', 9],
    ]);
    const renewed = await renewBound(owner);
    expect(renewed.status).toBe(200);
  });

  it('the grace-window takeover is refused at its first step: a thief renewing 3 s before the owner, ten times', async () => {
    const owner = await boundUser();
    const thief = await newKey();
    for (let round = 0; round < 10; round++) {
      testClock.advance(297_000);
      // The thief renews first, with the owner's current token...
      await expectProblem(await renewBound(owner, thief), 401, 'invalid_dpop_proof');
      testClock.advance(3000);
      // ...and the owner, 3 s later, simply renews: nobody was handed the owner's token.
      const response = await renewBound(owner);
      expect(response.status, `round ${round}`).toBe(200);
      owner.token = (await response.json()) as TokenBody;
    }
    expect(claimsOf(owner.token.access_token).gen).toBe(11);
    const rows = await objectRows(owner.id);
    expect(rows.events.filter((event) => event.type === 'proof_failed').map((event) => event.count)).toEqual([10]);
    expect(rows.events.some((event) => event.type === 'reuse_detected')).toBe(false);
  });

  it('a replayed proof is refused, also after the user object was evicted, and revokes nothing', async () => {
    const owner = await boundUser();
    const path = '/auth/renew';
    const headers = {
      authorization: `DPoP ${owner.token.access_token}`,
      dpop: await proofFor(owner.key, 'POST', path, owner.token.access_token),
    };
    expect((await direct(path, { method: 'POST', headers })).status).toBe(200);
    await evictUserObjects();
    testClock.advance(2000);
    // Within the grace window, the same token would get the current token again: but not with a used proof.
    await expectProblem(await direct(path, { method: 'POST', headers }), 401, 'invalid_dpop_proof');
    const rows = await objectRows(owner.id);
    expect(rows.sessions[0]).toMatchObject({ gen: 2, revoked_at: null });
    testClock.advance(GRACE_MS);
  });
});

describe('Security: every refused proof of the corpus, against POST /auth/renew of a real bound session', () => {
  let keys: ProofKeys;
  const sessions = new Map<string, { id: string; token: string }>();

  beforeAll(async () => {
    keys = await makeProofKeys();
    for (const pair of [keys.p256, keys.ed25519]) {
      const email = uniqueEmail('corpus');
      const { id } = await register(email);
      const signer = { privateKey: pair.privateKey, jwk: pair.publicJwk } as unknown as ProofSigner;
      const proof = await makeProofWith(signer, pair.publicJwk.kty === 'OKP' ? 'EdDSA' : 'ES256');
      const response = await direct('/auth/login', { method: 'POST', headers: { dpop: proof }, json: { email, password: PASSWORD } });
      expect(response.status, await response.clone().text()).toBe(200);
      sessions.set(pair.jkt, { id, token: ((await response.json()) as TokenBody).access_token });
    }
  });

  async function makeProofWith(signer: ProofSigner, alg: string): Promise<string> {
    const { SignJWT } = await import('jose');
    return new SignJWT({ jti: crypto.randomUUID(), htm: 'POST', htu: `${ORIGIN}/auth/login` })
      .setProtectedHeader({ typ: 'dpop+jwt', alg, jwk: signer.jwk })
      .setIssuedAt(Math.floor(now() / 1000))
      .sign(signer.privateKey);
  }

  const refused = proofCorpus.refused.filter((testCase) => testCase.replay !== true && testCase.token !== 'unbound');

  it.each(refused.map((testCase) => [testCase.name, testCase] as const))('%s', async (_name, testCase) => {
    testClock.set(Math.floor(Date.now() / 1000) * 1000);
    const unbound = { token: 'unused', id: '' };
    const materialized = await materialize(
      testCase,
      keys,
      {
        boundTo: (jkt) => (sessions.get(jkt) ?? unbound).token,
        unbound: unbound.token,
        other: unbound.token,
      },
      Math.floor(now() / 1000),
    );
    await expectProblem(await sendCase(materialized), 401, testCase.code ?? 'invalid_dpop_proof');
  });

  it('left both sessions untouched: generation 1, not revoked, the refusals logged as one event', async () => {
    for (const { id } of sessions.values()) {
      const rows = await objectRows(id);
      expect(rows.sessions[0]).toMatchObject({ gen: 1, revoked_at: null });
      expect(rows.events.filter((event) => event.type !== 'login' && event.type !== 'proof_failed')).toEqual([]);
    }
    const p256 = await objectRows((sessions.get(keys.p256.jkt) as { id: string }).id);
    expect(p256.events.map((event) => event.type)).toEqual(['login', 'proof_failed']);
  });

  it('and the corpus request itself, with a valid proof, renews: the refusals were for what each case changed', async () => {
    testClock.set(Math.floor(Date.now() / 1000) * 1000);
    const [valid] = proofCorpus.accepted.filter((testCase) => testCase.builder === undefined && testCase.authorization === undefined);
    const materialized = await materialize(
      valid as (typeof proofCorpus.accepted)[number],
      keys,
      { boundTo: (jkt) => (sessions.get(jkt) as { token: string }).token, unbound: '', other: '' },
      Math.floor(now() / 1000),
    );
    expect((await sendCase(materialized)).status).toBe(200);
  });

  /** The case's request, to the corpus's URL (its proofs name it as `htu`), through the Worker. */
  async function sendCase(materialized: Awaited<ReturnType<typeof materialize>>): Promise<Response> {
    const headers = new Headers({ origin: 'http://localhost:8787' });
    // Over https the cookie carries the __Host- prefix.
    if (materialized.presentedAs === 'cookie') headers.set('cookie', `__Host-latchkey_at=${materialized.token}`);
    else headers.set('authorization', `${materialized.presentedAs} ${materialized.token}`);
    for (const proof of materialized.dpop) headers.append('dpop', proof);
    const ctx = createExecutionContext();
    const response = await app.fetch(new Request(proofCorpus.request.url, { method: proofCorpus.request.method, headers }), env, ctx);
    await waitOnExecutionContext(ctx);
    return response;
  }
});
