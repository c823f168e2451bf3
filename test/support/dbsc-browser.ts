import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { expect } from 'vitest';
import { call, PASSWORD } from './helpers';

/** wrangler.toml's ALLOWED_ORIGINS, which the tests run with. */
export const PAGE_ORIGIN = 'http://localhost:8787';

/** A DBSC proof (`dbsc+jwt`) over `challenge`, signed by `privateKey`; `jwk` in its header on registration. */
export async function dbscProof(
  privateKey: CryptoKey,
  challenge: string,
  options: { jwk?: JWK; alg?: string; typ?: string; claims?: Record<string, unknown> } = {},
): Promise<string> {
  const header: Record<string, unknown> = { alg: options.alg ?? 'ES256', typ: options.typ ?? 'dbsc+jwt' };
  if (options.jwk) header.jwk = options.jwk;
  return new SignJWT({ jti: challenge, ...options.claims })
    .setProtectedHeader(header as { alg: string })
    .sign(privateKey);
}

/** The values of a `Secure-Session-Challenge` or `Secure-Session-Registration` answer. */
export function challengeOf(response: Response, header = 'secure-session-challenge'): { challenge: string; id?: string } | undefined {
  const value = response.headers.get(header);
  if (value === null) return undefined;
  const challenge = /(?:^|;challenge=)"([^"]+)"/.exec(value)?.[1];
  const id = /;id="([^"]+)"/.exec(value)?.[1];
  expect(challenge, value).toBeDefined();
  return { challenge: challenge as string, ...(id === undefined ? {} : { id }) };
}

/** The token cookie an answer sets: its value and Max-Age, or undefined. */
export function tokenCookieOf(response: Response): { value: string; maxAge: number } | undefined {
  const line = response.headers.getSetCookie().find((cookie) => cookie.startsWith('latchkey_at='));
  if (line === undefined) return undefined;
  const value = line.slice('latchkey_at='.length, line.indexOf(';'));
  return { value, maxAge: Number(/Max-Age=(\d+)/i.exec(line)?.[1]) };
}

/**
 * A browser with DBSC, in the Worker's own fetch: it keeps the token cookie and a P-256 key, and
 * registers and refreshes as Chromium does (registration without Origin, the proof bare in
 * `Secure-Session-Response`; refresh naming the session, with a proof over the last challenge it
 * was given, and once more over a fresh one after a 403).
 */
export class DbscBrowser {
  cookie: string | undefined;
  sessionIdentifier: string | undefined;
  registrationChallenge: string | undefined;
  cachedChallenge: string | undefined;

  private constructor(
    readonly privateKey: CryptoKey,
    readonly publicJwk: JWK,
  ) {}

  static async create(): Promise<DbscBrowser> {
    // Extractable only so that a test can put the private key where it must never go.
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    return new DbscBrowser(privateKey, await exportJWK(publicKey));
  }

  /** Signs in in cookie mode, as the page would, and keeps the cookie and the offered challenge. */
  async login(email: string): Promise<Response> {
    const response = await call('/auth/login', {
      method: 'POST',
      json: { email, password: PASSWORD, mode: 'cookie', client: 'dbsc browser' },
      headers: { origin: PAGE_ORIGIN },
    });
    expect(response.status, await response.clone().text()).toBe(200);
    this.keepCookie(response);
    this.registrationChallenge = challengeOf(response, 'secure-session-registration')?.challenge;
    return response;
  }

  /** The registration request, with a proof over `challenge` (the offered one by default). */
  async register(challenge = this.registrationChallenge as string, proof?: string): Promise<Response> {
    const headers = new Headers({ 'secure-session-response': proof ?? (await this.proof(challenge, true)) });
    if (this.cookie) headers.set('cookie', `latchkey_at=${this.cookie}`);
    const response = await call('/auth/dbsc/register', { method: 'POST', headers });
    if (response.status === 200) {
      this.keepCookie(response);
      this.sessionIdentifier = ((await response.clone().json()) as { session_identifier: string }).session_identifier;
      this.cachedChallenge = challengeOf(response)?.challenge;
    }
    return response;
  }

  /** One refresh request: the session named, and `proof` if given. No cookie, as when it is gone. */
  async refreshRequest(proof?: string, identifier = this.sessionIdentifier as string): Promise<Response> {
    const headers = new Headers({ 'sec-secure-session-id': identifier });
    if (proof !== undefined) headers.set('secure-session-response', proof);
    const response = await call('/auth/dbsc/refresh', { method: 'POST', headers });
    const challenge = challengeOf(response)?.challenge;
    if (challenge !== undefined) this.cachedChallenge = challenge;
    if (response.status === 200) this.keepCookie(response);
    return response;
  }

  /** A refresh as the browser makes it: over the cached challenge if any, then once more after a 403. */
  async refresh(): Promise<Response> {
    const first = await this.refreshRequest(this.cachedChallenge && (await this.proof(this.cachedChallenge)));
    if (first.status !== 403) return first;
    return this.refreshRequest(await this.proof(this.cachedChallenge as string));
  }

  /** A proof over `challenge` by this browser's key; with its public key on registration. */
  proof(challenge: string, registration = false): Promise<string> {
    return dbscProof(this.privateKey, challenge, registration ? { jwk: this.publicJwk } : {});
  }

  private keepCookie(response: Response): void {
    const cookie = tokenCookieOf(response);
    if (cookie !== undefined) this.cookie = cookie.maxAge > 0 ? cookie.value : undefined;
  }
}
