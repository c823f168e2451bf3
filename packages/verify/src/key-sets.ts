import { now } from './clock.js';
import { readCappedBody } from './http/capped-body.js';
import type { PublicKeyEntry, VerificationKey } from './tokens/keys.js';
import { importPublicKeys, readPublicJwks } from './jwks.js';

/** Where a verifier finds the key a token's `kid` names. */
export interface KeySet {
  /** The key, or undefined if the set has none by that `kid`. Throws `KeysUnavailableError`. */
  lookup(kid: string): Promise<VerificationKey | undefined>;
}

/**
 * No usable key set is held (the JWKS was never fetched, or the last good copy is too old) and
 * fetching it failed or is not allowed yet. Not the token's fault: a 503, not a 401.
 */
export class KeysUnavailableError extends Error {
  /** Seconds until the next fetch is allowed. */
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super('latchkey verify: no usable JWKS');
    this.name = 'KeysUnavailableError';
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Keys given inline: parsed when the verifier is built, imported once on first use. */
export class InlineKeySet implements KeySet {
  private readonly entries: PublicKeyEntry[];
  private imported: Promise<Map<string, VerificationKey>> | undefined;

  constructor(jwks: unknown) {
    let document = jwks;
    if (typeof jwks === 'string') {
      try {
        document = JSON.parse(jwks);
      } catch {
        throw new TypeError('latchkey verify: inline keys are not valid JSON (expected a JWK set)');
      }
    }
    this.entries = readPublicJwks(document);
    if (this.entries.length === 0) {
      throw new TypeError('latchkey verify: the inline JWK set has no Ed25519 or P-256 signature key');
    }
  }

  async lookup(kid: string): Promise<VerificationKey | undefined> {
    this.imported ??= importPublicKeys(this.entries).then((keys) => {
      const refused = this.entries.find((entry) => !keys.has(entry.kid));
      if (refused) throw new TypeError(`latchkey verify: inline key ${JSON.stringify(refused.kid)} cannot be imported`);
      return keys;
    });
    return (await this.imported).get(kid);
  }
}

/** How a remote key set is fetched and cached. Durations in seconds. */
export interface RemoteKeySetOptions {
  /** The JWKS document's URL. */
  url: URL;
  /** Sends the request: global `fetch`, or a service binding's. */
  fetch: (request: Request) => Promise<Response>;
  /**
   * Never fetch more often than this, whatever the reason (cache expired, unknown `kid`, a failed
   * fetch). Default 30. Bounds what a stream of forged `kid`s can make one verifier send the issuer.
   */
  cooldownSeconds?: number;
  /**
   * Upper bound on how long a fetched set is trusted, whatever its `Cache-Control` says, and how
   * long a last good copy keeps serving while the issuer cannot be reached. Default 3600.
   */
  maxAgeSeconds?: number;
}

const DEFAULT_COOLDOWN_SECONDS = 30;
const DEFAULT_MAX_AGE_SECONDS = 3600;
/** Freshness when the response carries no `max-age`: latchkey's own header says 300. */
const HEURISTIC_MAX_AGE_SECONDS = 300;
const FETCH_TIMEOUT_MS = 5000;
const MAX_JWKS_BYTES = 64 * 1024;

/**
 * RFC 9111 §4.2: freshness lifetime from `max-age` (`no-store`/`no-cache`: none), minus the `Age`
 * a shared cache on the way reports.
 */
function freshnessSeconds(response: Response): number {
  const cacheControl = (response.headers.get('cache-control') ?? '').toLowerCase();
  let lifetime = HEURISTIC_MAX_AGE_SECONDS;
  if (/(?:^|,)\s*no-(?:store|cache)\b/.test(cacheControl)) lifetime = 0;
  else {
    const maxAge = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/.exec(cacheControl);
    if (maxAge) lifetime = Number(maxAge[1]);
  }
  const age = Number(response.headers.get('age') ?? '0');
  return Math.max(0, lifetime - (Number.isFinite(age) && age > 0 ? age : 0));
}

interface HeldKeys {
  keys: Map<string, VerificationKey>;
  /** Until then the set is fresh; after it, the next lookup refetches (cooldown permitting). */
  freshUntilMs: number;
  /** After this, the set is not used at all, even while the issuer is unreachable. */
  usableUntilMs: number;
}

/**
 * A JWKS fetched from the issuer (over the internet or a service binding) and cached.
 *
 * - Fresh for the response's `max-age` (bounded by `maxAgeSeconds`), then refetched on next use.
 * - A `kid` the held set lacks triggers one refetch, for a key the issuer published after it was
 *   fetched. Every fetch, for whatever reason, waits `cooldownSeconds` after the previous one, and
 *   concurrent lookups share one fetch in flight: a flood of tokens with forged `kid`s costs the
 *   issuer at most one request per cooldown per verifier.
 * - A failed fetch keeps the last good set in use (stale-if-error) for up to `maxAgeSeconds` past
 *   its freshness, so a brief outage of the issuer does not fail every request; a bound, because a
 *   retired key must not stay trusted forever where the issuer cannot be reached.
 */
export class RemoteKeySet implements KeySet {
  private held: HeldKeys | undefined;
  private lastFetchMs = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | undefined;
  private readonly cooldownMs: number;
  private readonly maxAgeMs: number;

  constructor(private readonly options: RemoteKeySetOptions) {
    const cooldown = options.cooldownSeconds ?? DEFAULT_COOLDOWN_SECONDS;
    const maxAge = options.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS;
    if (!(Number.isFinite(cooldown) && cooldown >= 1)) throw new TypeError('latchkey verify: cooldownSeconds must be at least 1');
    if (!(Number.isFinite(maxAge) && maxAge >= cooldown)) {
      throw new TypeError('latchkey verify: maxAgeSeconds must be at least cooldownSeconds');
    }
    this.cooldownMs = cooldown * 1000;
    this.maxAgeMs = maxAge * 1000;
  }

  async lookup(kid: string): Promise<VerificationKey | undefined> {
    if (!this.held || now() >= this.held.freshUntilMs) await this.refresh();
    const held = this.usable();
    const key = held.keys.get(kid);
    if (key) return key;
    await this.refresh();
    return this.usable().keys.get(kid);
  }

  private usable(): HeldKeys {
    if (!this.held || now() >= this.held.usableUntilMs) {
      const retryAfterMs = this.lastFetchMs + this.cooldownMs - now();
      throw new KeysUnavailableError(Math.max(1, Math.ceil(retryAfterMs / 1000)));
    }
    return this.held;
  }

  /** Fetches unless a fetch is in flight (then waits for it) or the cooldown has not passed. */
  private refresh(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    if (now() - this.lastFetchMs < this.cooldownMs) return Promise.resolve();
    this.lastFetchMs = now();
    this.inFlight = this.fetchKeys()
      .then((held) => {
        this.held = held;
      })
      .catch((error: unknown) => {
        // The previous set, if any, stays in use; the cooldown spaces out the retries.
        console.warn('latchkey verify: fetching the JWKS failed:', String(error));
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  private async fetchKeys(): Promise<HeldKeys> {
    const request = new Request(this.options.url, {
      headers: { accept: 'application/json' },
      // A redirect could lead anywhere; the JWKS is served where it is configured, or not at all.
      redirect: 'manual',
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    const response = await this.options.fetch(request);
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new Error(`JWKS answered ${response.status}`);
    }
    // Capped while it streams: an endpoint answering an endless body costs a bounded read, not memory.
    const bytes = await readCappedBody(response, MAX_JWKS_BYTES);
    if (bytes === undefined) throw new Error(`JWKS is larger than ${MAX_JWKS_BYTES} bytes`);
    const keys = await importPublicKeys(readPublicJwks(JSON.parse(new TextDecoder().decode(bytes))));
    if (keys.size === 0) throw new Error('JWKS holds no Ed25519 or P-256 signature key');
    const fetchedAt = now();
    const freshUntilMs = fetchedAt + Math.min(freshnessSeconds(response) * 1000, this.maxAgeMs);
    return { keys, freshUntilMs, usableUntilMs: freshUntilMs + this.maxAgeMs };
  }
}
