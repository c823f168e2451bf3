// What the browser tests run against: latchkey under `npm start` with a short token lifetime,
// two tiny page servers on other origins, and Debian's Chromium driven by playwright-core.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { base64url, calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { chromium } from 'playwright-core';
import { startLocalServer } from '../../scripts/local-server.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Git-ignored: screenshots and the server's log land here. */
export const ARTIFACTS = join(ROOT, 'test-results', 'browser');

const env = (name, fallback) => Number(process.env[name] ?? fallback);
/**
 * Ports can be moved with LATCHKEY_E2E_PORT (and the four after it) and LATCHKEY_E2E_INSPECTOR_PORT
 * (and the one after it). The command-line client's test (test/tools/cli-client.test.ts) runs its
 * own latchkey on `cli`, so that it never meets this suite's server.
 */
const API_PORT = env('LATCHKEY_E2E_PORT', 8801);
const INSPECTOR_PORT = env('LATCHKEY_E2E_INSPECTOR_PORT', 9301);
export const PORTS = {
  api: API_PORT,
  inspector: INSPECTOR_PORT,
  allowedPage: API_PORT + 1,
  otherPage: API_PORT + 2,
  cli: API_PORT + 4,
  cliInspector: INSPECTOR_PORT + 1,
};
export const API = `http://localhost:${PORTS.api}`;
export const ALLOWED_PAGE = `http://localhost:${PORTS.allowedPage}`;
export const OTHER_PAGE = `http://localhost:${PORTS.otherPage}`;

/**
 * A few seconds, so the tests see several renewals without waiting long. REUSE_GRACE is kept
 * below it: rule 6 answers the current generation's token, which is up to REUSE_GRACE old, and a
 * grace longer than the lifetime would hand back tokens that are already expired. It must also
 * stay short enough that replaying the previous token is reuse, not grace, a few seconds later.
 */
export const TTL_SECONDS = 4;
export const REUSE_GRACE_SECONDS = 2;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** The Chromium scripts/dbsc-chromium.sh unpacks for the DBSC tests (`npm run test:browser` runs it first). */
const DBSC_CHROMIUM = process.env.DBSC_CHROMIUM_PATH ?? join(ROOT, '.cache', 'chromium-dbsc', 'usr', 'lib', 'chromium', 'chromium');
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Device Bound Session Credentials: Chromium does them on http://localhost with a software key
 * when started with these. The two test-only switches make a 4-second token behave as a real
 * lifetime does: without them, Chromium refreshes on every request once the cookie is within two
 * minutes of expiry (always, for a 4-second one), and stops after six signatures in nine minutes.
 */
export const DBSC_CHROMIUM_FLAGS = [
  '--enable-features=DeviceBoundSessions:RefreshQuota/false,EnableBoundSessionCredentialsSoftwareKeysForManualTesting',
  '--disable-features=DeviceBoundSessionProactiveRefresh',
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts `npm start` on this suite's ports (or `port` and `inspectorPort`) and waits for /health
 * (scripts/local-server.mjs; `stop()` ends npm start, wrangler and workerd together). Tokens live
 * `ttlSeconds` (keep it above REUSE_GRACE_SECONDS).
 */
export async function startLatchkey({
  startTimeoutMs = 120_000,
  port = PORTS.api,
  inspectorPort = PORTS.inspector,
  ttlSeconds = TTL_SECONDS,
  logName = 'latchkey.log',
} = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const logPath = join(ARTIFACTS, logName);
  const api = `http://localhost:${port}`;
  const server = await startLocalServer({
    port,
    inspectorPort,
    logPath,
    startTimeoutMs,
    vars: {
      ACCESS_TOKEN_TTL: ttlSeconds,
      REUSE_GRACE: REUSE_GRACE_SECONDS,
      ISSUER: api,
      ALLOWED_ORIGINS: `${api},${ALLOWED_PAGE}`,
      // The demo page completes the emailed links, as it does under a plain `npm start`.
      APP_URL: `${api}/`,
    },
  });
  return { stop: server.stop, logPath, url: api, mailTo: (to, subject) => mailFromLog(logPath, to, subject) };
}

/**
 * The newest message to `to` with `subject` that latchkey sent, read from the file the local
 * `send_email` binding wrote: wrangler dev logs "send_email binding called with the following
 * message:" and the file's path on the next line. Waits for it (messages go out after the answer).
 */
async function mailFromLog(logPath, to, subject, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = readFileSync(logPath, 'utf8');
    const paths = [...log.matchAll(/send_email binding called with the following message:\s+(\S+\.eml)/g)].map((match) => match[1]);
    for (const path of paths.reverse()) {
      const raw = readFileSync(path, 'utf8');
      const header = (name) => new RegExp(`^${name}: (.*)$`, 'im').exec(raw)?.[1]?.trim();
      if (header('To') === to && header('Subject') === subject) return { path, raw };
    }
    if (Date.now() > deadline) throw new Error(`no message "${subject}" to ${to} in ${logPath}`);
    await sleep(200);
  }
}

/** The link of `purpose` (verify, reset) in a message's plain-text part. */
export function linkInMail(raw, purpose) {
  const found = new RegExp(`(http\\S+#${purpose}=[A-Za-z0-9_-]{43})\\s`).exec(raw);
  if (!found) throw new Error(`no ${purpose} link in the message`);
  return found[1];
}

/**
 * Launches Debian's Chromium, or fails saying how to get it. Never downloads a browser.
 * `dbsc: true` adds DBSC_CHROMIUM_FLAGS.
 */
export async function launchChromium({ dbsc = false } = {}) {
  const executablePath = dbsc ? DBSC_CHROMIUM : CHROMIUM;
  if (!existsSync(executablePath)) {
    throw new Error(
      dbsc
        ? `The DBSC tests' Chromium is missing at ${executablePath}: run \`sh scripts/dbsc-chromium.sh\` ` +
            '(npm run test:browser does) or point DBSC_CHROMIUM_PATH at a Chromium that does DBSC.'
        : `Chromium is missing at ${executablePath}. Install Debian's package (apt-get install -y chromium) ` +
            'or point CHROMIUM_PATH at a Chromium binary.',
    );
  }
  const args = dbsc ? [...CHROMIUM_FLAGS, ...DBSC_CHROMIUM_FLAGS] : CHROMIUM_FLAGS;
  return chromium.launch({ executablePath, headless: true, args, timeout: 60_000 });
}

/** A fresh profile: `newContext()` gives each test its own cookie jar, storage and locks. */
export function newContext(browser, options = {}) {
  return browser.newContext({ viewport: { width: 1100, height: 900 }, ...options });
}

/** Serves one HTML page at / on `port` (loopback only). */
export function servePage(port, html) {
  const server = createServer((request, response) => {
    if (request.url === '/' || request.url?.startsWith('/?')) {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(html);
    } else {
      response.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ close: () => new Promise((done) => server.close(() => done())) }));
  });
}

let counter = 0;
/** A fresh account's email and password. */
export function newAccount(prefix = 'browser') {
  counter += 1;
  return {
    email: `${prefix}-${Date.now().toString(36)}-${counter}@example.com`,
    password: 'correct horse battery staple',
  };
}

/**
 * Counts POST /auth/renew requests the browser sends from any page of `context`. Each answer is
 * recorded with the request's DPoP proof (null without one), the answer's `token_type` and, in
 * bearer mode, its token: read them once `settled()` has resolved.
 */
export function countRenewals(context) {
  const counter = { count: 0, responses: [], pending: [], settled: () => Promise.all(counter.pending) };
  context.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/auth/renew') counter.count += 1;
  });
  context.on('response', (response) => {
    const request = response.request();
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/auth/renew') {
      const entry = { status: response.status(), url: response.url(), proof: null, tokenType: null, accessToken: null };
      counter.responses.push(entry);
      counter.pending.push(
        (async () => {
          entry.proof = (await request.allHeaders()).dpop ?? null;
          const body = await response.json().catch(() => ({}));
          entry.tokenType = body.token_type ?? null;
          entry.accessToken = body.access_token ?? null;
        })(),
      );
    }
  });
  return counter;
}

/** The RFC 7638 thumbprint of the key that signed a DPoP proof (the `jwk` in its header). */
export function proofKeyThumbprint(proof) {
  return calculateJwkThumbprint(decodeProtectedHeader(proof).jwk);
}

/** The key a token is bound to (`cnf.jkt`), undefined for an unbound one. Read, not verified. */
export function boundKeyOf(token) {
  return decodeJwt(token).cnf?.jkt;
}

/**
 * What a page of `origin` holds in IndexedDB as the browser client's key for `scope` (the client's
 * mode and base URL), and what trying to export its private half gives, in the page itself.
 */
export function storedProofKey(page, scope) {
  return page.evaluate(async (scope) => {
    const done = (request) =>
      new Promise((resolve, reject) => {
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    const databases = await indexedDB.databases();
    if (!databases.some((database) => database.name === 'latchkey')) return null;
    const database = await done(indexedDB.open('latchkey'));
    try {
      if (!database.objectStoreNames.contains('dpop-keys')) return null;
      const stored = await done(database.transaction('dpop-keys').objectStore('dpop-keys').get(scope));
      if (!stored) return null;
      const attempts = {};
      for (const format of ['jwk', 'pkcs8']) {
        try {
          await crypto.subtle.exportKey(format, stored.privateKey);
          attempts[format] = 'exported';
        } catch (error) {
          attempts[format] = error.name;
        }
      }
      const { privateKey } = stored;
      return {
        jwk: stored.jwk,
        isCryptoKey: privateKey instanceof CryptoKey,
        type: privateKey.type,
        extractable: privateKey.extractable,
        algorithm: privateKey.algorithm,
        export: attempts,
      };
    } finally {
      database.close();
    }
  }, scope);
}

/** A key of this test process's: what someone holding a copied token but not the browser's key has. */
export async function foreignProofKey() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const { kty, crv, x, y } = await exportJWK(publicKey);
  return { privateKey, jwk: { kty, crv, x, y } };
}

/** A well-formed DPoP proof for one request, signed by `key`, with `ath` over `token` when given. */
export async function proofFor(key, { method, url, token }) {
  const claims = { jti: crypto.randomUUID(), htm: method, htu: url };
  if (token !== undefined) {
    claims.ath = base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))));
  }
  return new SignJWT(claims).setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk }).setIssuedAt().sign(key.privateKey);
}
