// What the command-line client keeps on disk, and how it signs DPoP proofs (RFC 9449) with it.
// Node's WebCrypto and jose; no browser, no IndexedDB: the private key lives in a file that only
// its owner can read (mode 0600, in a directory of mode 0700), as SSH keeps its keys.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';

const KEY_FILE = 'dpop-key.jwk';
const SESSION_FILE = 'session.json';

/** Writes `text` readable and writable by its owner only, whatever the umask. */
function writePrivate(path, text) {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** A file that others can read is no private key: refuse it rather than use it (ssh does the same). */
function assertPrivate(path) {
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new Error(`${path} is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${path}`);
  }
}

/** The directory the client keeps its files in, created owner-only. */
export function openDirectory(dir) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * The client's DPoP key: read from `dir`, or made (ES256) and written there on first use. Returns
 * the private key for signing, the public JWK for the proof header, and its RFC 7638 thumbprint
 * (the `cnf.jkt` latchkey binds the session to).
 */
export async function loadOrCreateKey(dir) {
  const path = join(dir, KEY_FILE);
  let privateJwk;
  if (existsSync(path)) {
    assertPrivate(path);
    privateJwk = JSON.parse(readFileSync(path, 'utf8'));
  } else {
    // Extractable once, to be written to the file; every later use imports it non-extractable.
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    privateJwk = await exportJWK(privateKey);
    writePrivate(path, `${JSON.stringify(privateJwk)}\n`);
  }
  const { kty, crv, x, y } = privateJwk;
  const jwk = { kty, crv, x, y };
  return { privateKey: await importJWK(privateJwk, 'ES256'), jwk, jkt: await calculateJwkThumbprint(jwk), path };
}

/** Deletes the key: after logout it proves nothing, and the next login makes a new one. */
export function forgetKey(dir) {
  rmSync(join(dir, KEY_FILE), { force: true });
}

/** The saved session (token, its type, the server's clock offset), or null. */
export function loadSession(dir) {
  const path = join(dir, SESSION_FILE);
  if (!existsSync(path)) return null;
  assertPrivate(path);
  return JSON.parse(readFileSync(path, 'utf8'));
}

export function saveSession(dir, session) {
  writePrivate(join(dir, SESSION_FILE), `${JSON.stringify(session, null, 2)}\n`);
}

export function forgetSession(dir) {
  rmSync(join(dir, SESSION_FILE), { force: true });
}

/**
 * A DPoP proof for one request: `htu` without query and fragment, `iat` by the server's clock
 * (`serverOffsetMs`: what the `Date` of latchkey's answers said, minus this machine's clock), and
 * `ath` over the token when one is sent.
 */
export async function makeProof(key, { method, url, accessToken, serverOffsetMs = 0 }) {
  const parsed = new URL(url);
  const claims = { jti: crypto.randomUUID(), htm: method, htu: `${parsed.origin}${parsed.pathname}` };
  if (accessToken !== undefined) {
    claims.ath = base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken))));
  }
  return new SignJWT(claims)
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk })
    .setIssuedAt(Math.floor((Date.now() + serverOffsetMs) / 1000))
    .sign(key.privateKey);
}

/** The server's clock minus this machine's, from an answer's `Date` (whole seconds); undefined without one. */
export function serverOffsetOf(response) {
  const date = Date.parse(response.headers.get('date') ?? '');
  return Number.isNaN(date) ? undefined : date - Date.now();
}
