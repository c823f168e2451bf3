import { type PublicKeyCredentialCreationOptionsJSON, type PublicKeyCredentialRequestOptionsJSON, startRegistration } from '@simplewebauthn/browser';
import { RENEW_TIMEOUT_MS } from './timing';
import { failure, readProblem } from './errors';
import { assertPasskey, type PasskeyInfo, type PasskeyLoginOptions } from './passkeys';
import { sendWithPoliteRetry } from './retry';
import { makeProof } from './proof';
import { ProofKeys } from './proof-key';
import { ServerClock } from './server-clock';
import { type SharedState, type TabMessage, Tabs } from './tabs';

/**
 * How the browser holds the access token.
 * - `cookie`: in an HttpOnly cookie set by latchkey; page scripts never see it. Needs the page's
 *   origin in ALLOWED_ORIGINS and the page on the same site as latchkey.
 * - `bearer`: in this page's memory, sent as `Authorization: Bearer`; works from any allowed origin.
 */
export type Mode = 'cookie' | 'bearer';

export interface ClientOptions {
  /** Where latchkey is served, e.g. `https://auth.example.com`. */
  baseUrl: string;
  mode: Mode;
  /** A label for the sessions list (at most 64 characters), e.g. "Firefox on laptop". */
  clientLabel?: string;
}

export interface User {
  id: string;
  email: string;
  created_at: string;
}

export interface SessionInfo {
  id: string;
  client: string | null;
  created_at: string;
  last_renewed_at: string | null;
  current: boolean;
}

export interface SecurityEventInfo {
  type: string;
  at: string;
  session_id: string | null;
  detail: Record<string, unknown> | null;
}

/**
 * Why the client signed out: the server's `code` (`token_reused`, `session_revoked`,
 * `session_expired`, `session_inactive`, `invalid_token`, `missing_token`, `forbidden_origin`) or,
 * for a sign-out this browser asked for, `logout` or `logout_all`.
 */
export type SignedOutReason = string;

export interface LatchkeyEventMap {
  /**
   * Signed in: by `login()` or `loginWithPasskey()` in this tab (`login`, `passkey`), by
   * `resetPassword()` in this tab (`reset`), by another tab (`tab`), or found on `resume()`.
   */
  signedin: CustomEvent<{ sessionId: string; via: 'login' | 'passkey' | 'reset' | 'tab' | 'resume' }>;
  /** A new token, renewed by this tab or handed over by another one. */
  renewed: CustomEvent<{ sessionId: string; expiresInMs: number; byThisTab: boolean }>;
  /** Signed out, with the reason to tell the person. */
  signedout: CustomEvent<{ code: SignedOutReason }>;
}

interface TokenBody {
  access_token?: string;
  /** `DPoP` when the session is bound to this browser's key (RFC 9449 §5), else `Bearer`. */
  token_type?: string;
  expires_in: number;
  session_id: string;
}

/** The sign-in this tab holds. `expiresAt` is on this page's monotonic clock (`performance.now()`). */
interface Held {
  sessionId: string;
  token: string | null;
  /** Bound to this browser's key: every request to latchkey carries a DPoP proof. */
  bound: boolean;
  expiresAt: number;
  lifetimeMs: number;
}

/** Answers after which the session cannot go on: the client signs out with that code. */
const TERMINAL_CODES: ReadonlySet<string> = new Set([
  'invalid_token',
  'missing_token',
  'session_inactive',
  'session_revoked',
  'session_expired',
  'token_reused',
]);

/** Renew this share of the token's lifetime before it expires, within the bounds below. */
const RENEW_AHEAD_SHARE = 0.25;
const MIN_RENEW_AHEAD_MS = 500;
const MAX_RENEW_AHEAD_MS = 60_000;
/** Never schedule sooner than this after an answer, so no answer can make the client spin. */
const MIN_RENEW_DELAY_MS = 1_000;
/** How long to wait for another tab's hand-off that the held locks announce. */
const HANDOFF_TIMEOUT_MS = 2_000;
/** How long a new tab waits for an open one to hand over the sign-in. */
const HELLO_TIMEOUT_MS = 300;
const MAX_RETRY_DELAY_MS = 30_000;
/**
 * Requests made while holding the cross-tab lock give up after this long: a request that never
 * answers must not keep every tab from renewing.
 */
const LOCKED_REQUEST_TIMEOUT_MS = 20_000;
/**
 * A refused proof is sent again, once, when the answer's Date shows that the proof was dated this
 * far off the server's clock: the page's idea of that clock was wrong (no answer yet to learn it
 * from, or a device clock changed since), and now it is right.
 */
const PROOF_CLOCK_TOLERANCE_SECONDS = 5;

const JSON_HEADERS = { 'content-type': 'application/json' };

export interface LatchkeyClient {
  addEventListener<K extends keyof LatchkeyEventMap>(
    type: K,
    listener: (event: LatchkeyEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof LatchkeyEventMap>(
    type: K,
    listener: (event: LatchkeyEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/**
 * A latchkey client for one page. Tabs of the same origin using the same `baseUrl` and mode share
 * one sign-in: a login, renewal or sign-out in one tab reaches the others, and only one tab at a
 * time renews.
 *
 * Renewal is scheduled from `expires_in`, counted on the page's monotonic clock from when the
 * answer arrived, never from the token's `exp` against `Date.now()`: a device clock minutes off
 * neither makes the client renew in a loop nor lets the token lapse.
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the interface only narrows addEventListener to typed events; it declares no members the class lacks.
export class LatchkeyClient extends EventTarget {
  readonly mode: Mode;
  /** `baseUrl` without a trailing slash. */
  readonly baseUrl: string;
  readonly #origin: string;
  readonly #clientLabel: string | undefined;
  readonly #tabs: Tabs;
  readonly #keys: ProofKeys;
  readonly #clock = new ServerClock();
  #held: Held | null = null;
  /** Number of the newest shared change this tab knows of (see tabs.ts). */
  #seq = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flight: Promise<boolean> | null = null;
  #retryDelayMs = 0;
  #closed = false;
  readonly #changeListeners = new Set<() => void>();
  readonly #onVisible = () => {
    if (document.visibilityState === 'visible' && this.#held && this.#renewAt(this.#held) <= performance.now()) {
      void this.#renewShared(this.#seq);
    }
  };

  constructor(options: ClientOptions) {
    super();
    if (options.mode !== 'cookie' && options.mode !== 'bearer') {
      throw new TypeError(`latchkey: mode must be "cookie" or "bearer", got ${String(options.mode)}`);
    }
    const base = new URL(options.baseUrl);
    this.mode = options.mode;
    this.baseUrl = `${base.origin}${base.pathname.replace(/\/+$/, '')}`;
    this.#origin = base.origin;
    this.#clientLabel = options.clientLabel;
    this.#tabs = new Tabs(`${this.mode}:${this.baseUrl}`, (message) => this.#onMessage(message));
    this.#keys = new ProofKeys(`${this.mode}:${this.baseUrl}`);
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', this.#onVisible);
  }

  /** Whether this tab holds a sign-in (the token may be due for renewal). */
  get signedIn(): boolean {
    return this.#held !== null;
  }

  get sessionId(): string | null {
    return this.#held?.sessionId ?? null;
  }

  /** The current access token in bearer mode; always null in cookie mode, where scripts cannot read it. */
  get accessToken(): string | null {
    return this.#held?.token ?? null;
  }

  /** Milliseconds until the current token expires, on this page's monotonic clock; null when signed out. */
  get expiresInMs(): number | null {
    return this.#held ? Math.max(0, this.#held.expiresAt - performance.now()) : null;
  }

  /** Creates an account. Does not sign in. A 503 is retried after its Retry-After (retry.ts). */
  async register(email: string, password: string): Promise<User> {
    const response = await sendWithPoliteRetry(() =>
      fetch(this.#url('/auth/register'), {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ email, password }),
        credentials: 'omit',
      }),
    );
    if (!response.ok) await failure(response);
    return ((await response.json()) as { user: User }).user;
  }

  /**
   * Signs in (in every tab of this browser). A 503 (a login storm, or storage down) is retried
   * after its Retry-After, a few times (retry.ts). Throws `LatchkeyError` (`invalid_credentials`,
   * `too_many_attempts`, `email_unverified`, …).
   *
   * Every login asks to bind the session to this browser's key (a DPoP proof, RFC 9449 §5); the
   * key is made on the first login and kept until a sign-out. The answer says whether latchkey
   * bound it (`token_type: "DPoP"`); if not, the session works as a bearer session.
   */
  login(email: string, password: string): Promise<{ sessionId: string }> {
    return this.#signIn('/auth/login', { email, password }, 'login');
  }

  /**
   * Asks for a password-reset link to be mailed to `email`. Resolves the same whether or not an
   * account uses that address: latchkey does not say (nor does the time it takes).
   */
  async forgotPassword(email: string): Promise<void> {
    const response = await fetch(this.#url('/auth/password/forgot'), {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ email }),
      credentials: 'omit',
    });
    if (!response.ok) await failure(response);
  }

  /**
   * Sets a new password with the token of a reset link (the part after `#reset=` of the link at
   * your APP_URL), and signs in (in every tab), like `login()`. Every other session of the
   * account ends. Throws `LatchkeyError` `invalid_reset_token` for a link that is unknown, used,
   * expired or outdated by a later password change.
   */
  resetPassword(token: string, newPassword: string): Promise<{ sessionId: string }> {
    return this.#signIn('/auth/password/reset', { token, new_password: newPassword }, 'reset');
  }

  /**
   * Verifies the account's email with the token of a verification link (the part after
   * `#verify=`). When signed in, renews at once so the token carries `email_verified`. Throws
   * `LatchkeyError` `invalid_verification_token` for a link that is unknown, used or expired.
   */
  async verifyEmail(token: string): Promise<void> {
    const response = await fetch(this.#url('/auth/email/verify'), {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ token }),
      credentials: 'omit',
    });
    if (!response.ok) await failure(response);
    if (this.#held) await this.renew();
  }

  /**
   * Mails the signed-in user a new verification link. Throws `LatchkeyError`
   * `too_many_attempts` (see its Retry-After) or `email_already_verified`.
   */
  async resendVerification(): Promise<void> {
    const response = await this.fetch('/auth/email/resend', { method: 'POST' });
    if (!response.ok) await failure(response);
  }

  /**
   * A request that answers a token response (login, passkey, reset), made and shared like a login.
   * A passkey answer is never sent twice (its challenge is spent by the first attempt): no resend
   * after a 503, nor after a proof dated by a wrong clock.
   */
  #signIn(path: string, fields: Record<string, unknown>, via: 'login' | 'passkey' | 'reset'): Promise<{ sessionId: string }> {
    const resend = via !== 'passkey';
    return this.#tabs.exclusive(async () => {
      const url = this.#url(path);
      const key = await this.#keys.get(true);
      const signal = AbortSignal.timeout(LOCKED_REQUEST_TIMEOUT_MS);
      const body = JSON.stringify({ ...fields, client: this.#clientLabel, mode: this.mode });
      let response: Response | undefined;
      for (let attempt = 0; attempt < (resend ? 2 : 1) && response === undefined; attempt++) {
        let iatSeconds = this.#clock.nowSeconds();
        // A cross-origin answer's Set-Cookie is only stored for a request made with credentials.
        const credentials = this.mode === 'cookie' ? 'include' : 'omit';
        // Each send, retries after a 503 included, carries a proof of its own (a proof is used once).
        const send = async () => {
          iatSeconds = this.#clock.nowSeconds();
          const headers = new Headers(JSON_HEADERS);
          if (key) headers.set('dpop', await makeProof(key, { method: 'POST', url, iatSeconds }));
          return fetch(url, { method: 'POST', headers, body, credentials, signal });
        };
        const answer = resend ? await sendWithPoliteRetry(send) : await send();
        this.#clock.observe(answer, performance.now());
        if (attempt === 0 && (await this.#clockWasOff(answer, iatSeconds))) continue;
        response = answer;
      }
      if (!response) throw new TypeError(`latchkey: no answer from ${path}`);
      const arrivedAt = performance.now();
      if (!response.ok) await failure(response);
      const held = this.#heldFrom((await response.json()) as TokenBody, arrivedAt);
      await this.#publishState(held, true);
      this.#emit('signedin', { sessionId: held.sessionId, via });
      return { sessionId: held.sessionId };
    });
  }


  /**
   * Signs in with a passkey (in every tab of this browser): no email is typed, the authenticator
   * offers the passkeys it holds for this site. With `conditional: true` they are offered in the
   * autofill of the page's `<input autocomplete="username webauthn">`, and the promise settles
   * when the person picks one; pass a `signal` to stop waiting. Throws the browser's
   * `WebAuthnError` when the person cancels, or `LatchkeyError` (`invalid_credentials`) when
   * latchkey refuses the answer.
   */
  async loginWithPasskey(options: PasskeyLoginOptions = {}): Promise<{ sessionId: string }> {
    for (;;) {
      options.signal?.throwIfAborted();
      const optionsResponse = await fetch(this.#url('/auth/passkeys/login/options'), {
        method: 'POST',
        credentials: 'omit',
        signal: options.signal,
      });
      if (!optionsResponse.ok) await failure(optionsResponse);
      const optionsJSON = (await optionsResponse.json()) as PublicKeyCredentialRequestOptionsJSON;
      // The ceremony runs outside the cross-tab lock: the person may take minutes, and the other
      // tabs must go on renewing meanwhile.
      const response = await assertPasskey(optionsJSON, options);
      if (response === null) continue;
      return this.#signIn('/auth/passkeys/login', { response }, 'passkey');
    }
  }

  /**
   * Creates a passkey for the signed-in user and registers it, labelled `name` in the list. Throws
   * the browser's `WebAuthnError` when the person cancels or the authenticator already holds a
   * passkey of this account, `LatchkeyError` (`passkey_rejected`) when latchkey refuses it.
   */
  async registerPasskey(name?: string): Promise<PasskeyInfo> {
    const optionsResponse = await this.fetch('/auth/passkeys/register/options', { method: 'POST' });
    if (!optionsResponse.ok) await failure(optionsResponse);
    const optionsJSON = (await optionsResponse.json()) as PublicKeyCredentialCreationOptionsJSON;
    const response = await startRegistration({ optionsJSON });
    const registered = await this.fetch('/auth/passkeys/register', {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ response, name }),
    });
    if (!registered.ok) await failure(registered);
    return ((await registered.json()) as { passkey: PasskeyInfo }).passkey;
  }

  /** The signed-in user's passkeys, newest first. */
  async passkeys(): Promise<PasskeyInfo[]> {
    const response = await this.fetch('/auth/passkeys');
    if (!response.ok) await failure(response);
    return ((await response.json()) as { passkeys: PasskeyInfo[] }).passkeys;
  }

  /** Deletes one of the signed-in user's passkeys. Sessions opened with it go on. */
  async removePasskey(passkeyId: string): Promise<void> {
    const response = await this.fetch(`/auth/passkeys/${encodeURIComponent(passkeyId)}`, { method: 'DELETE' });
    if (!response.ok) await failure(response);
  }

  /**
   * Picks up an existing sign-in: from another open tab, or in cookie mode from the cookie (by
   * renewing it, which also tells how long the token lives). True when signed in afterwards.
   */
  async resume(): Promise<boolean> {
    if (this.#held) return true;
    this.#tabs.post({ type: 'hello' });
    await this.#waitForChange(() => this.#held !== null, HELLO_TIMEOUT_MS);
    if (this.#held) return true;
    if (this.mode === 'cookie') return this.#renewShared(this.#seq);
    return false;
  }

  /** Renews now (single-flight across tabs). True when signed in afterwards. */
  renew(): Promise<boolean> {
    return this.#renewShared(this.#seq);
  }

  /** Ends this session, here and in the other tabs. The local sign-out happens even if the request fails. */
  async logout(): Promise<void> {
    await this.#tabs.exclusive(async () => {
      if (!this.#held && this.mode === 'bearer') return;
      try {
        // A 401 means the session was already over: nothing left to do.
        await this.#send(new Request(this.#url('/auth/logout'), { method: 'POST', signal: AbortSignal.timeout(LOCKED_REQUEST_TIMEOUT_MS) }));
      } finally {
        await this.#publishSignedOut('logout');
      }
    });
  }

  /** Ends every session of the user, on every device. */
  async logoutAll(): Promise<void> {
    const response = await this.fetch('/auth/logout-all', { method: 'POST' });
    if (!response.ok) await failure(response);
    await this.#tabs.exclusive(() => this.#publishSignedOut('logout_all'));
  }

  /** The user's live sessions. */
  async sessions(): Promise<SessionInfo[]> {
    const response = await this.fetch('/auth/sessions');
    if (!response.ok) await failure(response);
    return ((await response.json()) as { sessions: SessionInfo[] }).sessions;
  }

  /** Revokes one of the user's sessions; revoking the current one signs out here. */
  async revokeSession(sessionId: string): Promise<void> {
    const response = await this.fetch(`/auth/sessions/${encodeURIComponent(sessionId)}`, { method: 'DELETE' });
    if (!response.ok) await failure(response);
    if (sessionId === this.#held?.sessionId) await this.#tabs.exclusive(() => this.#publishSignedOut('logout'));
  }

  /** The user's security events, newest first. */
  async events(): Promise<SecurityEventInfo[]> {
    const response = await this.fetch('/auth/events');
    if (!response.ok) await failure(response);
    return ((await response.json()) as { events: SecurityEventInfo[] }).events;
  }

  /**
   * `fetch` to latchkey (or the API behind the same origin) with the credential attached. A path
   * is resolved against `baseUrl`. A token known to be expired is renewed first; an answer of
   * 401 `token_expired` is renewed and retried once. Any other URL is refused rather than sent a
   * token.
   */
  async fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const request = new Request(this.#resolve(input), init);
    if (new URL(request.url).origin !== this.#origin) {
      throw new TypeError(`latchkey: client.fetch sends credentials only to ${this.#origin}`);
    }
    if (this.#held && this.#held.expiresAt <= performance.now()) await this.#renewShared(this.#seq);
    const seqSent = this.#seq;
    const response = await this.#send(request.clone());
    if (response.status !== 401) return response;
    const code = (await readProblem(response))?.code;
    if (code === 'token_expired' && (await this.#renewShared(seqSent))) {
      const retried = await this.#send(request);
      await this.#settle(retried, this.#seq);
      return retried;
    }
    await this.#settle(response, seqSent);
    return response;
  }

  /** Stops timers and leaves the other tabs; the sign-in itself is left as it is. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#tabs.close();
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', this.#onVisible);
  }

  #url(path: string): string {
    return `${this.baseUrl}${path}`;
  }

  #resolve(input: RequestInfo | URL): RequestInfo | URL {
    if (typeof input !== 'string' || /^[a-z][a-z\d+.-]*:/i.test(input)) return input;
    return this.#url(input.startsWith('/') ? input : `/${input}`);
  }

  /**
   * The request with this mode's credential: the token in the Authorization header (under the
   * `DPoP` scheme when the session is bound), or the cookie; and for a bound session a DPoP proof
   * for this very method and URL, dated `iatSeconds` by the server's clock. In cookie mode before
   * anything is held (resuming from the cookie) a proof goes along whenever a key is stored: the
   * cookie's session may be bound, and latchkey ignores a proof an unbound session does not need.
   */
  async #credentialed(request: Request, iatSeconds: number): Promise<Request> {
    const headers = new Headers(request.headers);
    const token = this.mode === 'bearer' ? (this.#held?.token ?? null) : null;
    const bound = this.#held ? this.#held.bound : this.mode === 'cookie';
    if (token) headers.set('authorization', `${this.#held?.bound ? 'DPoP' : 'Bearer'} ${token}`);
    if (bound) {
      const key = await this.#keys.get(false);
      if (key) {
        const proof = await makeProof(key, { method: request.method, url: request.url, iatSeconds, accessToken: token ?? undefined });
        headers.set('dpop', proof);
      }
    }
    return new Request(request, { headers, credentials: this.mode === 'cookie' ? 'include' : 'omit' });
  }

  /** Sends with the credential; once more, with a proof dated right, if latchkey refused one dated by a wrong clock. */
  async #send(request: Request): Promise<Response> {
    const iatSeconds = this.#clock.nowSeconds();
    const response = await fetch(await this.#credentialed(request.clone(), iatSeconds));
    this.#clock.observe(response, performance.now());
    if (!(await this.#clockWasOff(response, iatSeconds))) return response;
    const retried = await fetch(await this.#credentialed(request, this.#clock.nowSeconds()));
    this.#clock.observe(retried, performance.now());
    return retried;
  }

  /** A refusal of a proof that was dated more than a few seconds off what the answer says the server's time is. */
  async #clockWasOff(response: Response, iatSeconds: number): Promise<boolean> {
    if (response.status !== 400 && response.status !== 401) return false;
    if ((await readProblem(response))?.code !== 'invalid_dpop_proof') return false;
    return Math.abs(this.#clock.nowSeconds() - iatSeconds) > PROOF_CLOCK_TOLERANCE_SECONDS;
  }

  /** Signs out on an answer saying the session is over, unless the sign-in changed since it was sent. */
  async #settle(response: Response, seqSent: number): Promise<void> {
    if (response.status !== 401 || !this.#held || this.#seq !== seqSent) return;
    const code = (await readProblem(response))?.code;
    if (code === undefined || !TERMINAL_CODES.has(code)) return;
    await this.#tabs.exclusive(async () => {
      if (this.#seq === seqSent) await this.#publishSignedOut(code);
    });
  }

  /** One renewal at a time in this tab; the lock makes it one at a time across tabs. */
  #renewShared(seqSeen: number): Promise<boolean> {
    if (this.#flight) return this.#flight;
    const flight = this.#tabs.exclusive(() => this.#renewUnderLock(seqSeen));
    this.#flight = flight;
    const clear = () => {
      if (this.#flight === flight) this.#flight = null;
    };
    flight.then(clear, clear);
    return flight;
  }

  async #renewUnderLock(seqSeen: number): Promise<boolean> {
    const announced = await this.#tabs.newestAnnounced();
    if (announced > this.#seq) await this.#waitForChange(() => this.#seq >= announced, HANDOFF_TIMEOUT_MS);
    // Another tab renewed, signed in or out since this renewal was asked for: its answer stands.
    if (this.#seq !== seqSeen) return this.#held !== null;
    const before = this.#held;
    if (!before && this.mode === 'bearer') return false;
    let response: Response;
    let held: Held | undefined;
    try {
      response = await this.#send(
        new Request(this.#url('/auth/renew'), { method: 'POST', signal: AbortSignal.timeout(RENEW_TIMEOUT_MS) }),
      );
      const arrivedAt = performance.now();
      if (response.ok) held = this.#heldFrom((await response.json()) as TokenBody, arrivedAt);
    } catch {
      // No answer, or an unreadable one: nothing is known to have changed. Try again later.
      this.#retryLater(0);
      return before !== null;
    }
    if (held) {
      await this.#publishState(held, false);
      if (before) this.#emit('renewed', { sessionId: held.sessionId, expiresInMs: held.lifetimeMs, byThisTab: true });
      else this.#emit('signedin', { sessionId: held.sessionId, via: 'resume' });
      return true;
    }
    if (response.status === 401 || response.status === 403) {
      await this.#publishSignedOut((await readProblem(response))?.code ?? `http_${response.status}`);
      return false;
    }
    // 503 and the like: nothing changed on the server; try again, as told or with back-off.
    this.#retryLater(Number(response.headers.get('retry-after')) || 0);
    return before !== null;
  }

  #heldFrom(body: TokenBody, arrivedAt: number): Held {
    if (this.mode === 'bearer' && typeof body.access_token !== 'string') {
      throw new TypeError('latchkey: the token response has no access_token');
    }
    const lifetimeMs = Math.max(0, body.expires_in * 1000);
    return {
      sessionId: body.session_id,
      token: this.mode === 'bearer' ? (body.access_token ?? null) : null,
      bound: body.token_type === 'DPoP',
      expiresAt: arrivedAt + lifetimeMs,
      lifetimeMs,
    };
  }

  #shared(held: Held): SharedState {
    return {
      sessionId: held.sessionId,
      token: held.token,
      bound: held.bound,
      remainingMs: held.expiresAt - performance.now(),
      lifetimeMs: held.lifetimeMs,
      serverOffsetMs: this.#clock.offsetMs,
    };
  }

  /** Makes `held` the shared sign-in: numbered, announced to the other tabs. Call under the lock. */
  async #publishState(held: Held, byLogin: boolean): Promise<void> {
    this.#seq = Math.max(this.#seq, await this.#tabs.newestAnnounced()) + 1;
    this.#hold(held);
    await this.#tabs.announce({ type: 'state', seq: this.#seq, state: this.#shared(held), byLogin });
    this.#changed();
  }

  /** Signs out here and in the other tabs, and forgets the key the session was bound to. Call under the lock. */
  async #publishSignedOut(code: SignedOutReason): Promise<void> {
    await this.#keys.forget();
    const sessionId = this.#held?.sessionId;
    if (sessionId === undefined) return;
    this.#seq = Math.max(this.#seq, await this.#tabs.newestAnnounced()) + 1;
    this.#drop(code);
    await this.#tabs.announce({ type: 'signedout', seq: this.#seq, sessionId, code });
    this.#changed();
  }

  #onMessage(message: TabMessage): void {
    if (message.type === 'hello') {
      if (this.#held) this.#tabs.post({ type: 'state', seq: this.#seq, state: this.#shared(this.#held), byLogin: false });
      return;
    }
    if (message.seq <= this.#seq) return;
    this.#seq = message.seq;
    this.#tabs.forgetMarker();
    if (message.type === 'state') {
      const previous = this.#held?.sessionId;
      const { state } = message;
      // A new session may be bound to a key another tab just made: read the stored one afresh.
      if (previous !== state.sessionId) this.#keys.invalidate();
      this.#clock.adopt(state.serverOffsetMs ?? null);
      this.#hold({
        sessionId: state.sessionId,
        token: state.token,
        bound: state.bound === true,
        expiresAt: performance.now() + state.remainingMs,
        lifetimeMs: state.lifetimeMs,
      });
      if (previous === state.sessionId && !message.byLogin) {
        this.#emit('renewed', { sessionId: state.sessionId, expiresInMs: state.remainingMs, byThisTab: false });
      } else {
        this.#emit('signedin', { sessionId: state.sessionId, via: 'tab' });
      }
    } else if (this.#held?.sessionId === message.sessionId) {
      this.#keys.invalidate();
      this.#drop(message.code);
    }
    this.#changed();
  }

  #hold(held: Held): void {
    this.#held = held;
    this.#retryDelayMs = 0;
    this.#schedule();
  }

  #drop(code: SignedOutReason): void {
    if (!this.#held) return;
    this.#held = null;
    clearTimeout(this.#timer);
    this.#emit('signedout', { code });
  }

  #renewAt(held: Held): number {
    const ahead = Math.min(MAX_RENEW_AHEAD_MS, Math.max(MIN_RENEW_AHEAD_MS, held.lifetimeMs * RENEW_AHEAD_SHARE));
    return held.expiresAt - ahead;
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (!this.#held || this.#closed) return;
    const delay = Math.max(MIN_RENEW_DELAY_MS, this.#renewAt(this.#held) - performance.now());
    this.#timer = setTimeout(() => void this.#renewShared(this.#seq), delay);
  }

  #retryLater(retryAfterSeconds: number): void {
    if (!this.#held || this.#closed) return;
    this.#retryDelayMs = Math.min(MAX_RETRY_DELAY_MS, Math.max(1_000, this.#retryDelayMs * 2));
    clearTimeout(this.#timer);
    const delay = Math.max(this.#retryDelayMs, retryAfterSeconds * 1000);
    this.#timer = setTimeout(() => void this.#renewShared(this.#seq), delay);
  }

  #changed(): void {
    for (const listener of [...this.#changeListeners]) listener();
  }

  /** Resolves once `done()` holds after a change, or after `timeoutMs`. */
  #waitForChange(done: () => boolean, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.#changeListeners.delete(check);
        resolve();
      };
      const check = () => {
        if (done()) finish();
      };
      const timer = setTimeout(finish, timeoutMs);
      this.#changeListeners.add(check);
    });
  }

  #emit<K extends keyof LatchkeyEventMap>(type: K, detail: LatchkeyEventMap[K]['detail']): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** Creates a client for the latchkey served at `baseUrl`. */
export function createClient(options: ClientOptions): LatchkeyClient {
  return new LatchkeyClient(options);
}
