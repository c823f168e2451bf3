import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/errors';
import { HashBudget } from '../../src/passwords/budget';

/** A budget on a hand-moved clock whose waits are recorded, not slept. */
/** A quarter of the time for hashes assumed to take 125 ms: one turn every 500 ms. */
function budgetAt(startMs: number, policy = { share: 0.25, assumedHashMs: 125, burst: 2, maxWaitMs: 1000 }) {
  let nowMs = startMs;
  const waits: number[] = [];
  const budget = new HashBudget(
    policy,
    () => nowMs,
    async (ms) => {
      waits.push(ms);
    },
  );
  return {
    budget,
    waits,
    advance: (ms: number) => {
      nowMs += ms;
    },
    set: (ms: number) => {
      nowMs = ms;
    },
  };
}

async function refusal(promise: Promise<void>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

describe('the hash budget (GCRA)', () => {
  it('lets a burst go at once, spaces the next by the sustained interval, and refuses past the longest wait', async () => {
    const { budget, waits } = budgetAt(1_000_000);
    await budget.admit();
    await budget.admit();
    await budget.admit();
    await budget.admit();
    expect(waits).toEqual([500, 1000]);
    const refused = await refusal(budget.admit());
    expect(refused).toMatchObject({ code: 'temporarily_unavailable', status: 503 });
    // Admitted at 1.5 s from now; one wait of 1 s is allowed, so come back in 0.5 s.
    expect(refused.retryAfterSeconds).toBe(0.5);
    expect(budget.counts).toEqual({ admitted: 4, refused: 1, waitedMs: 1500 });
  });

  it('a refusal books nothing: the next request is judged as if it had not come', async () => {
    const { budget, waits, advance } = budgetAt(0);
    for (let i = 0; i < 4; i++) await budget.admit();
    await refusal(budget.admit());
    await refusal(budget.admit());
    // One interval on, the fifth is admitted at the longest wait: the refusals took no turn.
    advance(500);
    await budget.admit();
    expect(waits).toEqual([500, 1000, 1000]);
    expect(budget.counts).toMatchObject({ admitted: 5, refused: 2 });
  });

  it('refills at the sustained rate: after a quiet second, two go at once again', async () => {
    const { budget, waits, advance } = budgetAt(0);
    await budget.admit();
    await budget.admit();
    advance(1000);
    await budget.admit();
    await budget.admit();
    expect(waits).toEqual([]);
    await budget.admit();
    expect(waits).toEqual([500]);
  });

  it('admits several hashes of one request together (a password change hashes twice)', async () => {
    const { budget, waits } = budgetAt(0);
    await budget.admit(2);
    await budget.admit(2);
    expect(waits).toEqual([500]);
    expect(budget.counts.admitted).toBe(4);
  });

  it('charges unasked hashes without refusing them, and later admissions wait for them', async () => {
    const { budget, waits } = budgetAt(0);
    budget.charge(6);
    expect(budget.counts).toMatchObject({ admitted: 6, refused: 0 });
    await refusal(budget.admit());
    expect(waits).toEqual([]);
  });

  it('spaces turns by the timed cost of a hash: hashes that take longer are admitted less often', async () => {
    const { budget, waits } = budgetAt(0);
    budget.observe(250);
    expect(budget.intervalMs).toBe(1000);
    for (let i = 0; i < 3; i++) await budget.admit();
    expect(waits).toEqual([1000]);
    await refusal(budget.admit());
    // Slower still: turns further apart than the longest wait; one request may still queue.
    budget.observe(2250);
    expect(budget.intervalMs).toBe(3000);
    expect(budget.longestWaitMs).toBe(3000);
  });

  it('keeps a running estimate, ignores timings of zero, and never takes a hash for cheaper than assumed', () => {
    const { budget } = budgetAt(0);
    expect(budget.intervalMs).toBe(500);
    budget.observe(0);
    expect(budget.intervalMs).toBe(500);
    budget.observe(400);
    budget.observe(0);
    expect(budget.intervalMs).toBe(1600);
    budget.observe(200);
    // A quarter of the way from 400 ms to 200 ms.
    expect(budget.intervalMs).toBe(1400);
    for (let i = 0; i < 50; i++) budget.observe(10);
    expect(budget.intervalMs).toBe(500);
  });

  it('starts over when the clock steps back further than any schedule could reach', async () => {
    const clock = budgetAt(10_000_000);
    clock.budget.charge(8);
    clock.set(0);
    await clock.budget.admit();
    expect(clock.waits).toEqual([]);
  });

  it('refuses a policy that would admit nothing', () => {
    expect(() => new HashBudget({ share: 0, assumedHashMs: 125, burst: 1, maxWaitMs: 0 })).toThrow(RangeError);
    expect(() => new HashBudget({ share: 1.5, assumedHashMs: 125, burst: 1, maxWaitMs: 0 })).toThrow(RangeError);
    expect(() => new HashBudget({ share: 0.25, assumedHashMs: 125, burst: 0, maxWaitMs: 0 })).toThrow(RangeError);
  });
});
