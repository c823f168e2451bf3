import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { now } from '../clock';
import { observeHash } from './budget';

/**
 * Password hashing with scrypt at OWASP's N=2^14, r=8, p=5 row.
 *
 * Why scrypt and not PBKDF2: production Workers cap WebCrypto PBKDF2 at 100,000 iterations, a
 * sixth of OWASP's 600,000 for PBKDF2-SHA256, and local workerd has no cap, so a local run would
 * hide a production failure. scrypt from node:crypto (nodejs_compat) has no such cap, is
 * memory-hard, and this row needs 128·N·r = 16 MiB, well inside the 128 MB isolate even with a few
 * logins in flight. OWASP's rows are equal in CPU; the low-memory one is the right one here.
 *
 * Stored as a self-describing, versioned string, so parameters can be raised later: a hash with
 * older parameters verifies as before and is reported as needing an upgrade.
 *   $scrypt$v=1$ln=14,r=8,p=5$<salt, base64url>$<key, base64url>
 */

export interface ScryptParameters {
  /** log2 of N, the CPU/memory cost. */
  ln: number;
  r: number;
  p: number;
}

export const CURRENT_PARAMETERS: Readonly<ScryptParameters> = { ln: 14, r: 8, p: 5 };

/** Longest password accepted (API.md); checked by callers before any hashing. */
export const MAX_PASSWORD_LENGTH = 256;

const SALT_BYTES = 16;
const KEY_BYTES = 32;
const FORMAT = /^\$scrypt\$v=1\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]{22})\$([A-Za-z0-9_-]{43})$/;

/**
 * Derives the key, and reports to the hash budget (budget.ts) how long the isolate was held. In
 * workerd scrypt runs on the isolate's thread, and inside a Worker the clock moves only when I/O
 * completes: the timer turn after the hash is that I/O, so the time read then includes the hash.
 */
async function derive(password: string, salt: Uint8Array, params: ScryptParameters): Promise<Buffer> {
  const N = 2 ** params.ln;
  const startedMs = now();
  const key = await new Promise<Buffer>((resolve, reject) => {
    scrypt(
      password.normalize('NFKC'),
      salt,
      KEY_BYTES,
      { N, r: params.r, p: params.p, maxmem: 256 * N * params.r },
      (error, derived) => (error ? reject(error) : resolve(derived)),
    );
  });
  await new Promise((resolve) => setTimeout(resolve, 0));
  observeHash(now() - startedMs);
  return key;
}

function encode(params: ScryptParameters, salt: Uint8Array, key: Uint8Array): string {
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
  return `$scrypt$v=1$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

function sameParameters(a: ScryptParameters, b: ScryptParameters): boolean {
  return a.ln === b.ln && a.r === b.r && a.p === b.p;
}

/** Hashes a password with a fresh 16-byte salt and the current parameters. */
export async function hashPassword(password: string, params: ScryptParameters = CURRENT_PARAMETERS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  return encode(params, salt, await derive(password, salt, params));
}

export interface PasswordCheck {
  ok: boolean;
  /** True when the stored hash uses older parameters and should be replaced after this login. */
  needsRehash: boolean;
}

// A stored hash for unknown emails: verifying against it costs exactly what a real check costs.
const DECOY = encode(CURRENT_PARAMETERS, new Uint8Array(SALT_BYTES), new Uint8Array(KEY_BYTES));

/**
 * Checks a password against a stored hash in constant time over fixed-length digests. With
 * `stored` undefined (an unknown email) the same scrypt work is done against a decoy and the
 * answer is false, so the two cases cost the same.
 */
export async function verifyPassword(password: string, stored: string | undefined): Promise<PasswordCheck> {
  const match = FORMAT.exec(stored ?? DECOY);
  if (!match) throw new Error('stored password hash has an unknown format');
  const params = { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  const salt = Buffer.from(match[4] as string, 'base64url');
  const expected = Buffer.from(match[5] as string, 'base64url');
  const actual = await derive(password, salt, params);
  const equal = timingSafeEqual(actual, expected);
  return { ok: equal && stored !== undefined, needsRehash: !sameParameters(params, CURRENT_PARAMETERS) };
}
