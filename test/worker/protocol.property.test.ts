/**
 * Property-based tests of the real service (Worker, user Durable Objects, local D1) against a
 * small reference model of PROTOCOL.md.
 *
 * Each run registers two users with two clients each and plays a random interleaving of logins
 * (some with a wrong password), renewals (some fired several times at once, as two tabs or a
 * retry do), replays of any token issued earlier in the run (a thief), logout, logout-all,
 * password changes, admin revocations, evictions of the user's object and clock moves. After every
 * step, the answers and the D1 rows are compared with the model, and the protocol's invariants are
 * asserted by name.
 *
 * Time: the clock is frozen at a half second and moves in multiples of 3 s, so no instant the
 * model compares falls within a few milliseconds of a threshold (REUSE_GRACE = 10 s, the 5 s
 * leeway, TTL = 300 s): the model can then reason in whole seconds, and "the same second" is
 * exactly "no move between the two steps". Instants within one step are ordered by the model as
 * the user's clock orders them: one after the other.
 */
import { env } from 'cloudflare:workers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { testClock } from '../../src/clock';
import { API_CODES } from '../support/contract';
import { evictUserObjects } from '../support/faults';
import { objectRows } from '../support/user-object';
import { adminToken, call, claimsOf, login, PASSWORD, register, renew, uniqueEmail } from '../support/helpers';

const USERS = 2;
const CLIENTS_PER_USER = 2;
const GRACE_SECONDS = 10;
const LEEWAY_SECONDS = 5;
const TTL_SECONDS = 300;
const MAX_FAILURES = 5;
const LOCKOUT_SECONDS = 900;

// ---------------------------------------------------------------------------------------------
// Steps

type Step =
  | { kind: 'renew'; client: number; copies: number }
  | { kind: 'replay'; token: number; copies: number }
  | { kind: 'login'; client: number; wrongPassword: boolean }
  | { kind: 'logout'; client: number }
  | { kind: 'logoutAll'; client: number }
  | { kind: 'password'; client: number; wrongPassword: boolean }
  | { kind: 'adminRevoke'; user: number }
  | { kind: 'evict'; user: number }
  | { kind: 'advance'; seconds: 3 | 9 | 12 | 300 };

const copiesArb = fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 4 }) });
const clientArb = fc.nat({ max: USERS * CLIENTS_PER_USER - 1 });
const userArb = fc.nat({ max: USERS - 1 });
const rarely = fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) });

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('renew' as const), client: clientArb, copies: copiesArb }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('replay' as const), token: fc.nat(), copies: copiesArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('login' as const), client: clientArb, wrongPassword: rarely }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('logout' as const), client: clientArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('logoutAll' as const), client: clientArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('password' as const), client: clientArb, wrongPassword: rarely }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('adminRevoke' as const), user: userArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('evict' as const), user: userArb }) },
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), seconds: fc.constantFrom(3 as const, 9 as const, 12 as const, 300 as const) }),
  },
);

// ---------------------------------------------------------------------------------------------
// The reference model

interface HeldToken {
  token: string;
  user: number;
  sid: string;
  gen: number;
  /** Model seconds at which it was minted. */
  mintedAt: number;
}

interface ModelSession {
  sid: string;
  user: number;
  /** Position of its login on the user's clock. */
  createdOrd: number;
  gen: number;
  genMintedAt: number;
  /** Position on the user's clock of when the current generation was minted. */
  genMintedOrd: number;
  /** `revoked_at` set (logout, reuse). */
  marked: boolean;
}

interface ModelUser {
  id: string;
  email: string;
  password: string;
  revokedBeforeOrd: number;
  lastLoginAt: number;
  /** Position of the last login on the user's clock. */
  lastLoginOrd: number;
  throttle: { failures: number; lastFailureAt: number; lockedUntil: number } | null;
  reuses: Array<'session' | 'user'>;
}

interface Client {
  user: number;
  label: string;
  held: HeldToken | null;
}

/** What the model expects one request to answer. */
type Expected = { status: 200; gen: number; sid: string; sameAs?: string } | { status: 204 } | { status: number; code: string };

class Model {
  t = 0;
  private ord = 0;
  readonly sessions = new Map<string, ModelSession>();
  readonly pool: HeldToken[] = [];
  private readonly poolIndex = new Set<string>();
  /** Invariant 1: the one token of each (session, generation) ever answered. */
  readonly minted = new Map<string, string>();
  passwordChanges = 0;

  constructor(
    readonly users: ModelUser[],
    readonly clients: Client[],
  ) {}

  nextOrd(): number {
    this.ord += 1;
    return this.ord;
  }

  isRevoked(session: ModelSession): boolean {
    return session.marked || session.createdOrd <= (this.users[session.user] as ModelUser).revokedBeforeOrd;
  }

  /** Strict routes: the token must be unexpired (with leeway) and its session live. */
  strictFailure(held: HeldToken): Expected | undefined {
    if (this.t - held.mintedAt >= TTL_SECONDS + LEEWAY_SECONDS) return { status: 401, code: 'token_expired' };
    if (this.isRevoked(this.session(held.sid))) return { status: 401, code: 'session_revoked' };
    return undefined;
  }

  session(sid: string): ModelSession {
    const session = this.sessions.get(sid);
    if (!session) throw new Error(`model: unknown session ${sid}`);
    return session;
  }

  /** PROTOCOL.md's table for a genuine token; rules 2, 4 and 8 cannot arise in these runs. */
  renew(held: HeldToken): Expected {
    const session = this.session(held.sid);
    const user = this.users[held.user] as ModelUser;
    const at = this.nextOrd();
    if (this.isRevoked(session)) return { status: 401, code: 'session_revoked' };
    if (held.gen === session.gen) {
      session.gen += 1;
      session.genMintedAt = this.t;
      session.genMintedOrd = at;
      return { status: 200, gen: session.gen, sid: session.sid };
    }
    if (held.gen === session.gen - 1 && this.t - session.genMintedAt < GRACE_SECONDS) {
      return { status: 200, gen: session.gen, sid: session.sid, sameAs: this.minted.get(`${session.sid}.${session.gen}`) };
    }
    if (held.gen < session.gen) {
      session.marked = true;
      const scope = this.reuseScope(held, session, user);
      if (scope === 'user') user.revokedBeforeOrd = at;
      user.reuses.push(scope);
      return { status: 401, code: 'token_reused' };
    }
    throw new Error('model: a genuine token ahead of its session');
  }

  /**
   * Rule 7's scope, placed as precisely as the records allow: every token of a session was minted
   * at or after its login; a generation-1 token at its login; a superseded one before the current
   * generation was. Only past those does the whole second decide, toward safety: minted at or
   * after the last login, or in its very second, and everyone signs in again.
   */
  reuseScope(held: HeldToken, session: ModelSession, user: ModelUser): 'session' | 'user' {
    if (session.createdOrd >= user.lastLoginOrd) return 'user';
    if (held.gen === 1) return 'session';
    if (session.genMintedOrd <= user.lastLoginOrd) return 'session';
    return held.mintedAt >= user.lastLoginAt ? 'user' : 'session';
  }

  /**
   * Logout walks the same table: the newest token, or the previous one within the grace window,
   * ends the session; a session already over answers 204 all the same; a superseded token beyond
   * the grace window is theft, as for a renewal.
   */
  logout(held: HeldToken): Expected {
    const session = this.session(held.sid);
    if (this.isRevoked(session)) return { status: 204 };
    const current = held.gen === session.gen;
    const inGrace = held.gen === session.gen - 1 && this.t - session.genMintedAt < GRACE_SECONDS;
    if (!current && !inGrace) return this.renew(held);
    this.nextOrd();
    session.marked = true;
    return { status: 204 };
  }

  /** The login throttle, charged before any hashing; true when the attempt is refused with 429. */
  charge(user: ModelUser): boolean {
    const t = this.t;
    const th = user.throttle;
    if (!th) {
      user.throttle = { failures: 1, lastFailureAt: t, lockedUntil: 0 };
    } else {
      const stale = th.lockedUntil !== 0 ? th.lockedUntil <= t : th.lastFailureAt + LOCKOUT_SECONDS <= t;
      if (stale) user.throttle = { failures: 1, lastFailureAt: t, lockedUntil: 0 };
      else {
        user.throttle = {
          failures: th.failures + 1,
          lastFailureAt: t,
          lockedUntil: th.failures + 1 === MAX_FAILURES ? t + LOCKOUT_SECONDS : th.lockedUntil,
        };
      }
    }
    return (user.throttle as { failures: number }).failures > MAX_FAILURES;
  }

  openSession(userIndex: number, sid: string): ModelSession {
    const createdOrd = this.nextOrd();
    const session: ModelSession = { sid, user: userIndex, createdOrd, gen: 1, genMintedAt: this.t, genMintedOrd: createdOrd, marked: false };
    this.sessions.set(sid, session);
    const user = this.users[userIndex] as ModelUser;
    user.lastLoginAt = this.t;
    user.lastLoginOrd = createdOrd;
    user.throttle = null;
    return session;
  }

  /** Records a token the service answered; asserts invariant 1 (one token per generation). */
  take(token: string, userIndex: number, expected: { gen: number; sid: string }): HeldToken {
    const claims = claimsOf(token);
    expect(claims).toMatchObject({ sub: (this.users[userIndex] as ModelUser).id, sid: expected.sid, gen: expected.gen });
    const key = `${expected.sid}.${expected.gen}`;
    const earlier = this.minted.get(key);
    if (earlier !== undefined) expect(token, `generation ${key} answered with two different tokens`).toBe(earlier);
    else this.minted.set(key, token);
    expect(claims.jti).toBe(key);
    if (!this.poolIndex.has(token)) {
      this.poolIndex.add(token);
      const session = this.session(expected.sid);
      this.pool.push({ token, user: userIndex, sid: expected.sid, gen: expected.gen, mintedAt: session.genMintedAt });
    }
    return this.pool.find((held) => held.token === token) as HeldToken;
  }
}

// ---------------------------------------------------------------------------------------------
// Talking to the service

interface Answer {
  status: number;
  code?: string;
  body?: Record<string, unknown>;
}

/** Reads an answer and asserts the contract every answer keeps: an API.md code in a problem document. */
async function answerOf(response: Response): Promise<Answer> {
  if (response.status === 204) return { status: 204 };
  const text = await response.text();
  const body = JSON.parse(text) as Record<string, unknown>;
  if (response.status >= 400) {
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(API_CODES.has(body.code as string), `unknown code in ${text}`).toBe(true);
    expect(body.status).toBe(response.status);
    return { status: response.status, code: body.code as string, body };
  }
  return { status: response.status, body };
}

/** What the runs produced, by step kind and answer: asserted at the end so the property cannot pass vacuously. */
const seen = new Map<string, number>();
function note(kind: string, what: string): void {
  const key = `${kind}: ${what}`;
  seen.set(key, (seen.get(key) ?? 0) + 1);
}

function summary(answer: Answer): string {
  return answer.code === undefined ? String(answer.status) : `${answer.status} ${answer.code}`;
}

function expectedSummary(expected: Expected): string {
  return 'code' in expected ? `${expected.status} ${expected.code}` : String(expected.status);
}

const post = (path: string, init: { token?: string; json?: unknown; headers?: Record<string, string> } = {}) =>
  call(path, { method: 'POST', ...init });

/** Each session of the user as the user's object holds it: its generation and whether it is revoked. */
async function objectStates(userId: string): Promise<Map<string, { gen: number; revoked: boolean }>> {
  const rows = await objectRows(userId);
  const revokedBefore = rows.user?.revoked_before ?? 0;
  return new Map(
    rows.sessions.map((row) => [row.id, { gen: row.gen, revoked: row.revoked_at !== null || row.created_at <= revokedBefore }]),
  );
}

/**
 * The users' records compared with the model after every step: the object's sessions and
 * reuse events, and D1's mirror, which must agree with the object on every revocation
 * (invariant 7: every write here succeeds, so nothing may be left owed).
 */
async function expectRowsMatch(model: Model): Promise<void> {
  const actual: Record<string, { gen: number; revoked: boolean }> = {};
  for (const user of model.users) {
    for (const [sid, state] of await objectStates(user.id)) actual[sid] = state;
    const rows = await objectRows(user.id);
    expect(rows.outbox).toEqual([]);
    const scopes = rows.events
      .filter((event) => event.type === 'reuse_detected')
      .map((event) => (JSON.parse(event.detail as string) as { scope: string }).scope);
    expect(scopes).toEqual(user.reuses);
  }
  const expected = Object.fromEntries(
    [...model.sessions.values()].map((session) => [session.sid, { gen: session.gen, revoked: model.isRevoked(session) }]),
  );
  expect(actual).toEqual(expected);
  const ids = model.users.map((user) => user.id);
  const { results } = await env.DB.prepare(
    `SELECT s.id, s.revoked_at IS NOT NULL OR s.created_at <= u.revoked_before AS revoked
       FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.user_id IN (?1, ?2)`,
  )
    .bind(ids[0], ids[1])
    .all<{ id: string; revoked: number }>();
  const mirror = Object.fromEntries(results.map((row) => [row.id, row.revoked === 1]));
  expect(mirror).toEqual(Object.fromEntries(Object.entries(expected).map(([sid, state]) => [sid, state.revoked])));
}

// ---------------------------------------------------------------------------------------------
// Running one step

async function presentConcurrently(model: Model, held: HeldToken, copies: number): Promise<Answer[]> {
  const session = model.session(held.sid);
  const benign = held.gen === session.gen && !model.isRevoked(session);
  const reusesBefore = (model.users[held.user] as ModelUser).reuses.length;
  const expected = Array.from({ length: copies }, () => model.renew(held));
  const responses = await Promise.all(Array.from({ length: copies }, () => renew(held.token)));
  const answers = await Promise.all(responses.map(answerOf));
  // The copies are identical requests: compare as multisets.
  expect(answers.map(summary).sort()).toEqual(expected.map(expectedSummary).sort());
  for (const e of expected) note(copies > 1 ? 'burst' : 'single', 'sameAs' in e && e.sameAs ? 'grace' : expectedSummary(e));
  for (const scope of (model.users[held.user] as ModelUser).reuses.slice(reusesBefore)) note('reuse scope', scope);
  if (benign) {
    // Invariant 2: concurrent renewals of the newest token by one client never revoke anything.
    expect(answers.every((answer) => answer.status === 200)).toBe(true);
  }
  const tokens = new Set<string>();
  for (const [index, answer] of answers.entries()) {
    if (answer.status !== 200) continue;
    const shape = expected.find((e) => e.status === 200) as { gen: number; sid: string; sameAs?: string };
    const token = answer.body?.access_token as string;
    model.take(token, held.user, shape);
    if (shape.sameAs !== undefined) expect(token).toBe(shape.sameAs);
    tokens.add(token);
    expect(answer.body?.session_id, `copy ${index}`).toBe(held.sid);
  }
  // Invariant 1, within one burst: every copy that got a token got the same one.
  expect(tokens.size).toBeLessThanOrEqual(1);
  return answers;
}

async function revokedStates(model: Model, userIndex: number): Promise<Map<string, boolean>> {
  const states = await objectStates((model.users[userIndex] as ModelUser).id);
  return new Map([...states].map(([sid, state]) => [sid, state.revoked]));
}

async function loginClient(model: Model, clientIndex: number, wrongPassword: boolean): Promise<void> {
  const client = model.clients[clientIndex] as Client;
  const user = model.users[client.user] as ModelUser;
  const refused = model.charge(user);
  note('login', refused ? '429' : wrongPassword ? '401' : '200');
  const answer = await answerOf(
    await post('/auth/login', {
      json: { email: user.email, password: wrongPassword ? `${user.password}!` : user.password, client: client.label },
    }),
  );
  if (refused) {
    expect(summary(answer)).toBe('429 too_many_attempts');
    return;
  }
  if (wrongPassword) {
    expect(summary(answer)).toBe('401 invalid_credentials');
    return;
  }
  expect(summary(answer)).toBe('200');
  const sid = answer.body?.session_id as string;
  model.openSession(client.user, sid);
  client.held = model.take(answer.body?.access_token as string, client.user, { gen: 1, sid });
}

async function runStep(model: Model, step: Step): Promise<void> {
  switch (step.kind) {
    case 'advance': {
      model.t += step.seconds;
      testClock.advance(step.seconds * 1000);
      return;
    }
    case 'login':
      return loginClient(model, step.client, step.wrongPassword);
    case 'renew': {
      const client = model.clients[step.client] as Client;
      // A client signed out signs in again.
      if (!client.held) return loginClient(model, step.client, false);
      const answers = await presentConcurrently(model, client.held, step.copies);
      const fresh = answers.find((answer) => answer.status === 200);
      client.held = fresh ? (model.pool.find((held) => held.token === fresh.body?.access_token) as HeldToken) : null;
      return;
    }
    case 'replay': {
      if (model.pool.length === 0) return;
      const held = model.pool[step.token % model.pool.length] as HeldToken;
      const user = model.users[held.user] as ModelUser;
      const olderThanLastLogin = held.mintedAt < user.lastLoginAt;
      const before = await revokedStates(model, held.user);
      await presentConcurrently(model, held, step.copies);
      if (olderThanLastLogin) {
        // A replayed token minted before the user's last login never reaches the other sessions.
        const after = await revokedStates(model, held.user);
        for (const [sid, revoked] of after) if (sid !== held.sid) expect(revoked, `session ${sid}`).toBe(before.get(sid));
      }
      return;
    }
    case 'logout': {
      const client = model.clients[step.client] as Client;
      if (!client.held) return;
      const expected = model.logout(client.held);
      const answer = await answerOf(await post('/auth/logout', { token: client.held.token }));
      expect(summary(answer)).toBe(expectedSummary(expected));
      client.held = null;
      return;
    }
    case 'logoutAll': {
      const client = model.clients[step.client] as Client;
      if (!client.held) return;
      const expected: Expected = model.strictFailure(client.held) ?? { status: 204 };
      const answer = await answerOf(await post('/auth/logout-all', { token: client.held.token }));
      expect(summary(answer)).toBe(expectedSummary(expected));
      if (expected.status === 204) (model.users[client.user] as ModelUser).revokedBeforeOrd = model.nextOrd();
      client.held = null;
      return;
    }
    case 'password': {
      const client = model.clients[step.client] as Client;
      if (!client.held) return;
      const user = model.users[client.user] as ModelUser;
      const newPassword = `${PASSWORD} #${++model.passwordChanges}`;
      const failure = model.strictFailure(client.held);
      const refused = failure === undefined && model.charge(user);
      const answer = await answerOf(
        await post('/auth/password', {
          token: client.held.token,
          json: { current_password: step.wrongPassword ? `${user.password}?` : user.password, new_password: newPassword },
        }),
      );
      if (failure) {
        expect(summary(answer)).toBe(expectedSummary(failure));
        client.held = null;
      } else if (refused) {
        expect(summary(answer)).toBe('429 too_many_attempts');
      } else if (step.wrongPassword) {
        expect(summary(answer)).toBe('401 invalid_credentials');
      } else {
        expect(summary(answer)).toBe('200');
        user.revokedBeforeOrd = model.nextOrd();
        user.password = newPassword;
        const sid = answer.body?.session_id as string;
        model.openSession(client.user, sid);
        client.held = model.take(answer.body?.access_token as string, client.user, { gen: 1, sid });
      }
      return;
    }
    case 'adminRevoke': {
      const user = model.users[step.user] as ModelUser;
      const answer = await answerOf(
        await post(`/admin/users/${user.id}/revoke`, { headers: { authorization: `Bearer ${adminToken()}` } }),
      );
      expect(summary(answer)).toBe('204');
      user.revokedBeforeOrd = model.nextOrd();
      return;
    }
    case 'evict': {
      await evictUserObjects();
      return;
    }
  }
}

/** A fresh world: users registered, the first client of each signed in, the clock at a half second. */
async function freshModel(): Promise<Model> {
  testClock.set(Math.floor(Date.now() / 1000) * 1000 + 500);
  const users: ModelUser[] = [];
  for (let index = 0; index < USERS; index++) {
    const email = uniqueEmail('prop');
    const { id } = await register(email);
    users.push({ id, email, password: PASSWORD, revokedBeforeOrd: 0, lastLoginAt: 0, lastLoginOrd: 0, throttle: null, reuses: [] });
  }
  const clients: Client[] = Array.from({ length: USERS * CLIENTS_PER_USER }, (_, index) => ({
    user: Math.floor(index / CLIENTS_PER_USER),
    label: `client ${index % CLIENTS_PER_USER}`,
    held: null,
  }));
  const model = new Model(users, clients);
  for (let index = 0; index < USERS; index++) {
    const client = clients[index * CLIENTS_PER_USER] as Client;
    const user = users[index] as ModelUser;
    const token = await login(user.email, user.password, client.label);
    model.openSession(index, token.session_id);
    client.held = model.take(token.access_token, index, { gen: 1, sid: token.session_id });
  }
  return model;
}

/** Plays `steps` against a fresh world, checking the model after every one. */
async function play(steps: Step[]): Promise<void> {
  const model = await freshModel();
  try {
    for (const [index, step] of steps.entries()) {
      try {
        await runStep(model, step);
        await expectRowsMatch(model);
      } catch (error) {
        (error as Error).message = `step ${index} ${JSON.stringify(step)}: ${(error as Error).message}`;
        throw error;
      }
    }
  } finally {
    testClock.reset();
  }
}

/**
 * Hand-picked interleavings, played through the same model: the edges a random run reaches
 * rarely, and the shrunk counterexamples of past failures. Pool indices count tokens in the
 * order the run first saw them (0: user 0's first login, 1: user 1's first login, then on).
 */
const NAMED: Array<[string, Step[]]> = [
  [
    // Found by the random run: logout walks the decision table like a renewal.
    'a logout with a token a thief has already renewed past the grace window is reuse, not a logout',
    [
      { kind: 'replay', token: 0, copies: 1 }, // the thief renews client 0's token: pool 2, gen 2
      { kind: 'advance', seconds: 12 },
      { kind: 'logout', client: 0 }, // gen 1, superseded beyond the grace window: token_reused
      { kind: 'replay', token: 2, copies: 1 },
    ],
  ],
  [
    // Found by a random run: a thief's replay within the grace window, an operator's revocation of
    // another user, and the stale token shown again.
    'a replay inside the grace window, another user revoked, then the superseded token again',
    [
      { kind: 'renew', client: 1, copies: 1 },
      { kind: 'logout', client: 1 },
      { kind: 'replay', token: 0, copies: 1 },
      { kind: 'advance', seconds: 3 },
      { kind: 'renew', client: 0, copies: 1 },
      { kind: 'adminRevoke', user: 1 },
      { kind: 'replay', token: 0, copies: 1 },
      { kind: 'renew', client: 0, copies: 1 },
      { kind: 'replay', token: 0, copies: 1 },
    ],
  ],
  [
    // Found by the random run: the records place a generation-1 token at its session's login.
    'a replayed generation-1 token of a session that logged in just before the last login ends only that session',
    [
      { kind: 'login', client: 1, wrongPassword: false }, // user 0's second session, in the same second
      { kind: 'replay', token: 0, copies: 1 }, // the thief renews client 0's login token
      { kind: 'advance', seconds: 12 },
      { kind: 'renew', client: 0, copies: 1 }, // gen 1 again: reuse, scope "session"
      { kind: 'renew', client: 1, copies: 1 }, // the later login's session lives on
    ],
  ],
  [
    'a superseded token minted in the same second as, but before, the last login revokes every session (toward safety)',
    [
      { kind: 'renew', client: 0, copies: 1 }, // pool 2: user 0, gen 2, second 0
      { kind: 'login', client: 1, wrongPassword: false }, // pool 3: user 0's second session, second 0
      { kind: 'renew', client: 0, copies: 1 }, // pool 4: gen 3; pool 2 is superseded
      { kind: 'advance', seconds: 12 },
      { kind: 'replay', token: 2, copies: 1 },
      { kind: 'renew', client: 1, copies: 1 },
    ],
  ],
  [
    'a superseded token minted a second before the last login ends only its own session',
    [
      { kind: 'renew', client: 0, copies: 1 },
      { kind: 'advance', seconds: 3 },
      { kind: 'login', client: 1, wrongPassword: false },
      { kind: 'renew', client: 0, copies: 1 },
      { kind: 'advance', seconds: 12 },
      { kind: 'replay', token: 2, copies: 3 },
      { kind: 'renew', client: 1, copies: 2 },
    ],
  ],
  [
    'the thief renews first; the owner inside REUSE_GRACE gets the same token, past it is detected',
    [
      { kind: 'replay', token: 0, copies: 1 },
      { kind: 'advance', seconds: 9 },
      { kind: 'renew', client: 0, copies: 2 },
      { kind: 'renew', client: 0, copies: 1 },
      { kind: 'replay', token: 0, copies: 1 },
      { kind: 'advance', seconds: 12 },
      { kind: 'replay', token: 0, copies: 2 },
      { kind: 'renew', client: 0, copies: 1 },
    ],
  ],
  [
    'logout-all, a password change and an admin revocation in one second, each ordered exactly',
    [
      { kind: 'login', client: 1, wrongPassword: false },
      { kind: 'logoutAll', client: 1 },
      { kind: 'login', client: 1, wrongPassword: false },
      { kind: 'password', client: 1, wrongPassword: false },
      { kind: 'renew', client: 0, copies: 1 },
      { kind: 'renew', client: 1, copies: 1 },
      { kind: 'adminRevoke', user: 0 },
      { kind: 'renew', client: 1, copies: 1 },
      { kind: 'login', client: 0, wrongPassword: false },
      { kind: 'evict', user: 0 },
      { kind: 'renew', client: 0, copies: 3 },
    ],
  ],
  [
    'failed logins and failed password changes share the throttle: the sixth attempt is refused even with the right password, until LOGIN_LOCKOUT has passed',
    [
      { kind: 'login', client: 1, wrongPassword: true },
      { kind: 'password', client: 0, wrongPassword: true },
      { kind: 'login', client: 1, wrongPassword: true },
      { kind: 'login', client: 1, wrongPassword: true },
      { kind: 'password', client: 0, wrongPassword: true },
      { kind: 'login', client: 1, wrongPassword: false },
      { kind: 'advance', seconds: 300 },
      { kind: 'advance', seconds: 300 },
      { kind: 'advance', seconds: 300 },
      { kind: 'login', client: 1, wrongPassword: false },
      { kind: 'login', client: 1, wrongPassword: false },
    ],
  ],
  [
    'a token past TTL plus leeway is refused by strict routes but still renews',
    [
      { kind: 'advance', seconds: 300 },
      { kind: 'logoutAll', client: 2 },
      { kind: 'advance', seconds: 9 },
      { kind: 'password', client: 0, wrongPassword: false },
      { kind: 'renew', client: 0, copies: 1 },
      { kind: 'logoutAll', client: 0 },
    ],
  ],
  [
    // Shrunk from a failing run: evicting an object that is not running threw in the test itself.
    'evictions of an idle object, a failed password change, a renewal and a replay of the first token',
    [
      { kind: 'evict', user: 0 },
      { kind: 'evict', user: 0 },
      { kind: 'password', client: 0, wrongPassword: true },
      { kind: 'advance', seconds: 3 },
      { kind: 'renew', client: 0, copies: 1 },
      { kind: 'advance', seconds: 3 },
      { kind: 'replay', token: 0, copies: 2 },
      { kind: 'advance', seconds: 3 },
      { kind: 'advance', seconds: 3 },
    ],
  ],
];

describe('named interleavings, checked against the same model', () => {
  it.each(NAMED)('%s', async (_name, steps) => {
    await play(steps);
  }, 60_000);
});

describe('the service against the reference model', () => {
  it(
    'random interleavings of logins, renewals, replays, logouts, password changes and revocations',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(stepArb, { minLength: 8, maxLength: 28 }), (steps) => play(steps)),
        { numRuns: 12 },
      );
      // Not vacuous: renewals, bursts and replays were answered, some of them refused.
      expect([...seen.keys()]).toEqual(expect.arrayContaining(['single: 200', 'burst: 200', 'login: 200']));
      expect([...seen.keys()].some((key) => key.includes('401'))).toBe(true);
    },
    600_000,
  );
});
