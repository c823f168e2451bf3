import { WorkerEntrypoint } from 'cloudflare:workers';
import { app } from '../app';
import { now } from '../clock';
import { configFrom } from '../config';
import { logStorageUnavailable, StorageUnavailableError } from '../errors';
import { readSessionLiveness } from '../storage/liveness';
import { storeFor } from '../storage/store';
import { keyringFor } from '../tokens/keys';
import { tokenFailureCode, verifyAccessToken } from '../../packages/verify/src/tokens/verify';
import type { SessionStatus } from '../../packages/verify/src/session-status';

/**
 * Latchkey's entrypoint for other Workers of the same account, through a service binding with
 * `entrypoint = "LatchkeyInternal"` (used by `@latchkey/verify`'s `binding` key source).
 *
 * Not reachable from the internet: only the default export answers HTTP requests to the Worker's
 * routes; a named entrypoint is reachable only through a binding that another Worker of this
 * account declares in its own configuration. So `sessionStatus` needs no credential of its own,
 * and it still reveals nothing that the token presented does not already prove: it verifies the
 * token first, and answers only a status, no account data.
 */
export class LatchkeyInternal extends WorkerEntrypoint<Env> {
  /** Latchkey's public routes, exactly as the internet sees them (the JWKS among them). */
  override fetch(request: Request): Promise<Response> {
    return Promise.resolve(app.fetch(request, this.env, this.ctx));
  }

  /**
   * The strict check of API.md for a resource server: the token verifies (signature, claims, not
   * expired) and its session is live (not revoked, within SESSION_MAX_AGE and RENEW_WINDOW). One
   * D1 read, the same one latchkey's own strict routes make.
   */
  async sessionStatus(token: unknown): Promise<SessionStatus> {
    if (typeof token !== 'string') return { status: 'invalid_token' };
    const config = configFrom(this.env);
    const result = await verifyAccessToken(token, await keyringFor(config.signingKeysJson), {
      issuer: config.issuer,
      audience: config.audience,
      nowMs: now(),
      allowExpired: false,
    });
    if (!result.ok) return { status: tokenFailureCode(result) };
    const { sid, sub } = result.claims;
    try {
      const liveness = await readSessionLiveness(storeFor(this.env.DB), { sid, sub }, config);
      return { status: liveness.live ? 'live' : liveness.code };
    } catch (error) {
      if (!(error instanceof StorageUnavailableError)) throw error;
      logStorageUnavailable(error);
      return { status: 'temporarily_unavailable' };
    }
  }
}
