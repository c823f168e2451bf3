import { now } from './clock.js';
import { checkPossession, readProofHeader } from './dpop/possession.js';
import { type DpopReplayStore, MemoryReplayCache } from './dpop/replay.js';
import { type AuthorizationCredential, authorizationCredential } from './http/credentials.js';
import type { AccessTokenClaims } from './tokens/claims.js';
import { tokenFailureCode, verifyAccessToken } from './tokens/verify.js';
import type { JwkSet } from './jwks.js';
import { InlineKeySet, type KeySet, KeysUnavailableError, RemoteKeySet } from './key-sets.js';
import { renderProblem, TOKEN_PROBLEMS, tokenChallenge } from './problems.js';
import { isTransientPlatformFailure, TRANSIENT_RETRY_AFTER_SECONDS } from './platform.js';
import { SESSION_FAULTS, type SessionFault, type SessionStatus } from './session-status.js';

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
  /**
   * Where the `jti`s of accepted DPoP proofs are remembered, so that each proof is accepted once.
   * Default: a `MemoryReplayCache` of this verifier, which sees replays within one isolate only
   * (docs/VERIFYING.md); pass a strongly consistent store where that matters.
   */
  dpopReplayStore?: DpopReplayStore;
}

/** Why a request is refused: API.md codes, answered as latchkey answers them. */
export type VerifyFailure = 'missing_token' | 'invalid_dpop_proof' | 'email_unverified' | SessionFault;

export type VerifyOutcome =
  | { ok: true; claims: AccessTokenClaims }
  /** `scheme: 'DPoP'`: the refusal is answered with a DPoP challenge rather than a Bearer one. */
  | { ok: false; code: VerifyFailure; retryAfterSeconds?: number; scheme?: 'DPoP' };

/**
 * DPoP (RFC 9449) on a check:
 * - `'allowed'` (the default): unbound tokens as `Authorization: Bearer`; tokens bound to a key
 *   (`cnf.jkt`) only as `Authorization: DPoP` with a valid `DPoP` proof by that key. A bound token
 *   presented as `Bearer` is refused: a copy of it is worth nothing without the key.
 * - `'required'`: bound tokens only, each with its proof; an unbound token is `invalid_token`.
 *
 * There is no setting that accepts a bound token without its proof.
 */
export type DpopPolicy = 'allowed' | 'required';

export interface VerifyOptions {
  /**
   * Also ask latchkey whether the session is still live (not revoked, not past its absolute or
   * idle limit): one RPC to latchkey, one D1 read there. Only with the `binding` key source.
   */
  strict?: boolean;
  /** Default `'allowed'`. */
  dpop?: DpopPolicy;
  /**
   * Refuse a token whose `email_verified` claim is not `true` (absent counts as false): 403
   * `email_unverified`. The claim is as of the token's minting, so a person who just verified
   * passes from their next renewal on.
   */
  requireVerifiedEmail?: boolean;
}

export interface LatchkeyVerifier {
  /**
   * Verifies a token alone (undefined or empty: `missing_token`). Never throws for a bad token.
   * With no request there is no proof, so a token bound to a key is refused `invalid_dpop_proof`:
   * use `verifyRequest` for those.
   */
  verify(token: string | undefined, options?: VerifyOptions): Promise<VerifyOutcome>;
  /**
   * Verifies the request's `Authorization: Bearer` token (RFC 6750 §2.1), or its
   * `Authorization: DPoP` token with the `DPoP` proof header (RFC 9449 §7): the proof's `htm` and
   * `htu` must be this request's method and URL, its `ath` the token's hash, its key the one the
   * token's `cnf.jkt` names, its `iat` within a minute by this service's clock, and its `jti` new.
   */
  verifyRequest(request: Request, options?: VerifyOptions): Promise<VerifyOutcome>;
  /** True with the `binding` key source, the only one that can answer strict checks. */
  readonly supportsStrict: boolean;
}

const DPOP_POLICIES: ReadonlySet<unknown> = new Set<DpopPolicy>(['allowed', 'required']);

/** Throws for a `dpop` option that is neither `'allowed'` nor `'required'`: a typo must not loosen a check. */
export function dpopPolicyOf(options: VerifyOptions | undefined): DpopPolicy {
  const policy = options?.dpop ?? 'allowed';
  if (!DPOP_POLICIES.has(policy)) throw new TypeError(`latchkey verify: dpop must be 'allowed' or 'required', got ${String(policy)}`);
  return policy;
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
  private readonly replay: DpopReplayStore;

  constructor(options: VerifierOptions) {
    this.issuer = nonEmpty(options?.issuer, 'issuer');
    this.audience = nonEmpty(options.audience, 'audience');
    ({ keys: this.keys, binding: this.binding } = keySetOf(options));
    this.supportsStrict = this.binding !== undefined;
    const store = options.dpopReplayStore;
    if (store !== undefined && typeof store?.useOnce !== 'function') {
      throw new TypeError('latchkey verify: dpopReplayStore must have a useOnce(jti, untilMs, jkt) method');
    }
    this.replay = store ?? new MemoryReplayCache();
  }

  verifyRequest(request: Request, options?: VerifyOptions): Promise<VerifyOutcome> {
    return this.check(authorizationCredential(request), request, options);
  }

  verify(token: string | undefined, options?: VerifyOptions): Promise<VerifyOutcome> {
    return this.check(token === undefined ? undefined : { scheme: 'Bearer', token }, undefined, options);
  }

  private async check(
    credential: AuthorizationCredential | undefined,
    request: Request | undefined,
    options: VerifyOptions = {},
  ): Promise<VerifyOutcome> {
    const strict = options.strict === true;
    if (strict && !this.binding) throw new TypeError('latchkey verify: strict checks need the binding key source');
    const policy = dpopPolicyOf(options);
    // A client that used the DPoP scheme, or a route that takes nothing else, is challenged with DPoP.
    const scheme = policy === 'required' || credential?.scheme === 'DPoP' ? { scheme: 'DPoP' as const } : {};
    const token = credential?.token;
    if (token === undefined || token === '') return { ok: false, code: 'missing_token', ...scheme };
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
    if (!result.ok) return { ok: false, code: tokenFailureCode(result), ...scheme };
    const { claims } = result;
    const boundJkt = claims.cnf?.jkt;
    if (policy === 'required' && boundJkt === undefined) return { ok: false, code: 'invalid_token', scheme: 'DPoP' };
    if (request === undefined) {
      if (boundJkt !== undefined) return { ok: false, code: 'invalid_dpop_proof', scheme: 'DPoP' };
    } else {
      // The token first, then the proof: a forged token never costs a proof verification.
      const possession = await checkPossession({
        presentedAs: credential?.scheme ?? 'Bearer',
        token,
        boundJkt,
        proof: readProofHeader(request),
        method: request.method,
        url: request.url,
        nowMs: now(),
      });
      if (!possession.ok) return { ok: false, code: possession.code, scheme: 'DPoP' };
      // Recorded only once everything else passed, so a bad proof cannot use up a good one's jti.
      const proof = possession.proof;
      if (proof && !(await this.replay.useOnce(proof.jti, proof.usableUntilMs, proof.jkt))) {
        return { ok: false, code: 'invalid_dpop_proof', scheme: 'DPoP' };
      }
    }
    if (options.requireVerifiedEmail === true && claims.email_verified !== true) {
      return { ok: false, code: 'email_unverified' };
    }
    if (!strict || !this.binding) return { ok: true, claims };
    // Checked locally first: a forged or expired token never costs latchkey a call.
    return this.askLatchkey(this.binding, token, claims);
  }

  private async askLatchkey(binding: LatchkeyBinding, token: string, claims: AccessTokenClaims): Promise<VerifyOutcome> {
    let answer: SessionStatus;
    try {
      answer = await binding.sessionStatus(token);
    } catch (error) {
      // Latchkey restarting or overloaded; anything else is a misconfiguration or a bug.
      if (!isTransientPlatformFailure(error)) throw error;
      console.error('latchkey verify: sessionStatus failed:', String(error));
      return { ok: false, code: 'temporarily_unavailable', retryAfterSeconds: TRANSIENT_RETRY_AFTER_SECONDS };
    }
    const status = (answer as Partial<SessionStatus> | null)?.status;
    if (status === 'live') return { ok: true, claims };
    if (typeof status === 'string' && SESSION_FAULTS.has(status)) {
      const code = status as SessionFault;
      return code === 'temporarily_unavailable' ? { ok: false, code, retryAfterSeconds: TRANSIENT_RETRY_AFTER_SECONDS } : { ok: false, code };
    }
    throw new Error('latchkey verify: sessionStatus gave an answer it does not define (is the binding\'s entrypoint "LatchkeyInternal"?)');
  }
}

/**
 * Builds a verifier of latchkey access tokens for another Worker or a Node service. Options are
 * checked here, so a mistake fails at start-up, not on the first request. Build it once (at module
 * level): it caches the keys it fetches.
 *
 * The checks are latchkey's own, the very code its routes run (tokens/verify.ts): signature by the
 * key the `kid` names, with that key's algorithm; `typ` `at+jwt`; no key-bearing header; `iss`,
 * `aud`, every claim; `exp` with a 5-second leeway; and for a token bound to a key, the DPoP proof
 * of that key (dpop/), each proof accepted once.
 */
export function createVerifier(options: VerifierOptions): LatchkeyVerifier {
  return new Verifier(options);
}

/**
 * The problem document (RFC 9457, with the RFC 6750 challenge) latchkey answers for a failure,
 * for services that do not use the Hono middleware.
 */
export function failureResponse(outcome: { code: VerifyFailure; retryAfterSeconds?: number; scheme?: 'DPoP' }): Response {
  const { status, title, detail } = TOKEN_PROBLEMS[outcome.code];
  return renderProblem({
    code: outcome.code,
    status,
    title,
    detail,
    challenge: tokenChallenge(outcome.code, outcome.scheme ?? 'Bearer'),
    retryAfterSeconds: outcome.retryAfterSeconds,
  });
}
