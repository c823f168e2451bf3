/**
 * Property-based tests of the pure renewal decision against a reference model written from
 * PROTOCOL.md's text, and of the protocol's invariants over sequences of decisions.
 *
 * The reference is deliberately phrased differently from src/sessions/decide.ts: it reasons about
 * the interval in which a presented token can have been minted (what its `iat` second and the
 * session's records allow), where the implementation compares seconds directly. Records are
 * generated consistent with what the service writes (a session's tokens are minted after its
 * login, `last_login_at` is at or after every login), with instants clustered around every
 * threshold so that off-by-one errors at the boundaries are what the runs look for.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decideRenewal,
  type TokenGeneration,
  type RenewalDecision,
  type RenewalPolicy,
  type SessionRecord,
  type UserInstants,
} from '../../src/sessions/decide';

const SECOND = 1000;
const DAY = 86_400_000;
const EPOCH = 1_800_000_000_000;

interface Scenario {
  token: TokenGeneration;
  session: SessionRecord | null;
  user: UserInstants | null;
  nowMs: number;
  policy: RenewalPolicy;
  ttlSeconds: number;
}

// ---------------------------------------------------------------------------------------------
// The reference model: PROTOCOL.md's table, rules 2 to 8, read literally.

/** The instants at which the presented token can have been minted, given what the records say. */
function latestMint(token: TokenGeneration, session: SessionRecord): number {
  // A token's iat is the floor of its mint instant; the session's first token was minted at its
  // login, and a superseded one before the current generation's mint (the user's clock hands out
  // each instant once).
  if (token.gen === 1) return session.createdAt;
  return Math.min(token.iat * SECOND + 999, session.genMintedAt - 1);
}

function referenceDecision(scenario: Scenario): RenewalDecision {
  const { token, session, user, nowMs, policy } = scenario;
  // Rule 2: expired longer ago than RENEW_WINDOW, measured from exp without leeway.
  if (nowMs > token.exp * SECOND + policy.renewWindowMs) return { kind: 'inactive', session: null };
  // Rule 3: unknown or revoked session, or a session whose login is at or before revoked_before.
  if (session === null || user === null) return { kind: 'revoked', session: null };
  if (session.revokedAt !== null) return { kind: 'revoked', session: null };
  if (session.createdAt <= user.revokedBefore) return { kind: 'revoked', session: null };
  // Rule 4: absolute lifetime since login.
  if (nowMs > session.createdAt + policy.sessionMaxAgeMs) return { kind: 'expired', session };
  // Rule 5: the newest token.
  if (token.gen === session.gen) return { kind: 'rotate', session, nextGen: session.gen + 1 };
  // Rule 6: the previous one, while the current one is younger than REUSE_GRACE.
  if (token.gen + 1 === session.gen && nowMs < session.genMintedAt + policy.reuseGraceMs) return { kind: 'grace', session };
  // Rule 7: superseded. "User" scope unless the token was certainly minted before the last login,
  // as precisely as the records and `iat` place it; anything less certain, toward safety, is "user".
  if (token.gen < session.gen) {
    return { kind: 'reuse', session, scope: latestMint(token, session) < user.lastLoginAt ? 'session' : 'user' };
  }
  // Rule 8.
  return { kind: 'mismatch', session };
}

// ---------------------------------------------------------------------------------------------
// Generators

/** An offset that is often exactly on, or one millisecond either side of, one of `marks`. */
function nearMarks(marks: number[], spread: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.constantFrom(...marks).chain((mark) => fc.integer({ min: -2, max: 2 }).map((delta) => mark + delta)),
    fc.integer({ min: 0, max: spread }),
  );
}

const policyArb = fc
  .record({
    ttlSeconds: fc.constantFrom(1, 3, 300),
    renewWindowMs: fc.constantFrom(0, 2 * SECOND, 60 * SECOND, 14 * DAY),
    reuseGraceMs: fc.constantFrom(0, SECOND, 10 * SECOND),
    extraAgeMs: fc.constantFrom(0, 30 * SECOND, 30 * DAY),
  })
  .map(({ ttlSeconds, renewWindowMs, reuseGraceMs, extraAgeMs }) => ({
    ttlSeconds,
    policy: { renewWindowMs, reuseGraceMs, sessionMaxAgeMs: ttlSeconds * SECOND + extraAgeMs },
  }));

/** A consistent (session, user, token, now) as the service could see them. */
const scenarioArb: fc.Arbitrary<Scenario> = policyArb.chain(({ ttlSeconds, policy }) =>
  fc
    .record({
      loginMs: fc.integer({ min: 0, max: 999 }).map((ms) => EPOCH + ms),
      sessionGen: fc.integer({ min: 1, max: 5 }),
      mintAfterLogin: nearMarks([0, SECOND, policy.reuseGraceMs, policy.sessionMaxAgeMs], 40 * DAY),
      tokenGenDelta: fc.integer({ min: -4, max: 2 }),
      tokenIatPick: fc.double({ min: 0, max: 1, noNaN: true }),
      lastLoginAfter: fc.oneof(
        { weight: 3, arbitrary: fc.constant(0) },
        { weight: 2, arbitrary: nearMarks([0, SECOND, 2 * SECOND], 40 * DAY) },
      ),
      revokedBefore: fc.oneof(
        { weight: 3, arbitrary: fc.constant('none' as const) },
        { weight: 1, arbitrary: nearMarks([SECOND], 2 * SECOND).map((d) => d - SECOND) },
      ),
      revokedAt: fc.oneof(
        { weight: 4, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 * DAY }) },
      ),
      nowAfterMint: nearMarks(
        [0, policy.reuseGraceMs, ttlSeconds * SECOND + policy.renewWindowMs, policy.sessionMaxAgeMs],
        45 * DAY,
      ),
      sessionMissing: fc.integer({ min: 0, max: 19 }).map((n) => n === 0),
    })
    .map((r): Scenario => {
      const genMintedAt = r.sessionGen === 1 ? r.loginMs : r.loginMs + Math.max(1, r.mintAfterLogin);
      const session: SessionRecord = {
        id: 's',
        userId: 'u',
        client: null,
        createdAt: r.loginMs,
        gen: r.sessionGen,
        genMintedAt,
        genExpiresAt: Math.floor(genMintedAt / SECOND) + ttlSeconds,
        revokedAt: r.revokedAt === null ? null : r.loginMs + r.revokedAt,
        dpopJkt: null,
        dbscJkt: null,
      };
      const tokenGen = Math.max(1, r.sessionGen + r.tokenGenDelta);
      const loginSecond = Math.floor(r.loginMs / SECOND);
      const mintSecond = Math.floor(genMintedAt / SECOND);
      let iat: number;
      if (tokenGen === r.sessionGen) iat = mintSecond;
      else if (tokenGen === 1) iat = loginSecond;
      else if (tokenGen < r.sessionGen) iat = loginSecond + Math.floor(r.tokenIatPick * (mintSecond - loginSecond));
      else iat = mintSecond + Math.floor(r.tokenIatPick * 5);
      const lastLoginAt = Math.max(r.loginMs, r.loginMs + r.lastLoginAfter);
      const user: UserInstants = {
        lastLoginAt,
        revokedBefore: r.revokedBefore === 'none' ? 0 : r.loginMs + r.revokedBefore,
      };
      const token = { gen: tokenGen, iat, exp: iat + ttlSeconds };
      return {
        token,
        session: r.sessionMissing ? null : session,
        user,
        // The user's clock reads after every instant in the records.
        nowMs: Math.max(genMintedAt + r.nowAfterMint, lastLoginAt + 1, user.revokedBefore + 1),
        policy,
        ttlSeconds,
      };
    }),
);

const RUNS = { numRuns: 3000 };

// ---------------------------------------------------------------------------------------------

describe('decideRenewal against the reference model of PROTOCOL.md', () => {
  it('agrees with the reference on every generated scenario', () => {
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        const { token, session, user, nowMs, policy } = scenario;
        expect(decideRenewal(token, session, user, nowMs, policy)).toEqual(referenceDecision(scenario));
      }),
      RUNS,
    );
  });

  it('reaches every kind of decision (the generator covers the whole table)', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        const decision = decideRenewal(scenario.token, scenario.session, scenario.user, scenario.nowMs, scenario.policy);
        seen.add(decision.kind === 'reuse' ? `reuse:${decision.scope}` : decision.kind);
      }),
      RUNS,
    );
    expect([...seen].sort()).toEqual(
      ['expired', 'grace', 'inactive', 'mismatch', 'reuse:session', 'reuse:user', 'revoked', 'rotate'].sort(),
    );
  });
});

describe('decideRenewal: invariants', () => {
  it('a revoked session never renews, whatever token is presented and whenever', () => {
    fc.assert(
      fc.property(scenarioArb, fc.boolean(), (scenario, byMark) => {
        const { session, user } = scenario;
        if (!session || !user) return;
        const revoked = byMark
          ? { session: { ...session, revokedAt: session.createdAt + 1 }, user }
          : { session, user: { ...user, revokedBefore: Math.max(user.revokedBefore, session.createdAt) } };
        const decision = decideRenewal(scenario.token, revoked.session, revoked.user, scenario.nowMs, scenario.policy);
        expect(['rotate', 'grace']).not.toContain(decision.kind);
      }),
      RUNS,
    );
  });

  it('concurrent renewals of one token never revoke: after the first rotates, every other within REUSE_GRACE gets grace', () => {
    fc.assert(
      fc.property(
        scenarioArb,
        fc.array(fc.integer({ min: 0, max: 10 * SECOND - 1 }), { minLength: 1, maxLength: 8 }),
        (scenario, laterOffsets) => {
          const { session, user, policy, ttlSeconds } = scenario;
          if (!session || !user) return;
          const current = { gen: session.gen, iat: Math.floor(session.genMintedAt / SECOND), exp: session.genExpiresAt };
          const first = decideRenewal(current, session, user, scenario.nowMs, policy);
          if (first.kind !== 'rotate') return;
          const next: SessionRecord = {
            ...session,
            gen: first.nextGen,
            genMintedAt: scenario.nowMs,
            genExpiresAt: Math.floor(scenario.nowMs / SECOND) + ttlSeconds,
          };
          for (const offset of laterOffsets.filter((ms) => ms < policy.reuseGraceMs)) {
            const again = decideRenewal(current, next, user, scenario.nowMs + offset, policy);
            // The idle and absolute limits may still end the session; theft detection must not.
            expect(again.kind).not.toBe('reuse');
            const at = scenario.nowMs + offset;
            if (at <= session.createdAt + policy.sessionMaxAgeMs && at <= current.exp * SECOND + policy.renewWindowMs) {
              expect(again).toEqual({ kind: 'grace', session: next });
            }
          }
        },
      ),
      RUNS,
    );
  });

  it('a replayed token minted in a second before the last login never revokes the other sessions', () => {
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        const { token, session, user, nowMs, policy } = scenario;
        if (!session || !user || token.iat >= Math.floor(user.lastLoginAt / SECOND)) return;
        const decision = decideRenewal(token, session, user, nowMs, policy);
        expect(decision).not.toEqual({ kind: 'reuse', session, scope: 'user' });
      }),
      RUNS,
    );
  });

  it('over any sequence of presentations, each generation is minted at most once', () => {
    const step = fc.record({ pick: fc.nat(), advanceMs: fc.constantFrom(0, 1, 999, 5 * SECOND, 11 * SECOND, 400 * SECOND) });
    fc.assert(
      fc.property(policyArb, fc.array(step, { maxLength: 40 }), ({ ttlSeconds, policy }, steps) => {
        let nowMs = EPOCH + 500;
        let session: SessionRecord = {
          id: 's',
          userId: 'u',
          client: null,
          createdAt: nowMs,
          gen: 1,
          genMintedAt: nowMs,
          genExpiresAt: Math.floor(nowMs / SECOND) + ttlSeconds,
          revokedAt: null,
          dpopJkt: null,
          dbscJkt: null,
        };
        const user: UserInstants = { revokedBefore: 0, lastLoginAt: nowMs };
        const minted: TokenGeneration[] = [{ gen: 1, iat: Math.floor(nowMs / SECOND), exp: session.genExpiresAt }];
        for (const { pick, advanceMs } of steps) {
          nowMs += advanceMs + 1;
          const token = minted[pick % minted.length] as TokenGeneration;
          const decision = decideRenewal(token, session, user, nowMs, policy);
          if (session.revokedAt !== null) expect(['rotate', 'grace']).not.toContain(decision.kind);
          if (decision.kind === 'rotate') {
            expect(minted.some((t) => t.gen === decision.nextGen)).toBe(false);
            session = { ...session, gen: decision.nextGen, genMintedAt: nowMs, genExpiresAt: Math.floor(nowMs / SECOND) + ttlSeconds };
            minted.push({ gen: session.gen, iat: Math.floor(nowMs / SECOND), exp: session.genExpiresAt });
          } else if (decision.kind === 'reuse') {
            session = { ...session, revokedAt: nowMs };
          }
        }
        expect(minted.map((t) => t.gen)).toEqual(minted.map((_, index) => index + 1));
      }),
      { numRuns: 1000 },
    );
  });
});
