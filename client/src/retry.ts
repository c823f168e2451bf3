/**
 * How the client answers a 503 on a request that hashes a password (login, register).
 *
 * latchkey answers 503 `temporarily_unavailable` with `Retry-After` when an isolate's share of time
 * for password hashing is taken (a login storm), or when its storage fails; in both cases nothing
 * was changed and the same request can be sent again. The client sends it again after the time it
 * was told, stretched by a random part of it so that a crowd told "1 second" at the same moment
 * does not come back at the same moment, a bounded number of times and within a bounded total
 * wait, so the person gets an answer either way. Nothing else is retried: a 429 says to wait far
 * longer than anyone waits on a form, and any other failure will not change by asking again.
 */
export interface PoliteRetry {
  /** Requests sent at most, the first one included. */
  attempts: number;
  /** The longest the waits between them may add up to, in milliseconds. */
  maxTotalWaitMs: number;
  /** Waits; a test moves a clock instead. */
  sleep?: (ms: number) => Promise<void>;
  /** A number in [0, 1) for the stretch; `Math.random` by default. */
  random?: () => number;
}

/** Three attempts within eight seconds: well inside the twenty a locked request may take. */
export const LOGIN_RETRY: Readonly<PoliteRetry> = { attempts: 3, maxTotalWaitMs: 8_000 };

/** Share of the announced wait added at random: up to half again. */
const STRETCH = 0.5;
/** A 503 without a usable Retry-After waits this long. */
const DEFAULT_WAIT_MS = 1_000;

/** `Retry-After` in milliseconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3); null if neither. */
export function retryAfterMs(header: string | null, nowMs = Date.now()): number | null {
  if (header === null) return null;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/**
 * Sends with `send()` and, while the answer is 503, sends again after the announced wait (see
 * above). Returns the last answer, whatever it is.
 */
export async function sendWithPoliteRetry(send: () => Promise<Response>, options: PoliteRetry = LOGIN_RETRY): Promise<Response> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  let waitedMs = 0;
  for (let attempt = 1; ; attempt++) {
    const response = await send();
    if (response.status !== 503 || attempt >= options.attempts) return response;
    const announcedMs = retryAfterMs(response.headers.get('retry-after')) ?? DEFAULT_WAIT_MS;
    const waitMs = Math.ceil(announcedMs * (1 + STRETCH * random()));
    if (waitedMs + waitMs > options.maxTotalWaitMs) return response;
    // This answer is dropped: its body is not needed, and an unread body holds the connection.
    await response.body?.cancel();
    await sleep(waitMs);
    waitedMs += waitMs;
  }
}
