import { env } from 'cloudflare:workers';
import { SignJWT, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { testClock } from '../../src/clock';
import { runInDurableObject } from 'cloudflare:test';
import type { SessionRecord } from '../../src/sessions/decide';
import { UserRecords } from '../../src/storage/user-records';
import { direct } from '../support/direct';
import { authorityNamespaceWith } from '../support/authority-with';
import { authorityStub, evictUserObjects, faultyD1 } from '../support/faults';
import { storedSession } from '../support/user-object';
import {
  call,
  claimsOf,
  eventsOf,
  expectProblem,
  login,
  PASSWORD,
  register,
  renew,
  renewOk,
  signedInUser,
  type TokenBody,
  uniqueEmail,
} from '../support/helpers';

const TTL_MS = 300_000;
const GRACE_MS = 10_000;
const DAY_MS = 86_400_000;

/** The session of `token` as the user's object stores it. */
function sessionRow(token: TokenBody) {
  return storedSession(claimsOf(token.access_token).sub as string, token.session_id);
}

/** A token signed with the real signing key, for records the service could never have produced. */
async function forge(claims: Record<string, unknown>): Promise<string> {
  const [signer] = JSON.parse(env.SIGNING_KEYS).keys;
  const key = await importJWK(signer, 'EdDSA');
  return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: signer.kid, typ: 'at+jwt' }).sign(key);
}

describe('the decision table, through POST /auth/renew', () => {
  it('rule 1: a token that is not a valid latchkey token is invalid_token', async () => {
    await expectProblem(await renew('not.a.token'), 401, 'invalid_token');
  });

  it('rule 2: a token expired longer ago than RENEW_WINDOW is session_inactive', async () => {
    const { token } = await signedInUser();
    testClock.advance(TTL_MS + 14 * DAY_MS + 1000);
    const response = await renew(token.access_token);
    await expectProblem(response, 401, 'session_inactive');
    expect(response.headers.get('www-authenticate')).toBe('Bearer error="invalid_token", error_description="session_inactive"');
  });

  it('rule 2: a token expired just inside RENEW_WINDOW still renews', async () => {
    const { token } = await signedInUser();
    testClock.advance(TTL_MS + 14 * DAY_MS - 5000);
    expect(claimsOf((await renewOk(token.access_token)).access_token).gen).toBe(2);
  });

  it('rule 3: a logged-out session is session_revoked', async () => {
    const { token } = await signedInUser();
    expect((await call('/auth/logout', { method: 'POST', token: token.access_token })).status).toBe(204);
    await expectProblem(await renew(token.access_token), 401, 'session_revoked');
  });

  it('rule 3: a session unknown to the records is session_revoked', async () => {
    const { id } = await register();
    const now = Math.floor(Date.now() / 1000);
    const token = await forge({
      iss: 'http://localhost:8787',
      aud: 'latchkey',
      sub: id,
      sid: crypto.randomUUID(),
      gen: 1,
      iat: now,
      exp: now + 300,
      jti: 'x.1',
    });
    await expectProblem(await renew(token), 401, 'session_revoked');
  });

  it('rule 4: a session older than SESSION_MAX_AGE is session_expired, however often it renewed', async () => {
    const { token } = await signedInUser();
    let current = token.access_token;
    for (let day = 0; day < 27; day += 9) {
      testClock.advance(9 * DAY_MS);
      current = (await renewOk(current)).access_token;
    }
    testClock.advance(3 * DAY_MS + 1000);
    await expectProblem(await renew(current), 401, 'session_expired');
  });

  it('rule 5: the newest token renews to the next generation of the same session', async () => {
    const { token } = await signedInUser();
    const next = await renewOk(token.access_token);
    expect(next.session_id).toBe(token.session_id);
    const before = claimsOf(token.access_token);
    const after = claimsOf(next.access_token);
    expect(after).toMatchObject({ gen: 2, sid: before.sid, sub: before.sub });
    expect(after.exp as number).toBe((after.iat as number) + 300);
    expect((await sessionRow(token))?.gen).toBe(2);
  });

  it('rule 5: a token that has not expired yet renews too (clients renew ahead of expiry)', async () => {
    const { token } = await signedInUser();
    testClock.advance(TTL_MS - 30_000);
    expect(claimsOf((await renewOk(token.access_token)).access_token).gen).toBe(2);
  });

  it('rule 6: the previous generation within REUSE_GRACE gets the current token again, byte for byte', async () => {
    // Frozen: `expires_in` counts whole seconds, and a running clock could cross one in between.
    testClock.set(Date.now());
    const { token } = await signedInUser();
    const second = await renewOk(token.access_token);
    testClock.advance(GRACE_MS - 1000);
    const again = await renewOk(token.access_token);
    expect(again.access_token).toBe(second.access_token);
    expect(again.expires_in).toBe(second.expires_in - 9);
    expect((await sessionRow(token))?.gen).toBe(2);
  });

  it('rule 7: the previous generation past REUSE_GRACE is token_reused and the session dies', async () => {
    const { token } = await signedInUser();
    const second = await renewOk(token.access_token);
    testClock.advance(GRACE_MS);
    await expectProblem(await renew(token.access_token), 401, 'token_reused');
    await expectProblem(await renew(second.access_token), 401, 'session_revoked');
    expect((await sessionRow(token))?.revoked_reason).toBe('reuse');
  });

  it('rule 8: a generation the records never reached is invalid_token, logged as generation_mismatch', async () => {
    const { id, token } = await signedInUser();
    const claims = claimsOf(token.access_token);
    const forged = await forge({ ...claims, gen: 7, jti: `${token.session_id}.7` });
    await expectProblem(await renew(forged), 401, 'invalid_token');
    const events = await eventsOf(token.access_token);
    expect(events[0]).toMatchObject({ type: 'generation_mismatch', session_id: token.session_id });
    expect((await sessionRow(token))?.gen).toBe(1);
    expect(id).toBe(claims.sub);
  });
});

describe('identity of a generation', () => {
  it('every token of one generation carries the same gen, iat, exp and jti, and one jti per generation', async () => {
    const { token } = await signedInUser();
    const second = await renewOk(token.access_token);
    testClock.advance(3000);
    const graceAnswer = await renewOk(token.access_token);
    const pick = (t: string) => {
      const { gen, iat, exp, jti } = claimsOf(t);
      return { gen, iat, exp, jti };
    };
    expect(pick(graceAnswer.access_token)).toEqual(pick(second.access_token));
    const third = await renewOk(second.access_token);
    expect(new Set([token, second, third].map((t) => claimsOf(t.access_token).jti)).size).toBe(3);
  });
});

describe('concurrency', () => {
  it('twenty-five concurrent renewals of one token: all succeed, one new generation, nothing revoked', async () => {
    const { token } = await signedInUser();
    const responses = await Promise.all(Array.from({ length: 25 }, () => renew(token.access_token)));
    expect(responses.map((response) => response.status)).toEqual(Array(25).fill(200));
    const tokens = await Promise.all(responses.map(async (response) => ((await response.json()) as { access_token: string }).access_token));
    expect(new Set(tokens).size).toBe(1);
    expect(claimsOf(tokens[0] as string).gen).toBe(2);
    expect(await sessionRow(token)).toMatchObject({ gen: 2, revoked_at: null });
    const events = await eventsOf(tokens[0] as string);
    expect(events.map((event) => event.type)).toEqual(['login']);
  });

  it('several clients of one user renewing interleaved and concurrently: nothing flagged', async () => {
    const email = uniqueEmail();
    await register(email);
    const clients = await Promise.all(['phone', 'laptop', 'cli'].map((label) => login(email, PASSWORD, label)));
    let tokens = clients.map((client) => client.access_token);
    for (let round = 0; round < 4; round++) {
      testClock.advance(TTL_MS + 1000);
      // Each client's renewal races the others', and each client also retries once (a lost answer).
      const answers = await Promise.all(tokens.flatMap((t) => [renewOk(t), renewOk(t)]));
      tokens = tokens.map((_, index) => (answers[index * 2] as { access_token: string }).access_token);
      for (let index = 0; index < tokens.length; index++) {
        expect(answers[index * 2 + 1]?.access_token).toBe(tokens[index]);
      }
    }
    expect(tokens.map((t) => claimsOf(t).gen)).toEqual([5, 5, 5]);
    const events = await eventsOf(tokens[0] as string);
    expect(events.filter((event) => event.type !== 'login')).toEqual([]);
  });

  it('the generation compare-and-swap refuses a second advance from the same generation, and rolls back', async () => {
    const { id, token } = await signedInUser();
    const outcome = await runInDurableObject(authorityStub(id), (_instance, state) => {
      const records = new UserRecords(state.storage.sql);
      const session = records.sessions.load(id, token.session_id) as SessionRecord;
      const next = { ...session, gen: 2, genMintedAt: session.genMintedAt + 1 };
      const attempt = () => {
        try {
          state.storage.transactionSync(() => records.sessions.advanceGeneration(next, 1));
          return true;
        } catch {
          return false;
        }
      };
      return [attempt(), attempt()];
    });
    expect(outcome).toEqual([true, false]);
    expect((await sessionRow(token))?.gen).toBe(2);
  });

  it('the compare-and-swap does not advance a revoked session', async () => {
    const { id, token } = await signedInUser();
    expect((await call('/auth/logout', { method: 'POST', token: token.access_token })).status).toBe(204);
    const advanced = await runInDurableObject(authorityStub(id), (_instance, state) => {
      const records = new UserRecords(state.storage.sql);
      const session = records.sessions.load(id, token.session_id) as SessionRecord;
      try {
        state.storage.transactionSync(() => records.sessions.advanceGeneration({ ...session, gen: 2 }, 1));
        return true;
      } catch {
        return false;
      }
    });
    expect(advanced).toBe(false);
    expect((await sessionRow(token))?.gen).toBe(1);
  });
});

describe('theft', () => {
  it('the thief renews first; the victim past the grace window gets token_reused; the thief is cut off', async () => {
    const { token } = await signedInUser();
    const thief = await renewOk(token.access_token);
    testClock.advance(GRACE_MS + 1);
    await expectProblem(await renew(token.access_token), 401, 'token_reused');
    await expectProblem(await renew(thief.access_token), 401, 'session_revoked');
    await expectProblem(await call('/api/account', { token: thief.access_token }), 401, 'session_revoked');
  });

  it('a stolen token minted at or after the last login signs out every session of the user', async () => {
    const email = uniqueEmail();
    await register(email);
    const other = await login(email, PASSWORD, 'laptop');
    const victim = await login(email, PASSWORD, 'phone');
    const thief = await renewOk(victim.access_token);
    testClock.advance(GRACE_MS);
    await expectProblem(await renew(victim.access_token), 401, 'token_reused');
    await expectProblem(await renew(other.access_token), 401, 'session_revoked');
    await expectProblem(await renew(thief.access_token), 401, 'session_revoked');
    const fresh = await login(email);
    const events = await eventsOf(fresh.access_token);
    expect(events.find((event) => event.type === 'reuse_detected')).toMatchObject({
      session_id: victim.session_id,
      detail: { scope: 'user' },
    });
  });

  it('a stolen token minted before the last login ends only its own session, however often it is replayed', async () => {
    const email = uniqueEmail();
    await register(email);
    const old = await login(email, PASSWORD, 'old laptop');
    const stolen = old.access_token;
    await renewOk(stolen); // the owner renews: `stolen` is now superseded
    testClock.advance(60_000);
    const current = await login(email, PASSWORD, 'phone'); // the user types their password again
    testClock.advance(60_000);
    await expectProblem(await renew(stolen), 401, 'token_reused');
    for (let replay = 0; replay < 3; replay++) {
      await expectProblem(await renew(stolen), 401, 'session_revoked');
    }
    expect(claimsOf((await renewOk(current.access_token)).access_token).gen).toBe(2);
    const events = await eventsOf((await login(email)).access_token);
    const detections = events.filter((event) => event.type === 'reuse_detected');
    expect(detections).toEqual([expect.objectContaining({ session_id: old.session_id, detail: { scope: 'session' } })]);
  });

  it('a revoked session never renews again, whatever is replayed, in whatever order', async () => {
    const { token } = await signedInUser();
    const second = await renewOk(token.access_token);
    const third = await renewOk(second.access_token);
    testClock.advance(GRACE_MS);
    await expectProblem(await renew(token.access_token), 401, 'token_reused');
    for (const t of [third, second, token, third, token, second]) {
      const response = await renew(t.access_token);
      await expectProblem(response, 401, 'session_revoked');
    }
  });
});

describe('revocation and login within the same second', () => {
  it('a token minted after a revocation renews; one minted before it does not', async () => {
    const email = uniqueEmail();
    await register(email);
    testClock.set(Math.floor(Date.now() / 1000) * 1000 + 100);
    const before = await login(email);
    expect((await call('/auth/logout-all', { method: 'POST', token: before.access_token })).status).toBe(204);
    const after = await login(email);
    expect(claimsOf(after.access_token).iat).toBe(claimsOf(before.access_token).iat);
    expect(claimsOf((await renewOk(after.access_token)).access_token).gen).toBe(2);
    await expectProblem(await renew(before.access_token), 401, 'session_revoked');
  });

  it('stays ordered when the user object restarts between the steps (the clock is kept in its storage)', async () => {
    const email = uniqueEmail();
    await register(email);
    testClock.set(Math.floor(Date.now() / 1000) * 1000 + 100);
    const before = await login(email);
    await evictUserObjects();
    expect((await call('/auth/logout-all', { method: 'POST', token: before.access_token })).status).toBe(204);
    await evictUserObjects();
    const after = await login(email);
    expect((await renew(after.access_token)).status).toBe(200);
    await expectProblem(await renew(before.access_token), 401, 'session_revoked');
  });
});

describe('storage', () => {
  it('a renewal sends no statement to D1: the Worker verifies, the user object decides and persists', async () => {
    const { id, token } = await signedInUser();
    const seen: string[] = [];
    const watched = faultyD1(env.DB, (sql) => {
      seen.push(sql);
      return undefined;
    });
    const second = await direct('/auth/renew', { method: 'POST', token: token.access_token }, {
      ...env,
      DB: watched,
      USER_AUTHORITY: authorityNamespaceWith({ ...env, DB: watched }),
    });
    expect(second.status).toBe(200);
    expect(seen).toEqual([]);
    expect((await sessionRow(token))?.gen).toBe(2);
    expect(id).toBe(claimsOf(token.access_token).sub);
  });

  it('evicting the user object between renewals loses nothing', async () => {
    const { token } = await signedInUser();
    const second = await renewOk(token.access_token);
    await evictUserObjects();
    const third = await renewOk(second.access_token);
    expect(claimsOf(third.access_token).gen).toBe(3);
    await evictUserObjects();
    testClock.advance(GRACE_MS);
    await expectProblem(await renew(second.access_token), 401, 'token_reused');
  });
});
