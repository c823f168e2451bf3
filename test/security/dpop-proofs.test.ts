/**
 * Security: every DPoP proof in dpop-proofs.json, by name. Each refused case must be refused for
 * the reason it names, and each accepted case accepted: first by the proof check itself
 * (packages/verify/src/dpop/, with a replay store as its callers keep one), then through `@latchkey/verify` as a
 * resource server runs it, where every refusal must be a 401 with a DPoP challenge.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createVerifier, failureResponse, type LatchkeyVerifier } from '@latchkey/verify';
import { testClock } from '../../src/clock';
import { checkPossession, readProofHeader } from '../../packages/verify/src/dpop/possession';
import { MemoryReplayCache } from '../../packages/verify/src/dpop/replay';
import { AUDIENCE, ISSUER, makeKey, sign, type TestKey } from '../support/verify-fixtures';
import { makeProofKeys, materialize, type ProofCase, proofCorpus, type ProofKeys, type ProofTokens, requestOf } from '../support/dpop-recipes';

let keys: ProofKeys;
let issuerKey: TestKey;
let tokens: ProofTokens;
let verifier: LatchkeyVerifier;

beforeAll(async () => {
  keys = await makeProofKeys();
  issuerKey = await makeKey();
});

/** The server's clock during a test: frozen on a whole second near the real one, since the dpop package dates its proofs by Date.now(). */
let frozen = 0;

beforeEach(async () => {
  frozen = Math.floor(Date.now() / 1000) * 1000;
  testClock.set(frozen);
  const bound = new Map<string, string>();
  for (const jkt of [keys.p256.jkt, keys.ed25519.jkt]) bound.set(jkt, await sign(issuerKey, { cnf: { jkt } }));
  tokens = {
    boundTo: (jkt) => bound.get(jkt) as string,
    unbound: await sign(issuerKey, { sid: 'session-unbound' }),
    other: await sign(issuerKey, { sid: 'session-other' }),
  };
  verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: { jwks: { keys: [issuerKey.publicJwk] } } });
});

afterEach(() => {
  testClock.reset();
});

/** The proof check as latchkey's routes and `@latchkey/verify` run it: possession, then the replay store. */
async function judge(request: Request, materialized: Awaited<ReturnType<typeof materialize>>, replay: MemoryReplayCache) {
  const possession = await checkPossession({
    presentedAs: materialized.presentedAs,
    token: materialized.token,
    boundJkt: materialized.boundJkt,
    proof: readProofHeader(request),
    method: request.method,
    url: request.url,
    nowMs: frozen,
  });
  if (!possession.ok) return { ok: false, code: possession.code, reason: possession.reason };
  if (possession.proof && !(await replay.useOnce(possession.proof.jti, possession.proof.usableUntilMs, possession.proof.jkt))) {
    return { ok: false, code: 'invalid_dpop_proof', reason: 'replay' };
  }
  return { ok: true };
}

async function materializeAt(testCase: ProofCase) {
  return materialize(testCase, keys, tokens, frozen / 1000);
}

describe('Security: DPoP proofs (dpop-proofs.json)', () => {
  it('holds at least 70 refused and 15 accepted cases, uniquely named, each refusal with a reason', () => {
    const all = [...proofCorpus.refused, ...proofCorpus.accepted];
    expect(proofCorpus.refused.length).toBeGreaterThanOrEqual(70);
    expect(proofCorpus.accepted.length).toBeGreaterThanOrEqual(15);
    expect(new Set(all.map((c) => c.name)).size).toBe(all.length);
    for (const c of proofCorpus.refused) expect(c.expect, c.name).toMatch(/^[a-z]+$/);
    for (const c of proofCorpus.accepted) expect(c.expect, c.name).toBeUndefined();
  });

  describe('refused by the proof check, for the reason named', () => {
    it.each(proofCorpus.refused)('$name', async (testCase) => {
      const replay = new MemoryReplayCache();
      const materialized = await materializeAt(testCase);
      if (testCase.replay) expect(await judge(requestOf(materialized), materialized, replay)).toEqual({ ok: true });
      const verdict = await judge(requestOf(materialized), materialized, replay);
      expect(verdict).toEqual({ ok: false, code: testCase.code ?? 'invalid_dpop_proof', reason: testCase.expect });
    });
  });

  describe('accepted by the proof check', () => {
    it.each(proofCorpus.accepted)('$name', async (testCase) => {
      const materialized = await materializeAt(testCase);
      expect(await judge(requestOf(materialized), materialized, new MemoryReplayCache())).toEqual({ ok: true });
    });
  });

  describe('through @latchkey/verify, as a resource server runs it', () => {
    // @latchkey/verify reads the Authorization header; cookie mode is latchkey's own.
    const headerCases = (cases: ProofCase[]) => cases.filter((c) => c.authorization !== 'cookie');

    it.each(headerCases(proofCorpus.refused))('refuses $name', async (testCase) => {
      const materialized = await materializeAt(testCase);
      if (testCase.replay) expect((await verifier.verifyRequest(requestOf(materialized))).ok).toBe(true);
      const outcome = await verifier.verifyRequest(requestOf(materialized));
      const code = testCase.code ?? 'invalid_dpop_proof';
      expect(outcome).toEqual({ ok: false, code, scheme: 'DPoP' });
      if (outcome.ok) return;
      const response = failureResponse(outcome);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(
        code === 'invalid_dpop_proof' ? /^DPoP error="invalid_dpop_proof", algs="ES256 EdDSA Ed25519"$/ : /^DPoP error="invalid_token"/,
      );
      expect(await response.json()).toMatchObject({ status: 401, code });
    });

    it.each(headerCases(proofCorpus.accepted))('accepts $name', async (testCase) => {
      const materialized = await materializeAt(testCase);
      const outcome = await verifier.verifyRequest(requestOf(materialized));
      expect(outcome.ok, JSON.stringify(outcome)).toBe(true);
    });
  });
});
