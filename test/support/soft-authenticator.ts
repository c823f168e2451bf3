/**
 * A software authenticator for tests that run without a browser: it answers WebAuthn creation and
 * request options as a platform authenticator holding discoverable ES256 credentials would, with
 * WebCrypto keys, attestation "none", and byte layouts from WebAuthn Level 3 §6.1 (authenticator
 * data) and §5.8.1 (client data). CBOR is encoded by SimpleWebAuthn's own encoder; only the
 * ECDSA signature's DER wrapping (WebAuthn §6.5.6 wants ASN.1, WebCrypto gives r || s) is done here.
 *
 * Every field a relying party checks can be overridden, so tests can present exactly the wrong
 * origin, RP ID, type, challenge, user handle or counter they mean to.
 */
import { isoBase64URL, isoCBOR } from '@simplewebauthn/server/helpers';

/** Authenticator data flags (WebAuthn §6.1). */
export const FLAG = { UP: 0x01, UV: 0x04, BE: 0x08, BS: 0x10, AT: 0x40 } as const;

function utf8(text: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new TextEncoder().encode(text));
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function uint32(value: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** One ASN.1 INTEGER of an unsigned big-endian number: leading zeros dropped, one added if the top bit is set. */
function derInteger(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  let body = bytes.slice(start);
  if ((body[0] as number) & 0x80) body = concat(new Uint8Array([0]), body);
  return concat(new Uint8Array([0x02, body.length]), body);
}

/** ECDSA-Sig-Value (RFC 3279 §2.2.3) of a raw P-256 r || s signature. */
function derSignature(raw: Uint8Array): Uint8Array<ArrayBuffer> {
  const sequence = concat(derInteger(raw.slice(0, 32)), derInteger(raw.slice(32)));
  return concat(new Uint8Array([0x30, sequence.length]), sequence);
}

export interface ClientDataOverrides {
  type?: string;
  challenge?: string;
  origin?: string;
  crossOrigin?: boolean;
  topOrigin?: string;
}

export interface CeremonyOverrides {
  /** The RP ID whose SHA-256 goes into the authenticator data (default: the options' own). */
  rpId?: string;
  flags?: number;
  /** The signature counter to report; default: one more than the last one used. */
  counter?: number;
  clientData?: ClientDataOverrides;
  /** The user handle to return (base64url); default: the one given at registration. */
  userHandle?: string | null;
}

interface CreationOptions {
  challenge: string;
  rp: { id?: string };
  user: { id: string };
}

interface RequestOptions {
  challenge: string;
  rpId?: string;
}

/** The JSON SimpleWebAuthn's browser package sends for `navigator.credentials.create()`. */
export interface RegistrationJSON {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; attestationObject: string; transports: string[] };
  clientExtensionResults: Record<string, unknown>;
  authenticatorAttachment: 'platform';
}

/** The JSON SimpleWebAuthn's browser package sends for `navigator.credentials.get()`. */
export interface AuthenticationJSON {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; authenticatorData: string; signature: string; userHandle?: string };
  clientExtensionResults: Record<string, unknown>;
  authenticatorAttachment: 'platform';
}

/** One discoverable credential, as an authenticator holds it. */
export class SoftCredential {
  /** The credential ID, base64url. */
  readonly id: string;
  /** The last signature counter reported. */
  counter = 0;
  userHandle: string | null = null;

  private constructor(
    private readonly keys: CryptoKeyPair,
    private readonly rawId: Uint8Array<ArrayBuffer>,
    /** Who the browser says it is: every ceremony's clientDataJSON origin, unless overridden. */
    readonly origin: string,
    /** Whether the credential is synced (backup eligible and backed up), like most passkeys. */
    readonly synced: boolean,
  ) {
    this.id = isoBase64URL.fromBuffer(rawId);
  }

  static async create(origin = 'http://localhost:8787', options: { synced?: boolean } = {}): Promise<SoftCredential> {
    const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    return new SoftCredential(keys, crypto.getRandomValues(new Uint8Array(16)), origin, options.synced ?? true);
  }

  private defaultFlags(): number {
    return FLAG.UP | FLAG.UV | (this.synced ? FLAG.BE | FLAG.BS : 0);
  }

  private clientData(type: string, challenge: string, overrides: ClientDataOverrides = {}): Uint8Array<ArrayBuffer> {
    return utf8(
      JSON.stringify({ type, challenge, origin: this.origin, crossOrigin: false, ...overrides }),
    );
  }

  /** The COSE_Key of the public key (RFC 9053 §7.1.1: kty EC2, alg ES256, crv P-256, x, y). */
  private async coseKey(): Promise<Uint8Array<ArrayBuffer>> {
    const jwk = (await crypto.subtle.exportKey('jwk', this.keys.publicKey)) as JsonWebKey;
    return isoCBOR.encode(
      new Map<number, number | Uint8Array>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, isoBase64URL.toBuffer(jwk.x as string)],
        [-3, isoBase64URL.toBuffer(jwk.y as string)],
      ]),
    );
  }

  /** Answers creation options (the JSON of `POST /auth/passkeys/register/options`). */
  async register(options: CreationOptions, overrides: CeremonyOverrides = {}): Promise<RegistrationJSON> {
    this.userHandle = options.user.id;
    const rpId = overrides.rpId ?? options.rp.id ?? 'localhost';
    const counter = overrides.counter ?? 0;
    this.counter = counter;
    const credentialLength = new Uint8Array([this.rawId.length >> 8, this.rawId.length & 0xff]);
    const authData = concat(
      await sha256(utf8(rpId)),
      new Uint8Array([overrides.flags ?? this.defaultFlags() | FLAG.AT]),
      uint32(counter),
      new Uint8Array(16), // AAGUID: all zeros, as for attestation "none"
      credentialLength,
      this.rawId,
      await this.coseKey(),
    );
    const attestationObject = isoCBOR.encode(
      new Map<string, string | Map<string, string> | Uint8Array>([
        ['fmt', 'none'],
        ['attStmt', new Map<string, string>()],
        ['authData', authData],
      ]),
    );
    const clientData = this.clientData('webauthn.create', options.challenge, overrides.clientData);
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: isoBase64URL.fromBuffer(clientData),
        attestationObject: isoBase64URL.fromBuffer(attestationObject),
        transports: ['internal', 'hybrid'],
      },
      clientExtensionResults: { credProps: { rk: true } },
      authenticatorAttachment: 'platform',
    };
  }

  /** Answers request options (the JSON of `POST /auth/passkeys/login/options`), signing the assertion. */
  async authenticate(options: RequestOptions, overrides: CeremonyOverrides = {}): Promise<AuthenticationJSON> {
    const rpId = overrides.rpId ?? options.rpId ?? 'localhost';
    const counter = overrides.counter ?? this.counter + 1;
    this.counter = Math.max(this.counter, counter);
    const authData = concat(
      await sha256(utf8(rpId)),
      new Uint8Array([overrides.flags ?? this.defaultFlags()]),
      uint32(counter),
    );
    const clientData = this.clientData('webauthn.get', options.challenge, overrides.clientData);
    const signed = concat(authData, await sha256(clientData));
    const raw = new Uint8Array(
      await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, this.keys.privateKey, signed),
    );
    const userHandle = overrides.userHandle === undefined ? this.userHandle : overrides.userHandle;
    return {
      id: this.id,
      rawId: this.id,
      type: 'public-key',
      response: {
        clientDataJSON: isoBase64URL.fromBuffer(clientData),
        authenticatorData: isoBase64URL.fromBuffer(authData),
        signature: isoBase64URL.fromBuffer(derSignature(raw)),
        ...(userHandle === null ? {} : { userHandle }),
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    };
  }
}
