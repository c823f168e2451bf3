import type { AuthenticationResponseJSON, AuthenticatorTransport, RegistrationResponseJSON } from '@simplewebauthn/server';
import { ApiError } from '../errors';

/**
 * The JSON of a WebAuthn response, as @simplewebauthn/browser sends it, checked for shape before
 * anything is verified: every field of the right type and size, base64url where WebAuthn encodes
 * bytes. Only the fields read here reach the verifier, so unknown members are inert.
 */

/** WebAuthn §5.1: a credential ID is at most 1023 bytes, 1364 characters of base64url. */
export const MAX_CREDENTIAL_ID_LENGTH = 1364;

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const TRANSPORTS: ReadonlySet<string> = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

const invalid = (detail: string) => new ApiError('invalid_request', { detail });

function objectAt(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`"${name}" must be an object.`);
  return value as Record<string, unknown>;
}

function memberOf(object: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

function base64url(object: Record<string, unknown>, key: string, path: string, max = Number.POSITIVE_INFINITY): string {
  const value = memberOf(object, key);
  if (typeof value !== 'string' || !BASE64URL.test(value) || value.length > max) {
    throw invalid(`"${path}.${key}" must be a base64url string.`);
  }
  return value;
}

/** What both kinds of response share: the credential ID, twice, and the type. */
function credentialEnvelope(body: Record<string, unknown>, name: string) {
  const outer = objectAt(memberOf(body, name), name);
  const id = base64url(outer, 'id', name, MAX_CREDENTIAL_ID_LENGTH);
  const rawId = base64url(outer, 'rawId', name, MAX_CREDENTIAL_ID_LENGTH);
  if (rawId !== id) throw invalid(`"${name}.rawId" must equal "${name}.id".`);
  if (memberOf(outer, 'type') !== 'public-key') throw invalid(`"${name}.type" must be "public-key".`);
  return { id, inner: objectAt(memberOf(outer, 'response'), `${name}.response`) };
}

/** `body[name]` as a registration response (`startRegistration()`'s result). */
export function readRegistrationResponse(body: Record<string, unknown>, name = 'response'): RegistrationResponseJSON {
  const { id, inner } = credentialEnvelope(body, name);
  const path = `${name}.response`;
  const rawTransports = memberOf(inner, 'transports') ?? [];
  if (!Array.isArray(rawTransports) || rawTransports.length > 16 || !rawTransports.every((t) => typeof t === 'string')) {
    throw invalid(`"${path}.transports" must be an array of strings.`);
  }
  // Transports are hints for later ceremonies; ones this version of WebAuthn does not name are dropped.
  const transports = [...new Set(rawTransports.filter((t: string) => TRANSPORTS.has(t)))] as AuthenticatorTransport[];
  return {
    id,
    rawId: id,
    type: 'public-key',
    response: {
      clientDataJSON: base64url(inner, 'clientDataJSON', path),
      attestationObject: base64url(inner, 'attestationObject', path),
      transports,
    },
    clientExtensionResults: {},
  };
}

/** `body[name]` as a sign-in response (`startAuthentication()`'s result). */
export function readAuthenticationResponse(body: Record<string, unknown>, name = 'response'): AuthenticationResponseJSON {
  const { id, inner } = credentialEnvelope(body, name);
  const path = `${name}.response`;
  const userHandle = memberOf(inner, 'userHandle');
  return {
    id,
    rawId: id,
    type: 'public-key',
    response: {
      clientDataJSON: base64url(inner, 'clientDataJSON', path),
      authenticatorData: base64url(inner, 'authenticatorData', path),
      signature: base64url(inner, 'signature', path),
      // Absent or null when the authenticator returned none; a discoverable sign-in then fails.
      ...(userHandle === undefined || userHandle === null ? {} : { userHandle: base64url(inner, 'userHandle', path, 86) }),
    },
    clientExtensionResults: {},
  };
}
