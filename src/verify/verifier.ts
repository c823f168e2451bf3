import { now } from '../clock';
import { ApiError, problemResponse } from '../errors';
import { bearerToken } from '../http/credentials';
import type { AccessTokenClaims } from '../tokens/claims';
import { verifyAccessToken } from '../tokens/verify';
import type { JwkSet } from './jwks';
import { InlineKeySet, type KeySet, KeysUnavailableError, RemoteKeySet } from './key-sets';
import { SESSION_FAULTS, type SessionFault, type SessionStatus } from './session-status';

/**
 * A service binding to the latchkey Worker's `LatchkeyInternal` entrypoint (`entrypoint =
 * "LatchkeyInternal"` in the binding): `fetch` serves latchkey's public routes, the JWKS among
 * them; `sessionStatus` answers strict checks. Reachable only from Workers of the same account
 * that declare the binding, never from the internet.
 */
export interface LatchkeyBinding {
  fetch(request: Request): Promise<Response>;
  sessionStatus(token: string): Promise<SessionStatus>;
}

/** Where the verifier gets latchkey's public keys. Exactly one of the three. */
export type KeySource =
  /** The issuer's JWKS over HTTPS (plain HTTP only for loopback hosts), fetched and cached. */
  | { jwksUrl: string | URL; fetch?: (request: Request) => Promise<Response> }
  /** A service binding to latchkey: the JWKS through it, cached the same way; enables strict checks. */
  | { binding: LatchkeyBinding }
  /** The public JWK set itself (a JSON string or object): no fetching; rotation means redeploying. */
  | { jwks: string | JwkSet };

export interface VerifierOptions {
  /** The `iss` latchkey puts in its tokens: its ISSUER setting. */
  issuer: string;
  /** The `aud` latchkey puts in its tokens: its AUDIENCE setting. */
  audience: string;
  keys: KeySource;
  /** JWKS caching, for the `jwksUrl` and `binding` sources. Seconds. */
  cache?: { cooldownSeconds?: number; maxAgeSeconds?: number };
}

/** Why a request is refused: API.md codes, answered as latchkey answers them. */
export type VerifyFailure = 'missing_token' | 'email_unverified' | SessionFault;

export type VerifyOutcome =
  | { ok: true; claims: AccessTokenClaims }
  | { ok: false; code: VerifyFailure; retryAfterSeconds?: number };

export interface VerifyOptions {
  /**
   * Also ask latchkey whether the session is still live (not revoked, not past its absolute or
   * idle limit): one RPC to latchkey, one D1 read there. Only with the `binding` key source.
   */
  strict?: boolean;
  /**
   * Refuse a token whose `email_verified` claim is not `true` (absent counts as false): 403
   * `email_unverified`. The claim is as of the token's minting, so a person who just verified
   * passes from their next renewal on.
   */
  requireVerifiedEmail?: boolean;
}

export interface LatchkeyVerifier {
  /** Verifies a token (undefined or empty: `missing_token`). Never throws for a bad token. */
  verify(token: string | undefined, options?: VerifyOptions): Promise<VerifyOutcome>;
  /** Verifies the request's `Authorization: Bearer` token (RFC 6750 §2.1). */
  verifyRequest(request: Request, options?: VerifyOptions): Promise<VerifyOutcome>;
  /** True with the `binding` key source, the only one that can answer strict checks. */
  readonly supportsStrict: boolean;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

function nonEmpty(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new TypeError(`latchkey verify: ${name} must be a non-empty string`);
  return value;
}

/**
 * A JWKS fetched over plain HTTP could be swapped in transit for the attacker's keys, after which
 * every token they sign verifies: HTTPS only, except on loopback for local development.
 */
function jwksUrlOf(raw: string | URL): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TypeError('latchkey verify: jwksUrl is not a URL');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
    throw new TypeError('latchkey verify: jwksUrl must be https (plain http only for localhost)');
  }
  return url;
}

function keySetOf(options: VerifierOptions): { keys: KeySet; binding: LatchkeyBinding | undefined } {
  const source = options.keys as Partial<{ jwksUrl: string | URL; fetch: unknown; binding: unknown; jwks: unknown }>;
  const given = (['jwksUrl', 'binding', 'jwks'] as const).filter((name) => source?.[name] !== undefined);
  if (given.length !== 1) {
    throw new TypeError('latchkey verify: keys must name exactly one source: jwksUrl, binding or jwks');
  }
  const cache = options.cache ?? {};
  if (source.jwks !== undefined) return { keys: new InlineKeySet(source.jwks), binding: undefined };
  if (source.binding !== undefined) {
    const binding = source.binding as LatchkeyBinding;
    if (typeof binding?.fetch !== 'function') throw new TypeError('latchkey verify: binding must be a service binding');
    // The path is what latchkey routes; the host of a request through a binding is not used.
    const url = new URL('/.well-known/jwks.json', options.issuer);
    return { keys: new RemoteKeySet({ url, fetch: (request) => binding.fetch(request), ...cache }), binding };
  }
  const fetcher = source.fetch ?? ((request: Request) => fetch(request));
  if (typeof fetcher !== 'function') throw new TypeError('latchkey verify: fetch must be a function');
  const url = jwksUrlOf(source.jwksUrl as string | URL);
  return { keys: new RemoteKeySet({ url, fetch: fetcher as (request: Request) => Promise<Response>, ...cache }), binding: undefined };
}

class Verifier implements LatchkeyVerifier {
  readonly supportsStrict: boolean;
  private readonly issuer: string;
  private readonly audience: string;
  private readonly keys: KeySet;
  private readonly binding: LatchkeyBinding | undefined;

  constructor(options: VerifierOptions) {
    this.issuer = nonEmpty(options?.issuer, 'issuer');
    this.audience = nonEmpty(options.audience, 'audience');
    ({ keys: this.keys, binding: this.binding } = keySetOf(options));
    this.supportsStrict = this.binding !== undefined;
  }

  verifyRequest(request: Request, options?: VerifyOptions): Promise<VerifyOutcome> {
    return this.verify(bearerToken(request), options);
  }

  async verify(token: string | undefined, options: VerifyOptions = {}): Promise<VerifyOutcome> {
    const strict = options.strict === true;
    if (strict && !this.binding) throw new TypeError('latchkey verify: strict checks need the binding key source');
    if (token === undefined || token === '') return { ok: false, code: 'missing_token' };
    let result: Awaited<ReturnType<typeof verifyAccessToken>>;
    try {
      result = await verifyAccessToken(token, (kid) => this.keys.lookup(kid), {
        issuer: this.issuer,
        audience: this.audience,
        nowMs: now(),
        allowExpired: false,
      });
    } catch (error) {
      if (error instanceof KeysUnavailableError) {
        return { ok: false, code: 'temporarily_unavailable', retryAfterSeconds: error.retryAfterSeconds };
      }
      throw error;
    }
    if (!result.ok) return { ok: false, code: result.reason === 'expired' ? 'token_expired' : 'invalid_token' };
    if (options.requireVerifiedEmail === true && result.claims.email_verified !== true) {
      return { ok: false, code: 'email_unverified' };
    }
    if (!strict || !this.binding) return { ok: true, claims: result.claims };
    // Checked locally first: a forged or expired token never costs latchkey a call.
    return this.askLatchkey(this.binding, token, result.claims);
  }

  private async askLatchkey(binding: LatchkeyBinding, token: string, claims: AccessTokenClaims): Promise<VerifyOutcome> {
    let answer: SessionStatus;
    try {
      answer = await binding.sessionStatus(token);
    } catch (error) {
      // The platform flags failures of the call itself (latchkey restarting, overloaded) as
      // retryable; anything else is a misconfiguration or a bug and surfaces as such.
      const flags = error as { retryable?: boolean; overloaded?: boolean } | null;
      if (!flags?.retryable && !flags?.overloaded) throw error;
      console.error('latchkey verify: sessionStatus failed:', String(error));
      return { ok: false, code: 'temporarily_unavailable', retryAfterSeconds: 1 };
    }
    const status = (answer as Partial<SessionStatus> | null)?.status;
    if (status === 'live') return { ok: true, claims };
    if (typeof status === 'string' && SESSION_FAULTS.has(status)) {
      const code = status as SessionFault;
      return code === 'temporarily_unavailable' ? { ok: false, code, retryAfterSeconds: 1 } : { ok: false, code };
    }
    throw new Error('latchkey verify: sessionStatus gave an answer it does not define (is the binding\'s entrypoint "LatchkeyInternal"?)');
  }
}

/**
 * Builds a verifier of latchkey access tokens for another Worker or a Node service. Options are
 * checked here, so a mistake fails at start-up, not on the first request. Build it once (at module
 * level): it caches the keys it fetches.
 *
 * The checks are latchkey's own (src/tokens/verify.ts): signature by the key the `kid` names, with
 * that key's algorithm; `typ` `at+jwt`; no key-bearing header; `iss`, `aud`, every claim; `exp`
 * with a 5-second leeway.
 */
export function createVerifier(options: VerifierOptions): LatchkeyVerifier {
  return new Verifier(options);
}

/**
 * The problem document (RFC 9457, with the RFC 6750 challenge) latchkey answers for a failure,
 * for services that do not use the Hono middleware.
 */
export function failureResponse(outcome: { code: VerifyFailure; retryAfterSeconds?: number }): Response {
  return problemResponse(
    new ApiError(outcome.code, outcome.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: outcome.retryAfterSeconds }),
  );
}
