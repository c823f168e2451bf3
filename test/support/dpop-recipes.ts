/**
 * Materializes the DPoP proof cases of dpop-proofs.json into requests: the Authorization header,
 * the DPoP header(s), and which token they carry. Runtime-neutral (WebCrypto and jose only).
 *
 * A recipe starts from a valid proof for the case's request and bound token (header `typ`,
 * `alg: ES256`, the bound key as `jwk`; claims `jti`, `htm`, `htu`, `iat`, `ath`), applies the
 * case's changes, signs as the case says (by default with the bound key, so the change is the only
 * thing wrong), and transforms the finished proof if asked.
 */
import { generateProof } from 'dpop';
import { accessTokenHash } from '../../packages/verify/src/dpop/proof';
import proofsText from '../security/dpop-proofs.json?raw';
import {
  type CorpusKeys,
  compactJws,
  computed,
  corpusJwks,
  ECDSA_P256,
  type Json,
  type KeyPair,
  makeCorpusKeys,
  merged,
  type RecipeCase,
  signAs,
  transformed,
} from './proof-recipes';

export interface ProofCase extends RecipeCase {
  /** How the token is presented. Default DPoP. */
  authorization?: 'DPoP' | 'Bearer' | 'cookie';
  /** Which token. Default bound (to the proof key, or to `key`). */
  token?: 'bound' | 'unbound';
  /** Which key the token is bound to and the proof is made with. Default p256. */
  key?: 'p256' | 'ed25519';
  /** null: no DPoP header. Default: the recipe's proof. */
  dpop?: null | { raw: string } | { twice: true };
  builder?: 'dpop-package' | 'dpop-package-ed25519';
  /** The wire code, where not invalid_dpop_proof. */
  code?: string;
}

export const proofCorpus = JSON.parse(proofsText) as {
  request: { method: string; url: string };
  refused: ProofCase[];
  accepted: ProofCase[];
};

/** The keys a case can name, made once per test file. */
export type ProofKeys = CorpusKeys;

export const makeProofKeys = makeCorpusKeys;

/** The tokens a case can carry: one bound to each key, one unbound, one that is none of them. */
export interface ProofTokens {
  boundTo: (jkt: string) => string;
  unbound: string;
  other: string;
}

/** What a case becomes: the request's credentials, the token, and the thumbprint it is bound to. */
export interface MaterializedCase {
  presentedAs: 'DPoP' | 'Bearer' | 'cookie';
  token: string;
  boundJkt: string | undefined;
  /** The DPoP header values to send (none, one, or two). */
  dpop: string[];
}

/** The key a case's token is bound to and its proof is made with. */
function caseKey(keys: ProofKeys, testCase: ProofCase): KeyPair {
  return testCase.key === 'ed25519' || testCase.builder === 'dpop-package-ed25519' ? keys.ed25519 : keys.p256;
}

/** A case's value with its computed parts; `{ $ath: which, pad? }` is the hash of a token. */
function compute(value: Json, keys: ProofKeys, tokens: { bound: string; other: string; unbound: string }, nowSeconds: number): Promise<Json> {
  return computed(value, nowSeconds, corpusJwks(keys, 'proof'), 'dpop', (special) => {
    if (!('$ath' in special)) return undefined;
    const which = special.$ath as 'token' | 'other' | 'unbound';
    const token = which === 'token' ? tokens.bound : which === 'other' ? tokens.other : tokens.unbound;
    return accessTokenHash(token).then((hash) => hash + ((special.pad as string | undefined) ?? ''));
  });
}

function signWith(how: string, keys: ProofKeys, proofKey: KeyPair, input: Uint8Array): Promise<Uint8Array> {
  return signAs(how, keys, input, 'dpop', {
    'proof-key': (sign) => sign(proofKey.privateKey.algorithm.name === 'Ed25519' ? { name: 'Ed25519' } : ECDSA_P256, proofKey.privateKey),
  });
}

/**
 * The request a case describes, at `nowSeconds` by the server's clock. `url` and `method` are the
 * corpus's request. Each call makes fresh `jti`s, so materializing one case twice gives two proofs.
 */
export async function materialize(
  testCase: ProofCase,
  keys: ProofKeys,
  tokens: ProofTokens,
  nowSeconds: number,
): Promise<MaterializedCase> {
  const { method, url } = proofCorpus.request;
  const proofKey = caseKey(keys, testCase);
  const bound = tokens.boundTo(proofKey.jkt);
  const unbound = testCase.token === 'unbound';
  const token = unbound ? tokens.unbound : bound;
  const presentedAs = testCase.authorization ?? 'DPoP';
  const result = { presentedAs, token, boundJkt: unbound ? undefined : proofKey.jkt };

  if (testCase.dpop === null) return { ...result, dpop: [] };
  if (testCase.dpop && 'raw' in testCase.dpop) return { ...result, dpop: [testCase.dpop.raw.replace('{{token}}', token)] };

  let proof: string;
  if (testCase.builder !== undefined) {
    // An independent builder: its proofs must pass as they are, iat from the real clock included.
    proof = await generateProof(
      { privateKey: proofKey.privateKey, publicKey: proofKey.publicKey },
      url,
      method,
      undefined,
      presentedAs === 'DPoP' ? token : undefined,
    );
  } else {
    const tokensForValues = { bound, other: tokens.other, unbound: tokens.unbound };
    const computeValue = (value: Json) => compute(value, keys, tokensForValues, nowSeconds);
    const baseHeader: Record<string, Json> = {
      typ: 'dpop+jwt',
      alg: proofKey === keys.ed25519 ? 'EdDSA' : 'ES256',
      jwk: proofKey.publicJwk as Record<string, Json>,
    };
    const baseClaims: Record<string, Json> = { jti: crypto.randomUUID(), htm: method, htu: url, iat: nowSeconds };
    baseClaims.ath = await accessTokenHash(token);
    const header = await merged(baseHeader, testCase.header, computeValue);
    const claims = await merged(baseClaims, testCase.claims, computeValue);
    proof = await compactJws(header, claims, testCase.claimsText, (input) => signWith(testCase.sign ?? 'proof-key', keys, proofKey, input));
    if (testCase.transform !== undefined) {
      proof = transformed(proof, testCase.transform, { ...claims, jti: crypto.randomUUID() }, 'dpop+jwt', 'dpop');
    }
  }
  const twice = testCase.dpop !== undefined && 'twice' in testCase.dpop;
  return { ...result, dpop: twice ? [proof, proof] : [proof] };
}

/** The request a materialized case is sent as (`cookie` cases carry the token as latchkey's cookie). */
export function requestOf(materialized: MaterializedCase): Request {
  const headers = new Headers();
  if (materialized.presentedAs === 'cookie') headers.set('cookie', `latchkey_at=${materialized.token}`);
  else headers.set('authorization', `${materialized.presentedAs} ${materialized.token}`);
  for (const proof of materialized.dpop) headers.append('dpop', proof);
  return new Request(proofCorpus.request.url, { method: proofCorpus.request.method, headers });
}
