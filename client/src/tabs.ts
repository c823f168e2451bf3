/**
 * Coordination between the tabs of one browser that use latchkey from the same origin.
 *
 * Every change of the shared sign-in (a login, a renewal, a sign-out) is made while holding one
 * Web Lock, and is numbered: `seq` grows by one per change. The tab that made change `seq` posts it
 * on a BroadcastChannel and keeps holding a marker lock named after `seq` until it hears of a newer
 * change. A tab that wants to renew takes the lock, then looks at the held markers: a marker newer
 * than what it knows means another tab renewed while it waited, and it waits for that message
 * instead of renewing. Lock state lives in one place (the browser), so this works whichever of the
 * lock grant and the message reaches the tab first; the message alone could not promise that.
 */

/** The shared state as one tab hands it to another. Times are relative: each tab has its own clock origin. */
export interface SharedState {
  sessionId: string;
  /** The access token in bearer mode; null in cookie mode, where the browser holds it. */
  token: string | null;
  /** Bound to the key the tabs share in IndexedDB (DPoP). */
  bound: boolean;
  /** Milliseconds until the token expires, measured by the sender just before posting. */
  remainingMs: number;
  /** The token's whole lifetime when it was issued, in milliseconds. */
  lifetimeMs: number;
  /** The sender's estimate of the server's clock (server-clock.ts), for a tab that has not heard from latchkey yet. */
  serverOffsetMs: number | null;
}

export type TabMessage =
  | { type: 'hello' }
  | { type: 'state'; seq: number; state: SharedState; byLogin: boolean }
  | { type: 'signedout'; seq: number; sessionId: string; code: string };

function isMessage(data: unknown): data is TabMessage {
  if (typeof data !== 'object' || data === null) return false;
  const message = data as { type?: unknown; seq?: unknown };
  if (message.type === 'hello') return true;
  return (message.type === 'state' || message.type === 'signedout') && typeof message.seq === 'number';
}

export class Tabs {
  private readonly channel: BroadcastChannel | null;
  private readonly lockName: string;
  private readonly markerPrefix: string;
  private releaseMarker: (() => void) | null = null;
  private readonly locks: LockManager | null;

  constructor(scope: string, onMessage: (message: TabMessage) => void) {
    this.lockName = `latchkey:${scope}`;
    this.markerPrefix = `latchkey:${scope}:seq:`;
    // Both need a secure context (https, or http://localhost); elsewhere each tab stands alone.
    this.locks = typeof navigator !== 'undefined' && navigator.locks ? navigator.locks : null;
    this.channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(this.lockName) : null;
    this.channel?.addEventListener('message', (event: MessageEvent) => {
      if (isMessage(event.data)) onMessage(event.data);
    });
  }

  /** Runs `work` while no other tab (and no other call in this tab) runs under the same lock. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    if (!this.locks) return work();
    // The lock is held until the promise `work` returns settles; request() resolves to its value.
    return this.locks.request(this.lockName, work) as unknown as Promise<T>;
  }

  /** The newest change any open tab has announced (0 when none is known). Call under the lock. */
  async newestAnnounced(): Promise<number> {
    if (!this.locks) return 0;
    const snapshot = await this.locks.query();
    let newest = 0;
    for (const lock of snapshot.held ?? []) {
      if (lock.name?.startsWith(this.markerPrefix)) {
        newest = Math.max(newest, Number(lock.name.slice(this.markerPrefix.length)) || 0);
      }
    }
    return newest;
  }

  /** Announces change `seq`: holds its marker (until a newer change is heard of), then posts it. */
  async announce(message: Exclude<TabMessage, { type: 'hello' }>): Promise<void> {
    if (this.locks) {
      const locks = this.locks;
      let release!: () => void;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      // Granted at once (nobody else uses this name); awaited so the marker is visible before the
      // caller lets go of the main lock.
      await new Promise<void>((granted) => {
        void locks.request(`${this.markerPrefix}${message.seq}`, () => {
          granted();
          return held;
        });
      });
      this.forgetMarker();
      this.releaseMarker = release;
    }
    this.post(message);
  }

  /** Lets go of this tab's marker once another tab announced something newer. */
  forgetMarker(): void {
    this.releaseMarker?.();
    this.releaseMarker = null;
  }

  post(message: TabMessage): void {
    this.channel?.postMessage(message);
  }

  close(): void {
    this.forgetMarker();
    this.channel?.close();
  }
}
