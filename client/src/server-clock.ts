/**
 * The server's clock as this page knows it. DPoP proofs carry their creation time (`iat`) and
 * latchkey judges it by its own clock, within about a minute; a device clock can be off by hours.
 * So the page never dates a proof by `Date.now()` once it has heard from latchkey: it takes the
 * `Date` of latchkey's latest answer and carries it forward on the monotonic clock
 * (`performance.timeOrigin + performance.now()`, which the device's wall clock cannot move).
 *
 * `Date` has whole seconds and is stamped before the answer travels, so the estimate is up to a
 * second plus the network's delay behind: on the side latchkey's window is wide (a minute back,
 * a few seconds ahead).
 */
export class ServerClock {
  /** Server time minus monotonic time, in milliseconds; null until latchkey has answered once. */
  #offsetMs: number | null = null;

  /** Learns the server's time from an answer of latchkey's that arrived at `arrivedAt` (`performance.now()`). */
  observe(response: Response, arrivedAt: number): void {
    const date = response.headers.get('date');
    if (date === null) return;
    const serverMs = Date.parse(date);
    if (Number.isNaN(serverMs)) return;
    this.#offsetMs = serverMs - (performance.timeOrigin + arrivedAt);
  }

  /** The offset to hand to another tab, whose monotonic clock counts from its own origin but runs alike. */
  get offsetMs(): number | null {
    return this.#offsetMs;
  }

  /** Takes another tab's offset, unless this tab has heard from latchkey itself. */
  adopt(offsetMs: number | null): void {
    if (this.#offsetMs === null && offsetMs !== null && Number.isFinite(offsetMs)) this.#offsetMs = offsetMs;
  }

  /** The server's time now, in whole seconds; the device's until latchkey has answered once. */
  nowSeconds(): number {
    const ms = this.#offsetMs === null ? Date.now() : performance.timeOrigin + performance.now() + this.#offsetMs;
    return Math.floor(ms / 1000);
  }
}
