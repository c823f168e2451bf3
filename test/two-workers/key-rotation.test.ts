/**
 * docs/KEY-ROTATION.md end to end. `latchkey-rotation-N` is latchkey deployed with SIGNING_KEYS as
 * `npm run keys` left it (vitest.config.ts runs the commands): 0 before, 1 after `add`, 2 after
 * `promote`, 3 after `retire <old kid>`. They share one D1, as successive deployments do, and a
 * resource server's verifier follows whichever deployment is current.
 */
import { describe, expect, it } from 'vitest';
import { createVerifier } from '@latchkey/verify';
import { testClock } from '../../src/clock';
import { expectProblem, kidOf, renewAt, send, signIn, workers } from './workers';

const PHASES = [workers.ROTATION_0, workers.ROTATION_1, workers.ROTATION_2, workers.ROTATION_3];
const OLD = workers.ROTATION_OLD_KID;
const NEW = workers.ROTATION_NEW_KID;

async function publishedKids(latchkey: Fetcher): Promise<string[]> {
  const response = await send(latchkey, '/.well-known/jwks.json');
  return ((await response.json()) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid);
}

/** A resource server's verifier over the JWKS of the deployment `current()` names; counts its fetches. */
function followingVerifier(current: () => Fetcher) {
  const counter = { fetches: 0 };
  const verifier = createVerifier({
    issuer: workers.ISSUER,
    audience: 'latchkey',
    keys: {
      jwksUrl: `${workers.ISSUER}/.well-known/jwks.json`,
      fetch: (request) => {
        counter.fetches += 1;
        return current().fetch(request);
      },
    },
  });
  return { verifier, counter };
}

describe('key rotation', () => {
  it('publishes the next key before it signs, swaps signer and verifier on promote, drops the old key on retire', async () => {
    expect(await publishedKids(PHASES[0] as Fetcher)).toEqual([OLD]);
    expect(await publishedKids(PHASES[1] as Fetcher)).toEqual([OLD, NEW]);
    expect(await publishedKids(PHASES[2] as Fetcher)).toEqual([NEW, OLD]);
    expect(await publishedKids(PHASES[3] as Fetcher)).toEqual([NEW]);
  });

  it('signs nobody out: old-key tokens keep verifying and renewing through the overlap', async () => {
    const [before, added, promoted, retired] = PHASES as [Fetcher, Fetcher, Fetcher, Fetcher];
    const active = await signIn(before);
    const idle = await signIn(before);
    expect(kidOf(active.token)).toBe(OLD);

    // `add`: the new key is published, the old one still signs. A resource server refreshes its
    // copy of the JWKS during the wait before promotion.
    let current = added;
    const { verifier, counter } = followingVerifier(() => current);
    expect((await verifier.verify(active.token)).ok).toBe(true);
    const activeAfterAdd = await renewAt(added, active.token);
    expect(kidOf(activeAfterAdd)).toBe(OLD);

    // `promote`: the new key signs. Old-key tokens still verify, and renew into new-key tokens,
    // which the resource server verifies without fetching anything: it already holds the key.
    current = promoted;
    expect((await verifier.verify(activeAfterAdd)).ok).toBe(true);
    const activeAfterPromote = await renewAt(promoted, activeAfterAdd);
    expect(kidOf(activeAfterPromote)).toBe(NEW);
    expect((await verifier.verify(activeAfterPromote)).ok).toBe(true);
    const idleAfterPromote = await renewAt(promoted, idle.token);
    expect(kidOf(idleAfterPromote)).toBe(NEW);
    expect(counter.fetches).toBe(1);

    // `retire`: the new key's sessions go on renewing and verifying.
    current = retired;
    const activeAfterRetire = await renewAt(retired, activeAfterPromote);
    expect(kidOf(activeAfterRetire)).toBe(NEW);
    expect((await verifier.verify(activeAfterRetire)).ok).toBe(true);
    expect(kidOf(await renewAt(retired, idleAfterPromote))).toBe(NEW);
  });

  it('a verifier that has not seen the next key fetches it on first sight, at most once per cooldown', async () => {
    const [before, , promoted] = PHASES as [Fetcher, Fetcher, Fetcher, Fetcher];
    let current = before;
    const { verifier, counter } = followingVerifier(() => current);
    const { token } = await signIn(before);
    expect((await verifier.verify(token)).ok).toBe(true);
    current = promoted;
    const newKeyToken = await renewAt(promoted, token);
    // Promoted right after `add`, before this verifier refreshed: refused until its cooldown passes.
    expect(await verifier.verify(newKeyToken)).toEqual({ ok: false, code: 'invalid_token' });
    testClock.advance(30_000);
    expect((await verifier.verify(newKeyToken)).ok).toBe(true);
    expect(counter.fetches).toBe(2);
  });

  it('retiring too early signs out a session idle since before the promotion: the wait in KEY-ROTATION.md', async () => {
    const [before, , promoted, retired] = PHASES as [Fetcher, Fetcher, Fetcher, Fetcher];
    const renewedDuringOverlap = await signIn(before);
    const idle = await signIn(before);
    const renewed = await renewAt(promoted, renewedDuringOverlap.token);
    expect(kidOf(await renewAt(retired, renewed))).toBe(NEW);
    // Idle for minutes only, well within RENEW_WINDOW, but its token carries the retired key.
    await expectProblem(await send(retired, '/auth/renew', { method: 'POST', token: idle.token }), 401, 'invalid_token');
  });
});
