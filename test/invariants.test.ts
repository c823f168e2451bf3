import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { testClock } from '../src/clock';
import type { UserAuthority } from '../src/user-authority/object';
import { authorityStub, faultyD1, setAuthorityD1 } from './faults';
import { call, claimsOf, expectProblem, renew, renewOk, signedInUser } from './helpers';

const GRACE_MS = 10_000;

async function storedGen(sessionId: string): Promise<number | undefined> {
  const row = await env.DB.prepare('SELECT gen FROM sessions WHERE id = ?1').bind(sessionId).first<{ gen: number }>();
  return row?.gen;
}

async function tableCounts(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of ['users', 'sessions', 'security_events', 'login_attempts']) {
    counts[table] = (await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${table}`).first<{ n: number }>())?.n ?? -1;
  }
  const revocations = await env.DB.prepare(
    'SELECT (SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL) + (SELECT COUNT(*) FROM users WHERE revoked_before > 0) AS n',
  ).first<{ n: number }>();
  counts.revocations = revocations?.n ?? -1;
  return counts;
}

describe('PROTOCOL.md invariants', () => {
  it('1. one generation is minted at most once per session: no two different successors of one token', async () => {
    testClock.set(Date.now());
    const { token } = await signedInUser();
    const successors = new Set<string>();
    // Concurrent first renewals, then retries inside the grace window, then a late retry of the same step.
    for (const response of await Promise.all(Array.from({ length: 10 }, () => renew(token.access_token)))) {
      successors.add(((await response.json()) as { access_token: string }).access_token);
    }
    testClock.advance(GRACE_MS - 1);
    successors.add((await renewOk(token.access_token)).access_token);
    expect(successors.size).toBe(1);
    const [second] = [...successors] as [string];
    const third = await renewOk(second);
    testClock.advance(1000);
    expect((await renewOk(second)).access_token).toBe(third.access_token);
    expect(await storedGen(token.session_id)).toBe(3);
  });

  it('2. concurrent renewals by one client never revoke anything', async () => {
    const { token } = await signedInUser();
    let current = token.access_token;
    for (let round = 0; round < 5; round++) {
      testClock.advance(300_000);
      const answers = await Promise.all(Array.from({ length: 6 }, () => renew(current)));
      expect(answers.map((answer) => answer.status)).toEqual(Array(6).fill(200));
      current = ((await (answers[0] as Response).json()) as { access_token: string }).access_token;
    }
    const revoked = await env.DB.prepare('SELECT revoked_at FROM sessions WHERE id = ?1').bind(token.session_id).first();
    expect(revoked).toEqual({ revoked_at: null });
    expect(claimsOf(current).gen).toBe(6);
  });

  it('3. no token is returned to a client before the state that makes it valid is durable in D1', async () => {
    const { id, token } = await signedInUser();
    let current = token.access_token;
    for (let step = 0; step < 3; step++) {
      current = (await renewOk(current)).access_token;
      // The answer is out: D1 must already hold its generation.
      expect(await storedGen(token.session_id)).toBe(claimsOf(current).gen);
    }
    await setAuthorityD1(id, faultyD1(env.DB, (sql) => (sql.includes('UPDATE sessions SET gen') ? 'before' : undefined)));
    const problem = await expectProblem(await renew(current), 503, 'temporarily_unavailable');
    expect(JSON.stringify(problem)).not.toContain('eyJ');
    await setAuthorityD1(id, undefined);
  });

  it('4. a revoked session never renews again, whatever is replayed, in whatever order', async () => {
    const { token } = await signedInUser();
    const tokens = [token.access_token];
    for (let step = 0; step < 3; step++) tokens.push((await renewOk(tokens.at(-1) as string)).access_token);
    expect((await call('/auth/logout', { method: 'POST', token: tokens[1] })).status).toBe(204);
    const orders = [tokens, [...tokens].reverse(), [tokens[2], tokens[0], tokens[3], tokens[1]]];
    for (const order of orders) {
      for (const replayed of order) await expectProblem(await renew(replayed as string), 401, 'session_revoked');
      testClock.advance(GRACE_MS);
    }
    const concurrent = await Promise.all(tokens.map((t) => renew(t)));
    expect(concurrent.map((response) => response.status)).toEqual([401, 401, 401, 401]);
  });

  it('5. correctness does not rest on the Durable Object: two live instances racing one token mint one generation', async () => {
    const { token } = await signedInUser();
    const claims = claimsOf(token.access_token) as unknown as Parameters<UserAuthority['renew']>[0];
    // The user's own object and a second, unrelated instance of the same class acting for the same user.
    const own = authorityStub(claims.sub);
    const namespace = env.USER_AUTHORITY as unknown as DurableObjectNamespace<UserAuthority>;
    const rogue = namespace.get(namespace.newUniqueId());
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? own : rogue).renew(claims)),
    );
    const minted = new Set(results.map((result) => (result.ok ? result.value.accessToken : result.code)));
    expect(minted.size).toBe(1);
    expect(claimsOf([...minted][0] as string).gen).toBe(2);
    expect(await storedGen(token.session_id)).toBe(2);
  });

  it('6. bad input of any kind gets a clear 4xx problem, never a 500, and changes nothing', async () => {
    const { token } = await signedInUser();
    const before = await tableCounts();
    const badRequests: Array<[string, RequestInit]> = [
      ['/auth/register', { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } }],
      ['/auth/login', { method: 'POST', body: '{"email": 1, "password": 2}', headers: { 'content-type': 'application/json' } }],
      ['/auth/renew', { method: 'POST', headers: { authorization: 'Bearer x.y.z' } }],
      ['/auth/renew', { method: 'POST', headers: { authorization: `Bearer ${token.access_token}x` } }],
      ['/auth/logout', { method: 'POST', headers: { authorization: 'Bearer ....' } }],
      ['/auth/password', { method: 'POST', headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json' }, body: '[]' }],
      ['/auth/password', { method: 'POST', headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json' }, body: '{"current_password": null, "new_password": 5}' }],
      [`/auth/sessions/${'x'.repeat(500)}`, { method: 'DELETE', headers: { authorization: `Bearer ${token.access_token}` } }],
      ['/admin/users/x/revoke', { method: 'POST', headers: { authorization: 'Bearer wrong' } }],
      ['/api/account', { headers: { authorization: `Bearer ${'a'.repeat(20_000)}` } }],
    ];
    for (const [path, init] of badRequests) {
      const response = await call(path, init);
      expect(response.status, path).toBeGreaterThanOrEqual(400);
      expect(response.status, path).toBeLessThan(500);
      expect(response.headers.get('content-type')).toBe('application/problem+json');
    }
    expect(await tableCounts()).toEqual(before);
  });
});
