/**
 * Materializes the DBSC proof cases of dbsc-proofs.json into requests and the state they meet:
 * the `Secure-Session-Response` header(s), the key registered for the session (on refresh), and
 * the session's live challenges. Runtime-neutral (WebCrypto and jose only).
 *
 * A recipe starts from a valid proof for the case's use and key (header `typ: dbsc+jwt`, the
 * key's `alg`, its public `jwk` on registration; claims `jti` = the case's challenge), applies the
 * case's changes, signs as the case says (by default with the session's key, so the change is the
 * only thing wrong), and transforms the finished proof if asked.
 */
import { base64url, decodeProtectedHeader, type JWK } from 'jose';
import type { DbscAlgorithm } from '../../src/dbsc/algorithms';
import { challengeLifetimeMs, type DbscChallenge, newChallenge } from '../../src/dbsc/challenges';
import { DBSC_HEADERS, DBSC_REFRESH_PATH, DBSC_REGISTRATION_PATH } from '../../src/dbsc/headers';
import { type DbscPublicKey, publicDbscJwk } from '../../src/dbsc/proof';
import corpusText from '../security/dbsc-proofs.json?raw';
import {
  type CorpusKeys,
  compactJws,
  computed,
  corpusJwks,
  described,
  ECDSA_P256,
  type Json,
  type KeyPair,
  makeCorpusKeys,
  merged,
  PKCS1,
  type RecipeCase,
  signAs,
  transformed,
} from './proof-recipes';

export type ChallengeState = 'live' | 'used' | 'expired' | 'ahead-last-moment' | 'other-session' | 'never-issued';

export interface DbscProofCase extends RecipeCase {
  use: 'registration' | 'refresh';
  /** The session's key: what registers, or what was registered. Default p256. */
  key?: 'p256' | 'rsa';
  /** null: no header. Default: the recipe's proof, bare. */
  response?: null | { raw: string } | { twice: true } | { quoted: true; suffix?: string };
  /** The challenge the proof signs. Default live. */
  challenge?: ChallengeState;
  /** A proof Chromium sent, used as it is (with its own key and challenge). */
  recorded?: 'registration' | 'refresh';
}

export const dbscCorpus = JSON.parse(corpusText) as {
  refused: DbscProofCase[];
  accepted: DbscProofCase[];
  recorded: { registration: string; refresh: string };
};

/** The session a case's request is for, and another session of the same user. */
export const SESSION_A = 'session-a';
export const SESSION_B = 'session-b';

const ORIGIN = 'https://latchkey.test';

export interface DbscKeys extends CorpusKeys {
  rsa1024: KeyPair;
}

/** RSA below 2048 bits, which jose will not make: straight from WebCrypto. */
async function rsa1024(): Promise<KeyPair> {
  const { privateKey, publicKey } = (await crypto.subtle.generateKey(
    { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    true,
    ['sign', 'verify'],
  )) as CryptoKeyPair;
  return described(privateKey, publicKey);
}

export async function makeDbscKeys(): Promise<DbscKeys> {
  const [keys, small] = await Promise.all([makeCorpusKeys(), rsa1024()]);
  return { ...keys, rsa1024: small };
}

/** What a case becomes: the request, and the state it meets. */
export interface MaterializedDbscCase {
  request: Request;
  /** The key registered for session A (refresh cases only). */
  registered: DbscPublicKey | undefined;
  /** The user's live challenges before the request. */
  live: DbscChallenge[];
  /** The challenge the proof signs, when it is one of `live`. */
  signed: DbscChallenge | undefined;
  nowMs: number;
  /** For `replay` cases: the same request again. */
  again: () => Request;
}

/** The registered form of a public JWK of `alg` (as the user's object keeps it). */
function registeredKey(alg: DbscAlgorithm, jwk: JWK): DbscPublicKey {
  const publicJwk = publicDbscJwk(jwk, alg);
  if (!publicJwk) throw new Error('dbsc corpus: not a registrable key');
  return { alg, jwk: publicJwk };
}

function challengesFor(state: ChallengeState, nowMs: number, ttlSeconds: number): { live: DbscChallenge[]; jti: string; signed?: DbscChallenge } {
  const immediate = challengeLifetimeMs('refresh', ttlSeconds);
  const ahead = challengeLifetimeMs('ahead', ttlSeconds);
  // One unrelated live challenge of each session, so that a refusal visibly leaves others alone.
  const bystanders = [newChallenge(SESSION_A, nowMs - 1000, ahead), newChallenge(SESSION_B, nowMs - 1000, ahead)];
  switch (state) {
    case 'live': {
      const signed = newChallenge(SESSION_A, nowMs - 200, immediate);
      return { live: [...bystanders, signed], jti: signed.value, signed };
    }
    case 'ahead-last-moment': {
      const signed = newChallenge(SESSION_A, nowMs - ahead + 1, ahead);
      return { live: [...bystanders, signed], jti: signed.value, signed };
    }
    case 'used':
      // Used up: deleted, so only its value is known, to whoever kept the proof.
      return { live: bystanders, jti: newChallenge(SESSION_A, nowMs - 2000, immediate).value };
    case 'expired': {
      const old = newChallenge(SESSION_A, nowMs - 61_000, immediate);
      return { live: [...bystanders, old], jti: old.value };
    }
    case 'other-session': {
      const theirs = newChallenge(SESSION_B, nowMs - 200, immediate);
      return { live: [...bystanders, theirs], jti: theirs.value };
    }
    case 'never-issued':
      return { live: bystanders, jti: newChallenge(SESSION_A, nowMs, immediate).value };
  }
}

/** A case's value with its computed parts; `{ $padModulus: bytes }` is rsa1024's modulus, zero-padded. */
function compute(value: Json, keys: DbscKeys, nowSeconds: number): Promise<Json> {
  const jwks = { ...corpusJwks(keys, 'session'), rsa1024: keys.rsa1024.publicJwk };
  return computed(value, nowSeconds, jwks, 'dbsc', (special) => {
    if (!('$padModulus' in special)) return undefined;
    const n = base64url.decode(keys.rsa1024.publicJwk.n as string);
    const padded = new Uint8Array(special.$padModulus as number);
    padded.set(n, padded.length - n.length);
    return Promise.resolve(base64url.encode(padded));
  });
}

function signWith(how: string, keys: DbscKeys, sessionKey: 'p256' | 'rsa', input: Uint8Array): Promise<Uint8Array> {
  return signAs(how, keys, input, 'dbsc', {
    'session-key': (sign) => (sessionKey === 'rsa' ? sign(PKCS1, keys.rsa.privateKey) : sign(ECDSA_P256, keys.p256.privateKey)),
    'rsa1024-key': (sign) => sign(PKCS1, keys.rsa1024.privateKey),
    'rsa-pss': async (sign) => {
      const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.rsa.privateKey);
      const pss = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSA-PSS', hash: 'SHA-256' }, false, ['sign']);
      return sign({ name: 'RSA-PSS', saltLength: 32 }, pss);
    },
  });
}

/** The `jti` of a compact JWS, read without verifying (for recorded proofs). */
function jtiOf(proof: string): string {
  return (JSON.parse(new TextDecoder().decode(base64url.decode(proof.split('.')[1] as string))) as { jti: string }).jti;
}

function requestWith(use: DbscProofCase['use'], values: string[]): Request {
  const headers = new Headers();
  if (use === 'refresh') headers.set(DBSC_HEADERS.sessionId, `${SESSION_A}`);
  for (const value of values) headers.append(DBSC_HEADERS.response, value);
  return new Request(`${ORIGIN}${use === 'refresh' ? DBSC_REFRESH_PATH : DBSC_REGISTRATION_PATH}`, { method: 'POST', headers });
}

/** The request a case describes, and the state it meets, at `nowMs` by the server's clock. */
export async function materialize(testCase: DbscProofCase, keys: DbscKeys, nowMs: number, ttlSeconds: number): Promise<MaterializedDbscCase> {
  const nowSeconds = Math.floor(nowMs / 1000);
  const sessionKey = testCase.key ?? 'p256';
  const alg: DbscAlgorithm = sessionKey === 'rsa' ? 'RS256' : 'ES256';
  let { live, jti, signed } = challengesFor(testCase.challenge ?? 'live', nowMs, ttlSeconds);
  let registered = testCase.use === 'refresh' ? registeredKey(alg, keys[sessionKey].publicJwk) : undefined;

  let proof: string;
  if (testCase.recorded !== undefined) {
    proof = dbscCorpus.recorded[testCase.recorded];
    const recordedKey = decodeProtectedHeader(dbscCorpus.recorded.registration).jwk as JWK;
    if (testCase.use === 'refresh') registered = registeredKey('ES256', recordedKey);
    signed = { value: jtiOf(proof), sessionId: SESSION_A, expiresAtMs: nowMs + 1000 };
    live = [...live, signed];
    jti = signed.value;
  } else {
    const computeValue = (value: Json) => compute(value, keys, nowSeconds);
    const baseHeader: Record<string, Json> = { alg, typ: 'dbsc+jwt' };
    if (testCase.use === 'registration') baseHeader.jwk = keys[sessionKey].publicJwk as Record<string, Json>;
    const header = await merged(baseHeader, testCase.header, computeValue);
    const claims = await merged({ jti }, testCase.claims, computeValue);
    proof = await compactJws(header, claims, testCase.claimsText, (input) => signWith(testCase.sign ?? 'session-key', keys, sessionKey, input));
    if (testCase.transform !== undefined) {
      proof = transformed(proof, testCase.transform, { ...claims, jti: live[0]?.value ?? 'x' }, 'dbsc+jwt', 'dbsc');
    }
  }

  const response = testCase.response;
  let values: string[];
  if (response === null) values = [];
  else if (response === undefined) values = [proof];
  else if ('raw' in response) values = [response.raw];
  else if ('twice' in response) values = [proof, proof];
  else values = [`"${proof}"${response.suffix ?? ''}`];

  return { request: requestWith(testCase.use, values), registered, live, signed, nowMs, again: () => requestWith(testCase.use, values) };
}
