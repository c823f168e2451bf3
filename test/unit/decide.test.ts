import { describe, expect, it } from 'vitest';
import {
  decideRenewal,
  type TokenGeneration,
  type RenewalPolicy,
  type SessionRecord,
  sessionLiveness,
  type UserInstants,
} from '../../src/sessions/decide';

const policy: RenewalPolicy = { renewWindowMs: 14 * 86_400_000, sessionMaxAgeMs: 30 * 86_400_000, reuseGraceMs: 10_000 };
const LOGIN = 1_800_000_000_123; // ms
const TTL = 300;

/** A session logged in at LOGIN, now at generation `gen`, minted `mintedAgoMs` before `now`. */
function scenario(gen: number, mintedAt: number) {
  const session: SessionRecord = {
    id: 's1',
    userId: 'u1',
    client: null,
    createdAt: LOGIN,
    gen,
    genMintedAt: mintedAt,
    genExpiresAt: Math.floor(mintedAt / 1000) + TTL,
    revokedAt: null,
    dpopJkt: null,
    dbscJkt: null,
  };
  const user: UserInstants = { revokedBefore: 0, lastLoginAt: LOGIN };
  return { session, user };
}

function tokenOf(gen: number, mintedAtMs: number): TokenGeneration {
  const iat = Math.floor(mintedAtMs / 1000);
  return { gen, iat, exp: iat + TTL };
}

describe('decideRenewal: the decision table of PROTOCOL.md', () => {
  const mintedAt = LOGIN + 600_000;
  const { session, user } = scenario(3, mintedAt);

  it('rule 2: a token expired longer ago than RENEW_WINDOW is inactive', () => {
    const token = tokenOf(3, mintedAt);
    const justInside = token.exp * 1000 + policy.renewWindowMs;
    expect(decideRenewal(token, session, user, justInside, policy)).toEqual({ kind: 'rotate', session, nextGen: 4 });
    expect(decideRenewal(token, session, user, justInside + 1, policy)).toEqual({ kind: 'inactive', session: null });
  });

  it('rule 2 comes before everything stored: even an unknown session answers inactive', () => {
    const token = tokenOf(3, mintedAt);
    expect(decideRenewal(token, null, null, token.exp * 1000 + policy.renewWindowMs + 1, policy)).toEqual({
      kind: 'inactive',
      session: null,
    });
  });

  it('rule 3: an unknown session is revoked', () => {
    expect(decideRenewal(tokenOf(3, mintedAt), null, user, mintedAt + 1000, policy)).toEqual({ kind: 'revoked', session: null });
  });

  it('rule 3: a session marked revoked is revoked', () => {
    const revoked = { ...session, revokedAt: mintedAt + 10 };
    expect(decideRenewal(tokenOf(3, mintedAt), revoked, user, mintedAt + 1000, policy)).toEqual({ kind: 'revoked', session: null });
  });

  it('rule 3: a session logged in at or before revoked_before is revoked, to the millisecond', () => {
    const token = tokenOf(3, mintedAt);
    expect(decideRenewal(token, session, { ...user, revokedBefore: LOGIN }, mintedAt + 1, policy)).toEqual({
      kind: 'revoked',
      session: null,
    });
    expect(decideRenewal(token, session, { ...user, revokedBefore: LOGIN - 1 }, mintedAt + 1, policy)).toEqual({
      kind: 'rotate',
      session,
      nextGen: 4,
    });
  });

  it('rule 3: a token whose whole iat second lies at or before revoked_before is revoked', () => {
    const token = tokenOf(3, mintedAt);
    const revokedBefore = token.iat * 1000 + 999;
    // The session row alone would let it through (inconsistent records): the token check catches it.
    const laterSession = { ...session, createdAt: revokedBefore + 1 };
    expect(decideRenewal(token, laterSession, { ...user, revokedBefore }, mintedAt + 5000, policy)).toEqual({
      kind: 'revoked',
      session: null,
    });
  });

  // A session renewed all along, whose newest token was minted a minute before the absolute limit.
  const lateMint = LOGIN + policy.sessionMaxAgeMs - 60_000;
  const { session: oldSession } = scenario(900, lateMint);

  it('rule 4: a session older than SESSION_MAX_AGE is expired', () => {
    const token = tokenOf(900, lateMint);
    expect(decideRenewal(token, oldSession, user, LOGIN + policy.sessionMaxAgeMs, policy).kind).toBe('rotate');
    expect(decideRenewal(token, oldSession, user, LOGIN + policy.sessionMaxAgeMs + 1, policy)).toEqual({
      kind: 'expired',
      session: oldSession,
    });
  });

  it('rule 3 comes before rule 4: a revoked and too old session answers revoked', () => {
    const revoked = { ...oldSession, revokedAt: lateMint };
    const token = tokenOf(900, lateMint);
    expect(decideRenewal(token, revoked, user, LOGIN + policy.sessionMaxAgeMs + 1, policy)).toEqual({ kind: 'revoked', session: null });
  });

  it('rule 5: the newest token of the session rotates to the next generation', () => {
    expect(decideRenewal(tokenOf(3, mintedAt), session, user, mintedAt + 200_000, policy)).toEqual({
      kind: 'rotate',
      session,
      nextGen: 4,
    });
  });

  it('rule 6: the previous generation within REUSE_GRACE answers the current generation', () => {
    const previous = tokenOf(2, mintedAt - 290_000);
    expect(decideRenewal(previous, session, user, mintedAt, policy)).toEqual({ kind: 'grace', session });
    expect(decideRenewal(previous, session, user, mintedAt + policy.reuseGraceMs - 1, policy)).toEqual({
      kind: 'grace',
      session,
    });
  });

  it('rule 7: the previous generation past REUSE_GRACE is reuse', () => {
    const previous = tokenOf(2, mintedAt - 290_000);
    expect(decideRenewal(previous, session, user, mintedAt + policy.reuseGraceMs, policy)).toEqual({
      kind: 'reuse',
      session,
      scope: 'user',
    });
  });

  it('rule 7: a generation older than the previous one is reuse even inside the grace window', () => {
    const older = tokenOf(1, LOGIN);
    expect(decideRenewal(older, session, user, mintedAt + 1, policy).kind).toBe('reuse');
  });

  it('rule 7: scope "user" when the token was minted at or after the last login', () => {
    const token = tokenOf(1, LOGIN);
    expect(decideRenewal(token, session, user, mintedAt + 60_000, policy)).toEqual({ kind: 'reuse', session, scope: 'user' });
  });

  it('rule 7: scope "session" when the token was minted before the user last typed their password', () => {
    const token = tokenOf(1, LOGIN);
    const later = { ...user, lastLoginAt: mintedAt + 30_000 };
    expect(decideRenewal(token, session, later, mintedAt + 60_000, policy)).toEqual({
      kind: 'reuse',
      session,
      scope: 'session',
    });
  });

  it('rule 7: a token the records cannot place before the last login, in its second, resolves toward safety (scope "user")', () => {
    // Generation 2 minted in the last login's second; generation 3 minted after the login.
    const lastLoginAt = Math.floor(mintedAt / 1000) * 1000 - 1000 + 500;
    const sameSecond = { gen: 2, iat: Math.floor(lastLoginAt / 1000), exp: Math.floor(lastLoginAt / 1000) + TTL };
    expect(decideRenewal(sameSecond, session, { ...user, lastLoginAt }, mintedAt + 60_000, policy)).toEqual({
      kind: 'reuse',
      session,
      scope: 'user',
    });
  });

  it('rule 7: a generation-1 token was minted at its login, so in the same second as a later login it is scope "session"', () => {
    // Logged in at x.100; the user logs in again elsewhere at x.400; the first session renewed at x.700.
    const login = Math.floor(LOGIN / 1000) * 1000 + 100;
    const first: SessionRecord = { ...session, createdAt: login, gen: 2, genMintedAt: login + 600 };
    const token = { gen: 1, iat: Math.floor(login / 1000), exp: Math.floor(login / 1000) + TTL };
    expect(decideRenewal(token, first, { ...user, lastLoginAt: login + 300 }, login + 60_000, policy)).toEqual({
      kind: 'reuse',
      session: first,
      scope: 'session',
    });
  });

  it('rule 7: a token superseded before the last login is scope "session", even within the login\'s second', () => {
    // Generation 2 minted at x.100 and superseded at x.200; the user logs in again at x.300.
    const second = Math.floor(mintedAt / 1000) * 1000;
    const renewed: SessionRecord = { ...session, gen: 3, genMintedAt: second + 200 };
    const token = { gen: 2, iat: Math.floor(second / 1000), exp: Math.floor(second / 1000) + TTL };
    expect(decideRenewal(token, renewed, { ...user, lastLoginAt: second + 300 }, second + 60_000, policy)).toEqual({
      kind: 'reuse',
      session: renewed,
      scope: 'session',
    });
  });

  it('rule 1b: a session bound to a DPoP key needs a proof by that key, before anything else, even an idle token', () => {
    const bound = { ...session, dpopJkt: 'key-a' };
    const token = tokenOf(3, mintedAt);
    expect(decideRenewal(token, bound, user, mintedAt + 1000, policy)).toEqual({ kind: 'unproven', session: bound });
    expect(decideRenewal(token, bound, user, mintedAt + 1000, policy, { kind: 'dpop', jkt: 'key-b' })).toEqual({ kind: 'unproven', session: bound });
    expect(decideRenewal(token, bound, user, mintedAt + 1000, policy, { kind: 'dbsc', jkt: 'key-a' })).toEqual({ kind: 'unproven', session: bound });
    const idle = token.exp * 1000 + policy.renewWindowMs + 1;
    expect(decideRenewal(token, bound, user, idle, policy)).toEqual({ kind: 'unproven', session: bound });
    expect(decideRenewal(token, bound, user, mintedAt + 1000, policy, { kind: 'dpop', jkt: 'key-a' })).toEqual({
      kind: 'rotate',
      session: bound,
      nextGen: 4,
    });
  });

  it('rule 1b: a superseded token with the right proof is judged by rule 7 as ever; without it, nothing is revoked', () => {
    const bound = { ...session, dpopJkt: 'key-a' };
    const old = tokenOf(1, LOGIN);
    expect(decideRenewal(old, bound, user, mintedAt + 60_000, policy).kind).toBe('unproven');
    expect(decideRenewal(old, bound, user, mintedAt + 60_000, policy, { kind: 'dpop', jkt: 'key-a' }).kind).toBe('reuse');
  });

  it('rule 1b: a session bound through DBSC mints only for a DBSC proof of its key, even when bound to a DPoP key too', () => {
    const both = { ...session, dpopJkt: 'client-key', dbscJkt: 'browser-key' };
    const token = tokenOf(3, mintedAt);
    const expired = token.exp * 1000 + 1;
    expect(decideRenewal(token, both, user, expired, policy, { kind: 'dbsc', jkt: 'browser-key' }).kind).toBe('rotate');
    expect(decideRenewal(token, both, user, expired, policy, { kind: 'dpop', jkt: 'client-key' }).kind).toBe('unproven');
    expect(decideRenewal(token, both, user, expired, policy, { kind: 'dbsc', jkt: 'client-key' }).kind).toBe('unproven');
    expect(decideRenewal(token, both, user, expired, policy).kind).toBe('unproven');
  });

  describe('rule 1a: a DBSC-bound session shown its current, unexpired token without a DBSC proof', () => {
    const bound = { ...session, dbscJkt: 'browser-key' };
    const token = tokenOf(3, mintedAt);
    const beforeExpiry = token.exp * 1000 - 1;

    it('is renewed by the browser: nothing is minted', () => {
      expect(decideRenewal(token, bound, user, beforeExpiry, policy)).toEqual({ kind: 'browser_renews', session: bound });
      expect(decideRenewal(token, { ...bound, dpopJkt: 'client-key' }, user, beforeExpiry, policy, { kind: 'dpop', jkt: 'client-key' })).toEqual({
        kind: 'browser_renews',
        session: { ...bound, dpopJkt: 'client-key' },
      });
    });

    it('answers the standing of a session that is over', () => {
      expect(decideRenewal(token, { ...bound, revokedAt: mintedAt }, user, beforeExpiry, policy).kind).toBe('revoked');
      expect(decideRenewal(token, bound, { ...user, revokedBefore: LOGIN }, beforeExpiry, policy).kind).toBe('revoked');
      const pastMaxAge = LOGIN + policy.sessionMaxAgeMs + 1;
      const late = { ...bound, genExpiresAt: Math.floor(pastMaxAge / 1000) + 10 };
      expect(decideRenewal({ ...token, exp: late.genExpiresAt }, late, user, pastMaxAge, policy).kind).toBe('expired');
    });

    it('does not cover an expired or superseded token: those need the proof', () => {
      expect(decideRenewal(token, bound, user, token.exp * 1000, policy).kind).toBe('unproven');
      const previous = { ...tokenOf(2, mintedAt - 1000), exp: token.exp };
      expect(decideRenewal(previous, bound, user, beforeExpiry, policy).kind).toBe('unproven');
    });

    it('does not apply with the DBSC proof, which renews', () => {
      expect(decideRenewal(token, bound, user, beforeExpiry, policy, { kind: 'dbsc', jkt: 'browser-key' }).kind).toBe('rotate');
    });
  });

  it('rule 8: a generation beyond the stored one is a mismatch', () => {
    expect(decideRenewal(tokenOf(4, mintedAt), session, user, mintedAt + 1000, policy)).toEqual({ kind: 'mismatch', session });
  });

  it('rule 6 never applies at generation 1: nothing precedes it', () => {
    const { session: first } = scenario(1, LOGIN);
    expect(decideRenewal({ gen: 0, iat: 0, exp: 300 }, first, user, LOGIN + 1, policy).kind).not.toBe('grace');
  });
});

describe('sessionLiveness: liveness for strict routes', () => {
  const { session, user } = scenario(2, LOGIN + 1000);

  it('is live inside every limit', () => {
    expect(sessionLiveness(session, user, LOGIN + 5000, policy)).toBe('live');
  });

  it('is inactive once the newest token expired longer ago than RENEW_WINDOW', () => {
    const idle = session.genExpiresAt * 1000 + policy.renewWindowMs + 1;
    expect(sessionLiveness({ ...session, createdAt: idle - 1000 }, user, idle, policy)).toBe('inactive');
  });

  it('is revoked, expired, in that order of precedence', () => {
    expect(sessionLiveness(session, { ...user, revokedBefore: LOGIN }, LOGIN + 5000, policy)).toBe('revoked');
    expect(sessionLiveness(session, user, LOGIN + policy.sessionMaxAgeMs + 1, policy)).toBe('expired');
  });
});
