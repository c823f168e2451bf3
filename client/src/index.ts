/**
 * latchkey's browser client: sign-in by password or passkey, renewal ahead of expiry and on
 * `token_expired`, one renewal at a time across tabs, and a `signedout` event with the reason. One
 * file with no imports: the passkey ceremonies of @simplewebauthn/browser are bundled in.
 *
 * ```js
 * import { createClient } from 'https://auth.example.com/client.js';
 * const latchkey = createClient({ baseUrl: 'https://auth.example.com', mode: 'cookie' });
 * latchkey.addEventListener('signedout', (event) => showSignIn(event.detail.code));
 * if (!(await latchkey.resume())) await latchkey.login(email, password); // or latchkey.loginWithPasskey()
 * const response = await latchkey.fetch('/api/me');
 * ```
 */
export {
  createClient,
  LatchkeyClient,
  type ClientOptions,
  type LatchkeyEventMap,
  type Mode,
  type SecurityEventInfo,
  type SessionInfo,
  type SignedOutReason,
  type User,
} from './client';
export { LatchkeyError, type Problem } from './errors';
export {
  type PasskeyInfo,
  type PasskeyLoginOptions,
  passkeyAutofillSupported,
  passkeysSupported,
} from './passkeys';
