/**
 * The key this browser proves possession with (DPoP, RFC 9449): ES256, created by WebCrypto with
 * its private half non-extractable, so no script (the page's own, or one injected into it) can
 * read it out and carry it elsewhere. It is kept in IndexedDB, which stores the `CryptoKey` object
 * itself, so every tab of the origin signs with the same key and it survives reloads.
 *
 * What that protects: a copy of a token bound to this key (from a log, a proxy, a backup, a
 * script that read it) is worth nothing without the key. What it does not: a script running in
 * the page while it is open can ask this key to sign, and so use the session from the page; it
 * cannot take the key away.
 */

import type { ProofSigner } from './proof.js';

const DATABASE = 'latchkey';
const STORE = 'dpop-keys';
const ALGORITHM: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

/** A stored key: its private half, and the public one as the proof's `jwk` header carries it. */
export type ProofKey = ProofSigner;

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDatabase(): Promise<IDBDatabase> {
  const opening = indexedDB.open(DATABASE, 1);
  opening.onupgradeneeded = () => {
    if (!opening.result.objectStoreNames.contains(STORE)) opening.result.createObjectStore(STORE);
  };
  return request(opening);
}

async function inStore<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const database = await openDatabase();
  try {
    const transaction = database.transaction(STORE, mode);
    // Listened to before anything is awaited: a transaction commits on its own once idle.
    const committed = new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
    committed.catch(() => undefined);
    const result = await request(work(transaction.objectStore(STORE)));
    await committed;
    return result;
  } finally {
    database.close();
  }
}

function isProofKey(value: unknown): value is ProofKey {
  const key = value as Partial<ProofKey> | undefined;
  return typeof key?.jwk?.x === 'string' && typeof CryptoKey !== 'undefined' && key.privateKey instanceof CryptoKey;
}

/** Whether this page can hold a key: WebCrypto (secure contexts only) and IndexedDB. */
function supported(): boolean {
  return typeof indexedDB !== 'undefined' && typeof crypto !== 'undefined' && crypto.subtle !== undefined;
}

/** The stored key of one latchkey client (`scope`: its base URL and mode), shared by the origin's tabs. */
export class ProofKeys {
  readonly #scope: string;
  #loaded: Promise<ProofKey | null> | null = null;

  constructor(scope: string) {
    this.#scope = scope;
  }

  /**
   * The stored key; with `create`, a new one when none is stored (call it under the tabs' lock, so
   * that two tabs never create two). Null where the browser cannot keep one (no IndexedDB, no
   * WebCrypto outside a secure context, private modes that refuse storage): the client then goes
   * on unbound, as a client without DPoP does.
   */
  async get(create: boolean): Promise<ProofKey | null> {
    if (!supported()) return null;
    this.#loaded ??= this.#load();
    const loaded = await this.#loaded;
    if (loaded || !create) return loaded;
    this.#loaded = this.#create();
    return this.#loaded;
  }

  /** Deletes the key: after a sign-out it proves nothing any more, and the next login makes a new one. */
  async forget(): Promise<void> {
    this.#loaded = null;
    if (!supported()) return;
    try {
      await inStore('readwrite', (store) => store.delete(this.#scope));
    } catch {
      // Storage refused: the key stays, bound to a session that is over.
    }
  }

  /** Drops this tab's copy: another tab created or deleted the stored key. */
  invalidate(): void {
    this.#loaded = null;
  }

  async #load(): Promise<ProofKey | null> {
    try {
      const stored: unknown = await inStore('readonly', (store) => store.get(this.#scope));
      return isProofKey(stored) ? stored : null;
    } catch {
      return null;
    }
  }

  async #create(): Promise<ProofKey | null> {
    try {
      // extractable: false applies to the private key; a public key is always exportable.
      const pair = await crypto.subtle.generateKey(ALGORITHM, false, ['sign', 'verify']);
      const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', pair.publicKey);
      // An EC public JWK always has these; without them no proof could name its key.
      if (kty === undefined || crv === undefined || x === undefined || y === undefined) return null;
      const key: ProofKey = { privateKey: pair.privateKey, jwk: { kty, crv, x, y } };
      await inStore('readwrite', (store) => store.put(key, this.#scope));
      return key;
    } catch {
      return null;
    }
  }
}
