/**
 * A login storm must not take renewals and token checks down with it (docs/SECURITY.md,
 * "Password-hash exhaustion"): a per-address limit on the routes that hash a password, and a
 * bounded share of the isolate for hashing.
 *
 * The rest of the suite signs hundreds of users in from one address, many at once, so it runs
 * with both defences off (vitest.config.ts). These tests switch them on per request: they hand the
 * Worker's routes the suite's env with ADDRESS_RATE_LIMIT and HASH_BUDGET set as wrangler.toml
 * deploys them, over the real bindings (the Rate Limiting binding is Miniflare's).
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import wranglerToml from '../../wrangler.toml?raw';
import { LOGIN_RETRY, sendWithPoliteRetry } from '../../packages/client/src/retry';
import { app } from '../../src/app';
import { testClock } from '../../src/clock';
import { ADDRESS_RATE_LIMIT_PERIOD_SECONDS } from '../../src/http/rate-limit';
import { HASH_BUDGET_POLICY, isolateHashBudget } from '../../src/passwords/budget';
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { type CallInit, expectProblem, PASSWORD, requestTo, signedInUser, uniqueEmail } from '../support/helpers';

const declared = /\[\[ratelimits\]\][^[]*?name\s*=\s*"ADDRESS_RATE_LIMITER"[^[]*?simple\s*=\s*\{\s*limit\s*=\s*(\d+)\s*,\s*period\s*=\s*(\d+)\s*\}/.exec(
  wranglerToml,
);
/** Requests per address and period, as wrangler.toml declares the limiter. */
const ADDRESS_LIMIT = Number(declared?.[1]);
const ADDRESS_PERIOD_SECONDS = Number(declared?.[2]);

interface Defences {
  addressRateLimit?: boolean;
  hashBudget?: boolean;
}

type Send = CallInit & { from?: string };

/** The suite's env with the defences as asked (off unless named), plus `extra`. */
function envWith({ addressRateLimit = false, hashBudget = false }: Defences, extra: Record<string, unknown> = {}) {
  return { ...env, ADDRESS_RATE_LIMIT: addressRateLimit ? 'on' : 'off', HASH_BUDGET: hashBudget ? 'on' : 'off', ...extra };
}

function requestFrom(path: string, { from, ...init }: Send): Request {
  const headers = new Headers(init.headers);
  if (from !== undefined) headers.set('cf-connecting-ip', from);
  return requestTo(path, { ...init, headers });
}

/** A request through the Worker's routes, in this isolate, with the given defences. */
async function send(defences: Defences, path: string, init: Send, extra?: Record<string, unknown>): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await app.fetch(requestFrom(path, init), envWith(defences, extra), ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

/** A /64 no other test uses. */
function freshNetwork(): string {
  const group = () => Math.floor(Math.random() * 0x10000).toString(16);
  return `2001:db8:${group()}:${group()}`;
}

const loginBody = (email: string, password: string) => ({ method: 'POST', json: { email, password } }) as const;

describe('Security: a per-address limit on every route that hashes a password', () => {
  it('is declared in wrangler.toml with the period the 429 announces', () => {
    expect(ADDRESS_LIMIT).toBeGreaterThan(0);
    expect(ADDRESS_PERIOD_SECONDS).toBe(ADDRESS_RATE_LIMIT_PERIOD_SECONDS);
    expect(wranglerToml).toMatch(/^ADDRESS_RATE_LIMIT = "on"$/m);
    expect(wranglerToml).toMatch(/^HASH_BUDGET = "on"$/m);
  });

  it('counts one address across many emails and routes, then answers 429 too_many_attempts with Retry-After; another address goes on', async () => {
    const user = await signedInUser();
    const on = { addressRateLimit: true };

    /** Spends one address's allowance on distinct emails, then asks every limited route again. */
    async function storm(network: string) {
      const from = `${network}::1`;
      const spent: number[] = [];
      // Real work first: failed logins on unknown emails, a wrong password, a registration...
      spent.push((await send(on, '/auth/login', { ...loginBody(uniqueEmail('stuffing'), 'guess one two three'), from })).status);
      spent.push((await send(on, '/auth/login', { ...loginBody(uniqueEmail('stuffing'), 'guess one two three'), from })).status);
      spent.push((await send(on, '/auth/login', { ...loginBody(user.email, 'not the password at all'), from })).status);
      spent.push((await send(on, '/auth/register', { ...loginBody(uniqueEmail('fresh'), PASSWORD), from })).status);
      // ...then the rest of the allowance with requests refused before any hashing: they count too.
      while (spent.length < ADDRESS_LIMIT) {
        spent.push((await send(on, '/auth/login', { ...loginBody(uniqueEmail('stuffing'), 'x'.repeat(257)), from })).status);
      }
      // Another address of the same /64 is the same client.
      const sameNetwork = `${network}:ffff:ffff:ffff:fffe`;
      const login = await send(on, '/auth/login', { ...loginBody(user.email, PASSWORD), from: sameNetwork });
      const register = await send(on, '/auth/register', { ...loginBody(uniqueEmail('fresh'), PASSWORD), from });
      const password = await send(on, '/auth/password', {
        method: 'POST',
        token: user.token.access_token,
        json: { current_password: PASSWORD, new_password: `${PASSWORD} again` },
        from,
      });
      const otherNetwork = await send(on, '/auth/login', { ...loginBody(user.email, PASSWORD), from: `${freshNetwork()}::1` });
      const switchedOff = await send({ addressRateLimit: false }, '/auth/login', { ...loginBody(user.email, PASSWORD), from });
      return { spent, login, register, password, otherNetwork, switchedOff };
    }

    // The limiter counts in fixed windows: a run that straddles a window's end starts over once,
    // at the start of the next window, where it cannot straddle again.
    const windowOf = () => Math.floor(Date.now() / (ADDRESS_PERIOD_SECONDS * 1000));
    let window = windowOf();
    let outcome = await storm(freshNetwork());
    if (windowOf() !== window) {
      window = windowOf();
      outcome = await storm(freshNetwork());
      expect(windowOf()).toBe(window);
    }

    expect(outcome.spent.slice(0, 4)).toEqual([401, 401, 401, 201]);
    expect(new Set(outcome.spent.slice(4))).toEqual(new Set([400]));
    for (const refused of [outcome.login, outcome.register, outcome.password]) {
      expect(refused.headers.get('retry-after')).toBe(String(ADDRESS_RATE_LIMIT_PERIOD_SECONDS));
      await expectProblem(refused, 429, 'too_many_attempts');
    }
    expect(outcome.otherNetwork.status).toBe(200);
    expect(outcome.switchedOff.status).toBe(200);
  });
});

/**
 * What one request cost before its answer: the D1 statements it ran and the calls to user objects
 * it made. `afterAnswer` lists the object calls it left for after the answer (`waitUntil`), which
 * no client can time: they are held unanswered here, so an answer that waited for one never comes.
 */
interface Work {
  statements: string[];
  objects: number;
  afterAnswer: string[];
}

/** Object calls that a route may leave running after its answer. */
const AFTER_ANSWER: ReadonlySet<string> = new Set(['recordLoginFailure']);

/** The suite's env with D1 and the user-object namespace recording what goes through them. */
function recordingEnv(defences: Defences, work: Work) {
  const base = envWith(defences);
  const record = (statement: D1PreparedStatement, sql: string): D1PreparedStatement =>
    new Proxy(statement, {
      get(target, property) {
        if (property === 'bind') return (...values: unknown[]) => record(target.bind(...values), sql);
        const value = Reflect.get(target, property, target);
        if (typeof value !== 'function') return value;
        if (['run', 'first', 'all', 'raw'].includes(String(property))) work.statements.push(sql);
        return value.bind(target);
      },
    });
  const DB = new Proxy(base.DB, {
    get(target, property) {
      if (property === 'prepare') return (sql: string) => record(target.prepare(sql), sql);
      const value = Reflect.get(target, property, target);
      if (property === 'batch') work.statements.push('batch');
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const namespace = base.USER_AUTHORITY;
  const stubOf = (stub: DurableObjectStub) =>
    new Proxy(stub, {
      get(target, method) {
        if (AFTER_ANSWER.has(String(method))) {
          return () => {
            work.afterAnswer.push(String(method));
            return new Promise(() => {});
          };
        }
        const value = Reflect.get(target, method, target);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          work.objects += 1;
          return value.apply(target, args);
        };
      },
    });
  const USER_AUTHORITY = new Proxy(namespace, {
    get(target, property) {
      if (property === 'get') return (id: DurableObjectId) => stubOf(target.get(id));
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { ...base, DB, USER_AUTHORITY };
}

/** What a client could observe of a failed login, and the work done before its answer. */
interface Answer {
  status: number;
  retryAfter: string | null;
  body: string;
  work: Omit<Work, 'afterAnswer'>;
}

type FailedLogin = 'unknown email' | 'wrong password';

async function failedLogin(kind: FailedLogin, email: string, from: string): Promise<{ answer: Answer; afterAnswer: string[] }> {
  const work: Work = { statements: [], objects: 0, afterAnswer: [] };
  const target = kind === 'unknown email' ? uniqueEmail('nobody') : email;
  const response = await app.fetch(
    requestFrom('/auth/login', { ...loginBody(target, 'not the password at all'), from }),
    recordingEnv({ hashBudget: true }, work),
    createExecutionContext(),
  );
  const { afterAnswer, ...before } = work;
  const answer = { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.text(), work: before };
  return { answer, afterAnswer };
}

let idleAt = Date.now();
/**
 * Freezes the clock an hour past any earlier test's: the budget's schedule is then in the past,
 * and the budget is idle. Frozen, every request of a test sees the same instant, and hashes time
 * at zero, which the budget ignores, so its spacing stays what it was when the test began: which
 * requests are admitted does not depend on how fast the machine hashes meanwhile. Returns how
 * many hashes the budget admits from idle, at once or within its longest wait.
 */
function idleBudget(): number {
  idleAt += 3_600_000;
  testClock.set(idleAt);
  return HASH_BUDGET_POLICY.burst + Math.floor(isolateHashBudget.longestWaitMs / isolateHashBudget.intervalMs);
}

describe('Security: a bounded share of the isolate for password hashing', () => {
  it('concurrent logins: a burst goes at once, the next wait their turn, the rest get 503 temporarily_unavailable with Retry-After', async () => {
    const { email } = await signedInUser();
    const admittedFromIdle = idleBudget();
    const before = isolateHashBudget.counts;
    const answers = await Promise.all(
      Array.from({ length: admittedFromIdle + 2 }, (_, i) =>
        send({ hashBudget: true }, '/auth/login', { ...loginBody(email, PASSWORD), from: `198.51.100.${i + 1}` }),
      ),
    );
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([...Array(admittedFromIdle).fill(200), 503, 503]);
    for (const refused of answers.filter((answer) => answer.status === 503)) {
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      await expectProblem(refused, 503, 'temporarily_unavailable');
    }
    const after = isolateHashBudget.counts;
    expect(after.admitted - before.admitted).toBe(admittedFromIdle);
    expect(after.refused - before.refused).toBe(2);
  });

  it('with HASH_BUDGET=off the same logins all go through', async () => {
    const { email } = await signedInUser();
    const admittedFromIdle = idleBudget();
    const answers = await Promise.all(
      Array.from({ length: admittedFromIdle + 2 }, (_, i) =>
        send({ hashBudget: false }, '/auth/login', { ...loginBody(email, PASSWORD), from: `198.51.100.${i + 1}` }),
      ),
    );
    expect(answers.map((answer) => answer.status)).toEqual(Array(admittedFromIdle + 2).fill(200));
  });

  it('an unknown email and a wrong password, logging in at once: identical answers and identical work, admitted or refused', async () => {
    const { email } = await signedInUser();
    const admittedFromIdle = idleBudget();
    const kinds = Array.from({ length: 2 * admittedFromIdle }, (_, i): FailedLogin => (i % 2 === 0 ? 'unknown email' : 'wrong password'));
    const outcomes = await Promise.all(kinds.map((kind, i) => failedLogin(kind, email, `203.0.113.${i + 1}`)));
    const answers = outcomes.map((outcome) => outcome.answer);

    const admitted = answers.filter((answer) => answer.status === 401);
    const refused = answers.filter((answer) => answer.status === 503);
    expect(admitted).toHaveLength(admittedFromIdle);
    expect(refused).toHaveLength(admittedFromIdle);
    // Whatever the kind, an admitted failure is one answer and one amount of work; so is a refusal.
    expect(new Set(admitted.map((answer) => JSON.stringify(answer)))).toHaveProperty('size', 1);
    expect(new Set(refused.map((answer) => JSON.stringify(answer)))).toHaveProperty('size', 1);
    expect(admitted[0]?.work.statements.length).toBeGreaterThan(0);
    // A refusal comes before anything is read: no statement, no object, nothing to tell them apart.
    expect(refused[0]?.work).toEqual({ statements: [], objects: 0 });
    // Admitted in the order they came, so both kinds were in each group.
    expect(new Set(answers.slice(0, admittedFromIdle).map((answer) => answer.status))).toEqual(new Set([401]));
    // Only after the answer, and only for a real account, is the failure recorded in its object.
    expect(outcomes.slice(0, admittedFromIdle).map((outcome) => outcome.afterAnswer)).toEqual(
      kinds.slice(0, admittedFromIdle).map((kind) => (kind === 'wrong password' ? ['recordLoginFailure'] : [])),
    );
  });

  it('in one and the same budget state, an unknown email and a wrong password wait alike and are refused alike', async () => {
    const { email } = await signedInUser();
    const admittedFromIdle = idleBudget();
    const interval = isolateHashBudget.intervalMs;
    const states = {
      // The burst is spent: the next hash waits one interval.
      queued: HASH_BUDGET_POLICY.burst,
      // The burst and the longest wait are spent: the next hash is refused.
      exhausted: admittedFromIdle + 1,
    };
    for (const [state, booked] of Object.entries(states)) {
      const seen: Array<Answer & { admitted: number; refused: number; waitedMs: number }> = [];
      for (const kind of ['unknown email', 'wrong password'] as const) {
        idleBudget();
        isolateHashBudget.charge(booked);
        const before = isolateHashBudget.counts;
        const { answer } = await failedLogin(kind, email, '192.0.2.77');
        const after = isolateHashBudget.counts;
        seen.push({
          ...answer,
          admitted: after.admitted - before.admitted,
          refused: after.refused - before.refused,
          waitedMs: after.waitedMs - before.waitedMs,
        });
      }
      expect(seen[0], state).toEqual(seen[1]);
      if (state === 'queued') expect(seen[0]).toMatchObject({ status: 401, admitted: 1, refused: 0, waitedMs: interval });
      else expect(seen[0]).toMatchObject({ status: 503, admitted: 0, refused: 1, waitedMs: 0, work: { statements: [], objects: 0 } });
    }
  });

  it('a refused login is not counted as a failed attempt against the lockout', async () => {
    const { email } = await signedInUser();
    const admittedFromIdle = idleBudget();
    isolateHashBudget.charge(admittedFromIdle + 4);
    // With one failure allowed, a single counted refusal would lock the right password out.
    const strict = { LOGIN_MAX_FAILURES: '1' };
    for (let i = 0; i < 3; i++) {
      const refused = await send({ hashBudget: true }, '/auth/login', { ...loginBody(email, 'not the password at all'), from: '192.0.2.90' }, strict);
      await expectProblem(refused, 503, 'temporarily_unavailable');
    }
    idleBudget();
    const answer = await send({ hashBudget: true }, '/auth/login', { ...loginBody(email, PASSWORD), from: '192.0.2.90' }, strict);
    expect(answer.status).toBe(200);
  });

  it('the browser client sends a refused login again after Retry-After, and signs in', async () => {
    const { email } = await signedInUser();
    // Spent just past its longest wait: refused, and told to come back within a turn or so.
    const admittedFromIdle = idleBudget();
    isolateHashBudget.charge(admittedFromIdle);
    const seen: Array<{ status: number; retryAfter: string | null }> = [];
    const slept: number[] = [];
    const response = await sendWithPoliteRetry(
      async () => {
        const answer = await send({ hashBudget: true }, '/auth/login', { ...loginBody(email, PASSWORD), from: '192.0.2.91' });
        seen.push({ status: answer.status, retryAfter: answer.headers.get('retry-after') });
        return answer;
      },
      {
        ...LOGIN_RETRY,
        // The wait the client asks for passes on latchkey's clock; no test sleeps it out.
        sleep: async (ms) => {
          slept.push(ms);
          testClock.advance(ms);
        },
        random: () => 0,
      },
    );
    expect(seen.map((answer) => answer.status)).toEqual([503, 200]);
    expect(slept).toEqual([Number(seen[0]?.retryAfter) * 1000]);
    expect(response.status).toBe(200);
  });
});
