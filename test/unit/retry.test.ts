import { describe, expect, it } from 'vitest';
import { retryAfterMs, sendWithPoliteRetry } from '../../client/src/retry';

function answer(status: number, retryAfter?: string): Response {
  return new Response(null, { status, headers: retryAfter === undefined ? {} : { 'retry-after': retryAfter } });
}

/** A `send` that answers from a script, and the waits the client asked for. */
function scripted(...answers: Response[]) {
  const slept: number[] = [];
  let sent = 0;
  return {
    slept,
    sent: () => sent,
    send: async () => {
      const next = answers[sent] ?? answers[answers.length - 1];
      sent += 1;
      return next as Response;
    },
    sleep: async (ms: number) => {
      slept.push(ms);
    },
  };
}

describe('the browser client: polite retries of a 503', () => {
  it('waits the announced time, stretched by up to half of it at random, and sends again', async () => {
    const script = scripted(answer(503, '2'), answer(200));
    const response = await sendWithPoliteRetry(script.send, { attempts: 3, maxTotalWaitMs: 10_000, sleep: script.sleep, random: () => 0.5 });
    expect(response.status).toBe(200);
    expect(script.slept).toEqual([2500]);
  });

  it('gives up after the attempts it is allowed, with the last answer', async () => {
    const script = scripted(answer(503, '1'));
    const response = await sendWithPoliteRetry(script.send, { attempts: 3, maxTotalWaitMs: 10_000, sleep: script.sleep, random: () => 0 });
    expect(response.status).toBe(503);
    expect(script.sent()).toBe(3);
    expect(script.slept).toEqual([1000, 1000]);
  });

  it('does not wait past its total: a far Retry-After is answered at once', async () => {
    const script = scripted(answer(503, '30'));
    const response = await sendWithPoliteRetry(script.send, { attempts: 3, maxTotalWaitMs: 8_000, sleep: script.sleep, random: () => 0 });
    expect(response.status).toBe(503);
    expect(script.sent()).toBe(1);
    expect(script.slept).toEqual([]);
  });

  it.each([200, 401, 429, 500])('sends a %i once', async (status) => {
    const script = scripted(answer(status, '1'));
    await sendWithPoliteRetry(script.send, { attempts: 3, maxTotalWaitMs: 8_000, sleep: script.sleep });
    expect(script.sent()).toBe(1);
  });

  it('reads Retry-After as seconds or as an HTTP date, and waits a second when it is missing or unreadable', async () => {
    expect(retryAfterMs('3')).toBe(3000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:05 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(5000);
    expect(retryAfterMs('soon')).toBeNull();
    expect(retryAfterMs(null)).toBeNull();
    const script = scripted(answer(503), answer(200));
    await sendWithPoliteRetry(script.send, { attempts: 3, maxTotalWaitMs: 8_000, sleep: script.sleep, random: () => 0 });
    expect(script.slept).toEqual([1000]);
  });
});
