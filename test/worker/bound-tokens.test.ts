/**
 * Security: a token bound to a key (`cnf.jkt`, RFC 9449) is never accepted by latchkey's routes
 * without a proof of that key. The token here is a genuine session's token with `cnf` added,
 * signed by the service's key (what a copy of a bound session's token would be): on every route
 * that reads a token, as a Bearer header and as the cookie, it is refused `invalid_dpop_proof`
 * with a DPoP challenge, and the session it names is untouched but for a `proof_failed` event.
 */
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { configFrom } from '../../src/config';
import { keyringFor } from '../../src/tokens/keys';
import { signAccessToken } from '../../src/tokens/sign';
import type { AccessTokenClaims } from '../../src/tokens/claims';
import { direct as call } from '../support/direct';
import { claimsOf, eventsOf, renewOk, signedInUser, type TokenBody } from '../support/helpers';

const ALLOWED_ORIGIN = 'http://localhost:8787';
const JKT = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs';

let user: Awaited<ReturnType<typeof signedInUser>>;
let bound: string;

beforeAll(async () => {
  user = await signedInUser('bound-tokens');
  const claims = claimsOf(user.token.access_token) as unknown as AccessTokenClaims;
  bound = await signAccessToken({ ...claims, cnf: { jkt: JKT } }, await keyringFor(configFrom(env).signingKeysJson));
});

const ROUTES: Array<[string, string, string]> = [
  ['GET', '/api/me', ''],
  ['GET', '/api/account', ''],
  ['POST', '/auth/renew', ''],
  ['POST', '/auth/logout', ''],
  ['POST', '/auth/logout-all', ''],
  ['GET', '/auth/sessions', ''],
  ['DELETE', '/auth/sessions/', 'sid'],
  ['GET', '/auth/events', ''],
];

describe('Security: a bound token without its proof', () => {
  it.each(ROUTES)('%s %s refuses it, as a Bearer header and as the cookie', async (method, path, suffix) => {
    const target = suffix === 'sid' ? `${path}${user.token.session_id}` : path;
    const presentations: Array<Record<string, string>> = [
      { authorization: `Bearer ${bound}` },
      { cookie: `latchkey_at=${bound}`, origin: ALLOWED_ORIGIN },
    ];
    for (const headers of presentations) {
      const response = await call(target, { method, headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_dpop_proof"/);
      expect(await response.json()).toMatchObject({ code: 'invalid_dpop_proof' });
    }
  });

  it('left the session untouched: its own token renews, and the refusals were logged as one coalesced event', async () => {
    const next: TokenBody = await renewOk(user.token.access_token);
    expect(claimsOf(next.access_token)).toMatchObject({ sid: user.token.session_id, gen: 2 });
    const events = await eventsOf(next.access_token);
    expect(events.map((event) => [event.type, (event.detail as { count?: number } | null)?.count])).toEqual([
      ['proof_failed', ROUTES.length * 2],
      ['login', undefined],
    ]);
  });
});
