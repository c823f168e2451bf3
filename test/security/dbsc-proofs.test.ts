/**
 * Security: every DBSC proof in dbsc-proofs.json, by name, checked as latchkey checks one: the
 * `Secure-Session-Response` field read, the proof verified (src/dbsc/proof.ts) with the key its
 * use calls for, then its challenge judged by the rule of src/dbsc/challenges.ts and used up. (The
 * same checks through the user's object and its storage: test/worker/dbsc-sessions.test.ts.) Each refused case
 * must be refused for the reason it names and leave every challenge where it was; each accepted
 * case must use up exactly the challenge it signs, and yield the key and thumbprint to bind.
 */
import { calculateJwkThumbprint } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DbscChallenge, judgeChallenge } from '../../src/dbsc/challenges';
import { readProofField } from '../../src/dbsc/headers';
import { verifyDbscProof } from '../../src/dbsc/proof';
import { type DbscKeys, type DbscProofCase, dbscCorpus, type MaterializedDbscCase, makeDbscKeys, materialize, SESSION_A } from '../support/dbsc-recipes';

/** ACCESS_TOKEN_TTL for the lifetimes of challenges sent ahead. */
const TTL_SECONDS = 300;

let keys: DbscKeys;

beforeAll(async () => {
  keys = await makeDbscKeys();
});

type Verdict = { ok: true; jkt: string; key: unknown } | { ok: false; reason: string };

/** The live challenges of the case's user, judged and used up as the user's object does. */
class Challenges {
  constructor(
    public live: DbscChallenge[],
    private readonly nowMs: number,
  ) {}

  take(sessionId: string, value: string): string {
    const found = this.live.find((challenge) => challenge.value === value);
    const verdict = judgeChallenge(found, sessionId, this.nowMs);
    if (verdict === 'ok') this.live = this.live.filter((challenge) => challenge !== found);
    return verdict;
  }
}

/** One request checked against `store`, as the registration and refresh routes check it. */
async function judge(request: Request, materialized: MaterializedDbscCase, testCase: DbscProofCase, store: Challenges): Promise<Verdict> {
  const field = readProofField(request);
  if (field.kind !== 'one') return { ok: false, reason: field.kind };
  const { registered } = materialized;
  if (testCase.use === 'refresh' && registered === undefined) throw new Error('a refresh case materialized without a registered key');
  const verified =
    testCase.use === 'registration' || registered === undefined
      ? await verifyDbscProof(field.value, { use: 'registration', nowMs: materialized.nowMs })
      : await verifyDbscProof(field.value, { use: 'refresh', key: registered, nowMs: materialized.nowMs });
  if (!verified.ok) return { ok: false, reason: verified.reason };
  const verdict = store.take(SESSION_A, verified.jti);
  if (verdict !== 'ok') return { ok: false, reason: verdict };
  return { ok: true, jkt: verified.jkt, key: verified.key };
}

async function setUp(testCase: DbscProofCase) {
  const nowMs = Date.now();
  const materialized = await materialize(testCase, keys, nowMs, TTL_SECONDS);
  const store = new Challenges([...materialized.live], nowMs);
  return { materialized, store };
}

describe('Security: DBSC proofs (dbsc-proofs.json)', () => {
  it('holds at least 70 refused and 10 accepted cases, uniquely named, each refusal with a reason', () => {
    const all = [...dbscCorpus.refused, ...dbscCorpus.accepted];
    expect(dbscCorpus.refused.length).toBeGreaterThanOrEqual(70);
    expect(dbscCorpus.accepted.length).toBeGreaterThanOrEqual(10);
    expect(new Set(all.map((c) => c.name)).size).toBe(all.length);
    for (const c of dbscCorpus.refused) expect(c.expect, c.name).toMatch(/^[a-z_]+$/);
    for (const c of dbscCorpus.accepted) expect(c.expect, c.name).toBeUndefined();
  });

  describe('refused for the reason named, with every challenge left where it was', () => {
    it.each(dbscCorpus.refused)('$name', async (testCase) => {
      const { materialized, store } = await setUp(testCase);
      if (testCase.replay) expect((await judge(materialized.request, materialized, testCase, store)).ok).toBe(true);
      const before: DbscChallenge[] = [...store.live];
      const verdict = await judge(testCase.replay ? materialized.again() : materialized.request, materialized, testCase, store);
      expect(verdict).toEqual({ ok: false, reason: testCase.expect });
      expect(store.live).toEqual(before);
    });
  });

  describe('accepted, using up exactly the challenge signed', () => {
    it.each(dbscCorpus.accepted)('$name', async (testCase) => {
      const { materialized, store } = await setUp(testCase);
      const verdict = await judge(materialized.request, materialized, testCase, store);
      expect(verdict.ok, JSON.stringify(verdict)).toBe(true);
      if (!verdict.ok) return;
      expect(store.live).toEqual(materialized.live.filter((challenge) => challenge !== materialized.signed));
      const expectedKey = testCase.use === 'refresh' ? materialized.registered : verdict.key;
      expect(verdict.key).toEqual(expectedKey);
      const { jwk } = verdict.key as { jwk: Record<string, string> };
      // Only the RFC 7638 required members are kept: kid, use and alg are dropped.
      expect(Object.keys(jwk).sort()).toEqual(jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : ['e', 'kty', 'n']);
      expect(verdict.jkt).toBe(await calculateJwkThumbprint(jwk));
    });
  });

  it('binds the key in the header on registration: an RS256 session keeps its RSA key', async () => {
    const testCase = dbscCorpus.accepted.find((c) => c.name === 'a registration, RS256') as DbscProofCase;
    const { materialized, store } = await setUp(testCase);
    const verdict = await judge(materialized.request, materialized, testCase, store);
    expect(verdict).toMatchObject({ ok: true, key: { alg: 'RS256', jwk: { kty: 'RSA', n: keys.rsa.publicJwk.n, e: keys.rsa.publicJwk.e } } });
  });
});
