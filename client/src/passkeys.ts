import {
  type AuthenticationResponseJSON,
  browserSupportsWebAuthn,
  browserSupportsWebAuthnAutofill,
  type PublicKeyCredentialRequestOptionsJSON,
  startAuthentication,
  WebAuthnAbortService,
} from '@simplewebauthn/browser';

/**
 * The browser side of passkey sign-in: the WebAuthn ceremonies run by @simplewebauthn/browser,
 * which turns latchkey's options JSON into `navigator.credentials` calls and their answers back
 * into JSON.
 */

/** A passkey of the signed-in user, as `GET /auth/passkeys` lists it. */
export interface PasskeyInfo {
  /** The credential ID (base64url); `removePasskey` takes it. */
  id: string;
  name: string | null;
  created_at: string;
  last_used_at: string | null;
  /** `multiDevice`: the passkey may sync between devices (a password manager); `singleDevice`: it cannot. */
  device_type: 'singleDevice' | 'multiDevice';
  /** Whether the authenticator said, at its last use, that the passkey is backed up. */
  backed_up: boolean;
  transports: string[];
}

export interface PasskeyLoginOptions {
  /**
   * Conditional mediation: offer the passkeys in the browser's autofill of an
   * `<input autocomplete="username webauthn">` instead of a dialog. The promise settles only when
   * the person picks one (or on `signal`), however long that takes.
   */
  conditional?: boolean;
  /** Ends a ceremony that is still waiting for the person (say, because they signed in with a password). */
  signal?: AbortSignal;
}

/** Whether this browser can use passkeys at all. */
export function passkeysSupported(): boolean {
  return browserSupportsWebAuthn();
}

/** Whether this browser can offer passkeys in an input's autofill (`conditional: true`). */
export function passkeyAutofillSupported(): Promise<boolean> {
  return browserSupportsWebAuthnAutofill();
}

/**
 * A conditional request is started this long before its challenge runs out, with a fresh one: the
 * person may open the page now and choose a passkey an hour later, and latchkey accepts an answer
 * only to a challenge of the last few minutes.
 */
const REARM_BEFORE_EXPIRY_MS = 20_000;

/**
 * Asks the authenticator for an assertion over `optionsJSON`. Null when a conditional request
 * was left unanswered until its challenge was about to run out: ask again with new options.
 */
export function assertPasskey(
  optionsJSON: PublicKeyCredentialRequestOptionsJSON,
  options: PasskeyLoginOptions,
): Promise<AuthenticationResponseJSON | null> {
  const { conditional = false, signal } = options;
  return new Promise((resolve, reject) => {
    let settled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      // Only a ceremony still pending can be this one: a newer ceremony would have aborted it.
      WebAuthnAbortService.cancelCeremony();
      finish(() => reject(signal?.reason));
    };
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      settle();
    };
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    if (conditional) {
      // The next ceremony started aborts this one (WebAuthnAbortService), so nothing is left behind.
      const lifetimeMs = optionsJSON.timeout ?? 60_000;
      timer = setTimeout(() => finish(() => resolve(null)), Math.max(1_000, lifetimeMs - REARM_BEFORE_EXPIRY_MS));
    }
    startAuthentication({ optionsJSON, useBrowserAutofill: conditional }).then(
      (response) => finish(() => resolve(response)),
      (error: unknown) => finish(() => reject(error)),
    );
  });
}
