/**
 * The user's Durable Object as the owner of the user's records: what it exposes over RPC, how its
 * records stay bounded, and the protocol details it decides on its own records.
 */
import { createExecutionContext, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { RENEW_TIMEOUT_MS } from '../../packages/client/src/timing';
import { testClock } from '../../src/clock';
import { parseConfig } from '../../src/config';
import worker from '../../src/index';
import { authorityNamespaceWith } from '../support/authority-with';
import { direct } from '../support/direct';
import { authorityStub, faultyD1, interceptD1, runStatement } from '../support/faults';
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
  uniqueEmail,
} from '../support/helpers';
import { mirrorOf, objectRows } from '../support/user-object';

const GRACE_MS = 10_000;
const DAY_MS = 86_400_000;

describe('the RPC surface is exactly the public API', () => {
  // Names that exist inside the object (or did before its members became #private) and must not
  // be reachable through a stub: signing any claims, reading the signing keys, pushing the user's
  // clock, swapping its storage.
  const internal = [
    'grant',
    'config',
    'instant',
    'tick',
    'store',
    'records',
    'directory',
    'exclusive',
    'transaction',
    'deliver',
    'decideAndPersist',
    'newSession',
    'openSession',
    'liveSession',
    'replacePassword',
    'noteEmailVerified',
    'issueDbscChallenge',
    'currentClaims',
    'env',
    'ctx',
    // Since the object became a shell: its context, its queue, and the methods endSession replaced.
    'authority',
    'tail',
    'revokeAll',
    'deliverSoon',
    'logout',
    'revokeSession',
  ];

  it.each(internal)('%s cannot be called or read through a stub', async (name) => {
    const { id, token } = await signedInUser();
    const stub = authorityStub(id) as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const outcome = await (async () => {
      try {
        return { value: await (stub[name] as (...args: unknown[]) => Promise<unknown>)(Date.now() + DAY_MS) };
      } catch (error) {
        return { error: String(error) };
      }
    })();
    expect(outcome).toHaveProperty('error');
    expect(String((outcome as { error: string }).error)).not.toMatch(/BEGIN|"d":|private/i);
    // Nothing moved: the session renews to generation 2 at the ordinary clock.
    expect(claimsOf((await renewOk(token.access_token)).access_token).gen).toBe(2);
  });
});

describe('protocol details decided on the object records', () => {
  it('logout with the previous token inside REUSE_GRACE is an ordinary logout', async () => {
    const { id, token } = await signedInUser();
    await renewOk(token.access_token);
    testClock.advance(GRACE_MS - 1000);
    expect((await call('/auth/logout', { method: 'POST', token: token.access_token })).status).toBe(204);
    const rows = await objectRows(id);
    expect(rows.sessions[0]).toMatchObject({ revoked_reason: 'logout' });
    expect(rows.events.map((event) => event.type)).toEqual(['login', 'logout']);
  });

  it('logout with a superseded token past REUSE_GRACE is reuse: refused, recorded, the session ended', async () => {
    const { id, token } = await signedInUser();
    const second = await renewOk(token.access_token);
    testClock.advance(GRACE_MS);
    await expectProblem(await call('/auth/logout', { method: 'POST', token: token.access_token }), 401, 'token_reused');
    const rows = await objectRows(id);
    expect(rows.sessions[0]).toMatchObject({ revoked_reason: 'reuse' });
    expect(rows.events.map((event) => event.type)).toEqual(['login', 'reuse_detected']);
    await expectProblem(await renew(second.access_token), 401, 'session_revoked');
  });

  it('a password change re-checks the caller session in the object, whatever D1 mirror says', async () => {
    const { id, email, token } = await signedInUser();
    const second = await renewOk(token.access_token);
    testClock.advance(GRACE_MS);
    // Reuse detected while D1 is down: the object ends the session, D1's mirror still says live.
    const down = faultyD1(env.DB, (sql) => (/^UPDATE (users|sessions)/.test(sql) ? 'before' : undefined));
    const detected = await direct('/auth/renew', { method: 'POST', token: token.access_token }, {
      ...env,
      USER_AUTHORITY: authorityNamespaceWith({ ...env, DB: down }),
    });
    await expectProblem(detected, 401, 'token_reused');
    expect((await mirrorOf(env.DB, token.session_id))?.revoked_at).toBeNull();
    expect((await call('/api/account', { token: second.access_token })).status).toBe(200);

    const change = await call('/auth/password', {
      method: 'POST',
      token: second.access_token,
      json: { current_password: PASSWORD, new_password: `${PASSWORD} anew` },
    });
    await expectProblem(change, 401, 'session_revoked');
    const hash = await env.DB.prepare('SELECT password_hash FROM users WHERE id = ?1').bind(id).first<{ password_hash: string }>();
    expect(hash?.password_hash).toBeDefined();
    await login(email, PASSWORD);
  });

  it('a theft detected while a login waits on D1 is not undone when the login is recorded', async () => {
    const email = uniqueEmail();
    await register(email);
    const other = await login(email, PASSWORD, 'other');
    // The last login: a superseded token of it is theft of user scope (rule 7).
    const victim = await login(email, PASSWORD, 'victim');
    await renewOk(victim.access_token);
    testClock.advance(GRACE_MS);
    let replayed: { status: number; body: string } | undefined;
    const slow = interceptD1(env.DB, {
      statement: (_sql, method, real, args) => runStatement(real, method, args),
      async batch(sqls, execute) {
        // The replay lands while the login's D1 batch is on its way.
        if (!replayed && sqls.some((sql) => sql.includes('INSERT INTO sessions'))) {
          const answer = await renew(victim.access_token);
          replayed = { status: answer.status, body: await answer.text() };
        }
        return execute();
      },
    });
    const third = await direct('/auth/login', { method: 'POST', json: { email, password: PASSWORD } }, {
      ...env,
      USER_AUTHORITY: authorityNamespaceWith({ ...env, DB: slow }),
    });
    expect(replayed).toMatchObject({ status: 401, body: expect.stringContaining('"token_reused"') });
    expect(third.status).toBe(200);
    // Every session logged in before the detection stays revoked in the object, which decides renewals.
    await expectProblem(await renew(other.access_token), 401, 'session_revoked');
  });

  it('the sessions list shows every live session, however many ended ones are newer', async () => {
    const { id, token } = await signedInUser('kept');
    // 250 sessions logged in after it that went idle without ever renewing.
    await runInDurableObject(authorityStub(id), (_instance, state) => {
      const loginAt = Date.now() + 1000;
      for (let n = 0; n < 250; n++) {
        state.storage.sql.exec(
          'INSERT INTO sessions (id, client, created_at, gen, gen_minted_at, gen_expires_at) VALUES (?, ?, ?, 1, ?, ?)',
          `idle-${n}`,
          'idle',
          loginAt + n,
          loginAt + n,
          Math.floor((loginAt + n) / 1000) + 300,
        );
      }
    });
    let current = token.access_token;
    for (const days of [7, 8]) {
      testClock.advance(days * DAY_MS);
      current = (await renewOk(current)).access_token;
    }
    const response = await call('/auth/sessions', { token: current });
    expect(response.status).toBe(200);
    const { sessions } = (await response.json()) as { sessions: Array<{ id: string; client: string; current: boolean }> };
    expect(sessions).toEqual([expect.objectContaining({ id: token.session_id, client: 'kept', current: true })]);
  });

  it('a renewal retried after a lost answer is retried within the grace window: the client gives up in time', () => {
    const defaults = parseConfig({ SIGNING_KEYS: '{"keys":[]}' });
    expect(RENEW_TIMEOUT_MS).toBeLessThan(defaults.reuseGraceSeconds * 1000);
  });
});

describe('security events', () => {
  it('page newest first with a cursor, to the end', async () => {
    const { email, token } = await signedInUser();
    const other = await login(email);
    expect((await call('/auth/logout', { method: 'POST', token: other.access_token })).status).toBe(204);
    const all = await eventsOf(token.access_token);
    expect(all.map((event) => event.type)).toEqual(['logout', 'login', 'login']);
    const paged: unknown[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 5; page++) {
      const query: string = cursor === null ? '?limit=1' : `?limit=1&cursor=${cursor}`;
      const response = await call(`/auth/events${query}`, { token: token.access_token });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { events: unknown[]; next_cursor: string | null };
      expect(body.events).toHaveLength(1);
      paged.push(...body.events);
      cursor = body.next_cursor;
      if (cursor === null) break;
    }
    expect(cursor).toBeNull();
    expect(paged).toEqual(all);
  });

  it.each(['0', '-1', 'abc', '1e3', '99999999999999999999'])('a cursor %s is 400 invalid_request', async (cursor) => {
    const { token } = await signedInUser();
    await expectProblem(await call(`/auth/events?cursor=${cursor}`, { token: token.access_token }), 400, 'invalid_request');
  });

  it.each(['0', '101', 'x'])('a limit %s is 400 invalid_request', async (limit) => {
    const { token } = await signedInUser();
    await expectProblem(await call(`/auth/events?limit=${limit}`, { token: token.access_token }), 400, 'invalid_request');
  });

  it('failed logins are coalesced into one event with a count, recorded after the answer', async () => {
    const { id, email, token } = await signedInUser();
    for (const address of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) {
      const ctx = createExecutionContext();
      const request = new Request('http://localhost/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'cf-connecting-ip': address },
        body: JSON.stringify({ email, password: `${PASSWORD}!` }),
      });
      await expectProblem(await worker.fetch(request, env, ctx), 401, 'invalid_credentials');
      await waitOnExecutionContext(ctx);
    }
    const failed = (await eventsOf(token.access_token)).filter((event) => event.type === 'login_failed');
    expect(failed).toEqual([expect.objectContaining({ detail: expect.objectContaining({ count: 3 }) })]);
    expect(id).toBe(claimsOf(token.access_token).sub);
  });

  it('a flood of failures cannot push a reuse detection out of the retained history', async () => {
    const { id, token } = await signedInUser();
    const second = await renewOk(token.access_token);
    testClock.advance(GRACE_MS);
    await expectProblem(await renew(token.access_token), 401, 'token_reused');
    const stub = authorityStub(id);
    // More failures than EVENT_RETENTION_COUNT keeps events.
    await runInDurableObject(stub, (instance) => {
      for (let n = 0; n < 1500; n++) instance.recordLoginFailure({ userId: id });
    });
    await runDurableObjectAlarm(stub);
    const rows = await objectRows(id);
    expect(rows.events.map((event) => [event.type, event.count])).toEqual([
      ['login', 1],
      ['reuse_detected', 1],
      ['login_failed', 1500],
    ]);
    expect(second.session_id).toBe(token.session_id);
  });
});

describe('nothing grows without bound', () => {
  it('the object deletes sessions past SESSION_MAX_AGE or idle past RENEW_WINDOW, and events past retention', async () => {
    const email = uniqueEmail();
    const { id } = await register(email);
    const old = await login(email, PASSWORD, 'old');
    testClock.advance(15 * DAY_MS);
    const recent = await login(email, PASSWORD, 'recent');
    await runDurableObjectAlarm(authorityStub(id));
    const rows = await objectRows(id);
    // The first session's only token expired 15 days ago: past RENEW_WINDOW, it can never renew.
    expect(rows.sessions.map((session) => session.id)).toEqual([recent.session_id]);
    expect(rows.events).toHaveLength(2);
    testClock.advance(366 * DAY_MS);
    await runDurableObjectAlarm(authorityStub(id));
    const later = await objectRows(id);
    expect(later.sessions).toEqual([]);
    expect(later.events).toEqual([]);
    await expectProblem(await renew(old.access_token), 401, 'session_inactive');
  });

  it('keeps at most EVENT_RETENTION_COUNT events, the newest', async () => {
    const { id } = await signedInUser();
    await runInDurableObject(authorityStub(id), (_instance, state) => {
      for (let n = 0; n < 1100; n++) {
        state.storage.sql.exec(
          "INSERT INTO events (type, at, session_id, detail, count, last_at) VALUES ('logout', ?, NULL, NULL, 1, ?)",
          Date.now() + n,
          Date.now() + n,
        );
      }
    });
    await runDurableObjectAlarm(authorityStub(id));
    const rows = await objectRows(id);
    expect(rows.events).toHaveLength(1000);
    expect(rows.events.every((event) => event.type === 'logout')).toBe(true);
  });

  it("the daily Cron Trigger deletes D1's mirror rows past SESSION_MAX_AGE and spent login-throttle rows", async () => {
    const { id, token } = await signedInUser();
    const nowMs = Date.now();
    await env.DB.batch([
      env.DB.prepare('INSERT INTO sessions (id, user_id, created_at) VALUES (?1, ?2, ?3)').bind(`ancient-${id}`, id, nowMs - 31 * DAY_MS),
      env.DB.prepare(
        'INSERT INTO login_attempts (email, client_ip, failures, last_failure_at, locked_until) VALUES (?1, ?2, 5, ?3, ?4)',
      ).bind(`spent-${id}`, '192.0.2.9', nowMs - DAY_MS, nowMs - DAY_MS + 900_000),
      env.DB.prepare(
        'INSERT INTO login_attempts (email, client_ip, failures, last_failure_at, locked_until) VALUES (?1, ?2, 5, ?3, ?4)',
      ).bind(`locked-${id}`, '192.0.2.9', nowMs, nowMs + 900_000),
    ]);
    await worker.scheduled({ cron: '17 3 * * *', scheduledTime: nowMs, noRetry() {} } as ScheduledController, env);
    const exists = async (sql: string, key: string) => (await env.DB.prepare(sql).bind(key).first()) !== null;
    expect(await exists('SELECT 1 FROM sessions WHERE id = ?1', `ancient-${id}`)).toBe(false);
    expect(await exists('SELECT 1 FROM sessions WHERE id = ?1', token.session_id)).toBe(true);
    expect(await exists('SELECT 1 FROM login_attempts WHERE email = ?1', `spent-${id}`)).toBe(false);
    expect(await exists('SELECT 1 FROM login_attempts WHERE email = ?1', `locked-${id}`)).toBe(true);
  });
});
