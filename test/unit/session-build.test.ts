import { describe, expect, it } from 'vitest';
import { currentGeneration, newSession, rotatedSession } from '../../src/sessions/build';
import { sessionTokenClaims } from '../../src/sessions/claims';
import { decideRenewal, type SessionRecord } from '../../src/sessions/decide';

const TTL_SECONDS = 300;
const LOGIN = 1_800_000_000_250;
const config = { issuer: 'https://auth.example', audience: 'https://api.example', clientId: 'web' };
const policy = { renewWindowMs: 60_000, sessionMaxAgeMs: 86_400_000, reuseGraceMs: 10_000 };

function opened(dpopJkt: string | null = null): SessionRecord {
  return newSession({ id: 's1', userId: 'u1', client: 'cli', dpopJkt, at: LOGIN, accessTokenTtlSeconds: TTL_SECONDS });
}

describe('newSession', () => {
  it('is generation 1, minted at the login instant, expiring a TTL after its whole second, unrevoked and bound only to the login key', () => {
    expect(opened('key-a')).toEqual({
      id: 's1',
      userId: 'u1',
      client: 'cli',
      createdAt: LOGIN,
      gen: 1,
      genMintedAt: LOGIN,
      genExpiresAt: Math.floor(LOGIN / 1000) + TTL_SECONDS,
      revokedAt: null,
      dpopJkt: 'key-a',
      dbscJkt: null,
    });
  });
});

describe('rotatedSession', () => {
  it("is the decision's next generation, minted at the renewal's instant; login instant and bindings kept", () => {
    const session = { ...opened('key-a'), dbscJkt: 'browser-key' };
    const at = LOGIN + 200_777;
    const decision = decideRenewal(currentGeneration(session), session, { revokedBefore: 0, lastLoginAt: LOGIN }, at, policy, {
      kind: 'dbsc',
      jkt: 'browser-key',
    });
    if (decision.kind !== 'rotate') throw new Error(`expected rotate, got ${decision.kind}`);
    expect(rotatedSession(decision, at, TTL_SECONDS)).toEqual({
      ...session,
      gen: 2,
      genMintedAt: at,
      genExpiresAt: Math.floor(at / 1000) + TTL_SECONDS,
    });
  });
});

describe('currentGeneration', () => {
  it("is the session's newest token: its generation, the whole second it was minted in, its exp", () => {
    expect(currentGeneration(opened())).toEqual({ gen: 1, iat: Math.floor(LOGIN / 1000), exp: Math.floor(LOGIN / 1000) + TTL_SECONDS });
  });
});

describe('sessionTokenClaims', () => {
  it('carries the generation, the bound key, and email_verified as of the generation\'s mint', () => {
    const session = opened('key-a');
    expect(sessionTokenClaims(session, null, config)).toEqual({
      iss: config.issuer,
      aud: config.audience,
      sub: 'u1',
      client_id: 'web',
      sid: 's1',
      gen: 1,
      iat: Math.floor(LOGIN / 1000),
      exp: session.genExpiresAt,
      jti: 's1.1',
      cnf: { jkt: 'key-a' },
      email_verified: false,
    });
    expect(sessionTokenClaims(session, LOGIN, config).email_verified).toBe(true);
    // Verified after this generation was minted: its token, answered again, stays the same.
    expect(sessionTokenClaims(session, LOGIN + 1, config).email_verified).toBe(false);
    expect(sessionTokenClaims(opened(), null, config)).not.toHaveProperty('cnf');
  });
});
