import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { decodeClientDataJSON, isoBase64URL } from '@simplewebauthn/server/helpers';
import type { Config } from '../config';
import type { NewPasskey, PasskeyCredential, PasskeyDeviceType, PasskeyRecord } from '../storage/records';

/**
 * The WebAuthn ceremonies, through SimpleWebAuthn: options out, a response in, one verification
 * call. No CBOR, COSE or attestation is parsed here. Challenges are stored and spent elsewhere
 * (the user's object for registrations, D1 for sign-ins); this module only says which challenge a
 * response answers and whether everything else about it holds.
 */

/** How long a browser waits for the person to finish a ceremony: the options' `timeout`. */
export const PASSKEY_CEREMONY_TIMEOUT_MS = 5 * 60_000;
/**
 * How long a challenge stays valid: the ceremony's timeout plus a minute for the answer to reach
 * latchkey. Short, so a challenge that leaked (a log, a proxy) is soon worthless, and the table of
 * unanswered sign-in challenges stays small.
 */
export const PASSKEY_CHALLENGE_TTL_MS = PASSKEY_CEREMONY_TIMEOUT_MS + 60_000;

/**
 * COSE algorithms accepted for new passkeys (RFC 9053): ES256 (what almost every authenticator
 * signs with), EdDSA, RS256 (Windows Hello). An allow-list, so a response naming another
 * algorithm is refused at registration and no stored key ever uses one.
 */
const ALGORITHMS = [-7, -8, -257];

/**
 * The user handle of a user: their id as UTF-8, never their email (WebAuthn §14.6.1: the handle
 * must not identify the person to whoever reads the authenticator).
 */
function userHandleOf(userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new TextEncoder().encode(userId));
}

/**
 * Creation options for a signed-in user (WebAuthn §5.4): a discoverable credential (so signing in
 * later needs no email), user verification preferred, no attestation (latchkey trusts no
 * authenticator maker more than another), and the user's passkeys excluded so one authenticator
 * is not registered twice.
 */
export function creationOptions(
  config: Config,
  user: { id: string; email: string },
  existing: readonly PasskeyRecord[],
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpName: config.rpName,
    rpID: config.rpId,
    userID: userHandleOf(user.id),
    userName: user.email,
    userDisplayName: user.email,
    timeout: PASSKEY_CEREMONY_TIMEOUT_MS,
    attestationType: 'none',
    excludeCredentials: existing.map((passkey) => ({ id: passkey.id, transports: passkey.transports })),
    authenticatorSelection: { residentKey: 'required', userVerification: 'preferred' },
    supportedAlgorithmIDs: ALGORITHMS,
  });
}

/**
 * Request options for a sign-in with no user known yet (WebAuthn §5.5): no `allowCredentials`, so
 * the authenticator offers the discoverable credentials it holds for this RP ID.
 */
export function requestOptions(config: Config): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: config.rpId,
    userVerification: 'preferred',
    timeout: PASSKEY_CEREMONY_TIMEOUT_MS,
  });
}

/** The challenge a response's client data names, or null if its client data cannot be read. */
export function presentedChallenge(response: { response: { clientDataJSON: string } }): string | null {
  try {
    const { challenge } = decodeClientDataJSON(response.response.clientDataJSON);
    return typeof challenge === 'string' && /^[\w-]{16,128}$/.test(challenge) ? challenge : null;
  } catch {
    return null;
  }
}

/**
 * Whether the ceremony ran in a frame of another site (client data `crossOrigin`, `topOrigin`:
 * WebAuthn §5.8.1). latchkey expects none: its own page refuses to be framed, and a page framing an
 * allowed origin to create or use a passkey there is what clickjacking would look like.
 * SimpleWebAuthn checks `topOrigin` only for sign-ins, and only when the browser sends it (Safari
 * does not), so both ceremonies are refused here on either field.
 */
function ranInForeignFrame(response: { response: { clientDataJSON: string } }): boolean {
  try {
    const { crossOrigin, topOrigin } = decodeClientDataJSON(response.response.clientDataJSON);
    return crossOrigin === true || topOrigin !== undefined;
  } catch {
    return true;
  }
}

export type RegistrationCheck =
  | { ok: true; challenge: string; passkey: Omit<NewPasskey, 'name'> }
  | { ok: false };

export type AssertionCheck =
  | { ok: true; counter: number; deviceType: PasskeyDeviceType; backedUp: boolean; userVerified: boolean }
  | { ok: false };

/**
 * Verifies a registration response: its type, origin (one of ALLOWED_ORIGINS), no foreign frame,
 * RP ID hash, user presence, algorithm and attestation "none". Which challenge it answers is returned, not judged:
 * the user's object holds the challenges it issued and spends this one only if it is the
 * session's, unexpired, in the same step that stores the passkey.
 *
 * SimpleWebAuthn reports every refusal by throwing (and hostile bytes can make its decoders throw
 * anything), so every exception here is a refusal of the response, never a fault of latchkey's.
 */
export async function verifyRegistration(config: Config, response: RegistrationResponseJSON): Promise<RegistrationCheck> {
  if (ranInForeignFrame(response)) return { ok: false };
  let challenge: string | undefined;
  try {
    const result = await verifyRegistrationResponse({
      response,
      expectedChallenge: (presented) => {
        challenge = presented;
        return true;
      },
      expectedOrigin: [...config.allowedOrigins],
      expectedRPID: config.rpId,
      // "preferred" in the options: a passkey without user verification is one factor, like the
      // password beside it (docs/SECURITY.md).
      requireUserVerification: false,
      supportedAlgorithmIDs: ALGORITHMS,
    });
    if (!result.verified || challenge === undefined) return { ok: false };
    const { credential, credentialDeviceType, credentialBackedUp } = result.registrationInfo;
    // The ID the browser reported must be the one the authenticator signed into its data.
    if (credential.id !== response.id) return { ok: false };
    return {
      ok: true,
      challenge,
      passkey: {
        id: credential.id,
        publicKey: isoBase64URL.fromBuffer(credential.publicKey),
        counter: credential.counter,
        deviceType: credentialDeviceType,
        backedUp: credentialBackedUp,
        transports: response.response.transports ?? [],
      },
    };
  } catch {
    return { ok: false };
  }
}

/**
 * Verifies a sign-in response against the stored passkey and the challenge already spent for it:
 * type, challenge, origin, no foreign frame, RP ID hash, user presence, the user handle (it must name the passkey's
 * owner, WebAuthn §7.2 step 6) and the signature.
 *
 * The signature counter is not judged here. SimpleWebAuthn compares it before it checks the
 * signature, so a forged response could pass as a cloned authenticator and get logged as one; the
 * user's object compares it after this verification, in the same D1 transaction that records the
 * sign-in, against the counter stored at that moment.
 */
export async function verifyAssertion(
  config: Config,
  response: AuthenticationResponseJSON,
  challenge: string,
  credential: PasskeyCredential,
): Promise<AssertionCheck> {
  if (response.response.userHandle !== isoBase64URL.fromBuffer(userHandleOf(credential.userId))) return { ok: false };
  if (ranInForeignFrame(response)) return { ok: false };
  try {
    const result = await verifyAuthenticationResponse({
      response,
      expectedChallenge: challenge,
      expectedOrigin: [...config.allowedOrigins],
      expectedRPID: config.rpId,
      credential: {
        id: credential.id,
        publicKey: isoBase64URL.toBuffer(credential.publicKey),
        counter: 0,
        transports: credential.transports,
      },
      requireUserVerification: false,
    });
    if (!result.verified) return { ok: false };
    const info = result.authenticationInfo;
    return {
      ok: true,
      counter: info.newCounter,
      deviceType: info.credentialDeviceType,
      backedUp: info.credentialBackedUp,
      userVerified: info.userVerified,
    };
  } catch {
    return { ok: false };
  }
}
