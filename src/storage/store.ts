import { EmailLinks } from './directory/email-links';
import { LoginThrottle } from './directory/login-throttle';
import { ObjectWrites } from './directory/object-writes';
import { Passkeys } from './directory/passkeys';
import { Pruning } from './directory/prune';
import { SessionsMirror } from './directory/sessions-mirror';
import { Users } from './directory/users';

export type { IssuedLink, SendAllowance } from './directory/email-links';

/**
 * The D1 directory: every D1 statement latchkey runs, as prepared statements with `?N` binds, and
 * the mapping of rows to domain records. D1 holds the directory of users, the login throttle and
 * the mirror of each user's revocations that strict checks read (migrations/); the user's Durable
 * Object owns the rest (user-records.ts). Any D1 failure surfaces as `StorageUnavailableError`
 * (503), never as a raw driver message.
 *
 * One entry point over the parts in directory/, one file per concern, where each method is
 * documented.
 */
export class Store {
  readonly #users: Users;
  readonly #throttle: LoginThrottle;
  readonly #mirror: SessionsMirror;
  readonly #writes: ObjectWrites;
  readonly #links: EmailLinks;
  readonly #passkeys: Passkeys;
  readonly #pruning: Pruning;

  constructor(readonly db: D1Database) {
    this.#users = new Users(db);
    this.#throttle = new LoginThrottle(db);
    this.#mirror = new SessionsMirror(db);
    this.#writes = new ObjectWrites(db);
    this.#links = new EmailLinks(db);
    this.#passkeys = new Passkeys(db);
    this.#pruning = new Pruning(db);
  }

  // ---- users (directory/users.ts) ---------------------------------------------------------
  insertUser(...args: Parameters<Users['insertUser']>) {
    return this.#users.insertUser(...args);
  }
  userExists(...args: Parameters<Users['userExists']>) {
    return this.#users.userExists(...args);
  }
  emailVerifiedOf(...args: Parameters<Users['emailVerifiedOf']>) {
    return this.#users.emailVerifiedOf(...args);
  }
  passwordHashOf(...args: Parameters<Users['passwordHashOf']>) {
    return this.#users.passwordHashOf(...args);
  }
  accountOf(...args: Parameters<Users['accountOf']>) {
    return this.#users.accountOf(...args);
  }

  // ---- login throttling (directory/login-throttle.ts) ----------------------------------------
  chargeLoginAttempt(...args: Parameters<LoginThrottle['chargeLoginAttempt']>) {
    return this.#throttle.chargeLoginAttempt(...args);
  }
  clearLoginAttempts(...args: Parameters<LoginThrottle['clearLoginAttempts']>) {
    return this.#throttle.clearLoginAttempts(...args);
  }
  clearLoginThrottle(...args: Parameters<LoginThrottle['clearLoginThrottle']>) {
    return this.#throttle.clearLoginThrottle(...args);
  }

  // ---- the mirror of revocations (directory/sessions-mirror.ts) ------------------------------
  readSessionMirror(...args: Parameters<SessionsMirror['readSessionMirror']>) {
    return this.#mirror.readSessionMirror(...args);
  }

  // ---- what the user's object writes (directory/object-writes.ts) ----------------------------
  applyWrites(...args: Parameters<ObjectWrites['applyWrites']>) {
    return this.#writes.applyWrites(...args);
  }
  recordLogin(...args: Parameters<ObjectWrites['recordLogin']>) {
    return this.#writes.recordLogin(...args);
  }
  recordPasswordChange(...args: Parameters<ObjectWrites['recordPasswordChange']>) {
    return this.#writes.recordPasswordChange(...args);
  }
  recordEmailVerified(...args: Parameters<ObjectWrites['recordEmailVerified']>) {
    return this.#writes.recordEmailVerified(...args);
  }
  recordPasskeyLogin(...args: Parameters<ObjectWrites['recordPasskeyLogin']>) {
    return this.#writes.recordPasskeyLogin(...args);
  }

  // ---- emailed links (directory/email-links.ts) ----------------------------------------------
  issueResetLink(...args: Parameters<EmailLinks['issueResetLink']>) {
    return this.#links.issueResetLink(...args);
  }
  issueVerificationLink(...args: Parameters<EmailLinks['issueVerificationLink']>) {
    return this.#links.issueVerificationLink(...args);
  }
  findLinkToken(...args: Parameters<EmailLinks['findLinkToken']>) {
    return this.#links.findLinkToken(...args);
  }

  // ---- passkeys (directory/passkeys.ts) ------------------------------------------------------
  passkeysOf(...args: Parameters<Passkeys['passkeysOf']>) {
    return this.#passkeys.passkeysOf(...args);
  }
  insertLoginChallenge(...args: Parameters<Passkeys['insertLoginChallenge']>) {
    return this.#passkeys.insertLoginChallenge(...args);
  }
  beginPasskeyLogin(...args: Parameters<Passkeys['beginPasskeyLogin']>) {
    return this.#passkeys.beginPasskeyLogin(...args);
  }
  insertPasskey(...args: Parameters<Passkeys['insertPasskey']>) {
    return this.#passkeys.insertPasskey(...args);
  }
  deletePasskey(...args: Parameters<Passkeys['deletePasskey']>) {
    return this.#passkeys.deletePasskey(...args);
  }
  passkeyCounterOf(...args: Parameters<Passkeys['passkeyCounterOf']>) {
    return this.#passkeys.passkeyCounterOf(...args);
  }

  // ---- pruning (directory/prune.ts) ----------------------------------------------------------
  prune(...args: Parameters<Pruning['prune']>) {
    return this.#pruning.prune(...args);
  }
}

const stores = new WeakMap<D1Database, Store>();

/**
 * The `Store` of a D1 binding, made on its first use in this isolate and reused by every request
 * after: a `Store` holds nothing but the binding, so one per binding is enough.
 */
export function storeFor(db: D1Database): Store {
  let store = stores.get(db);
  if (!store) {
    store = new Store(db);
    stores.set(db, store);
  }
  return store;
}
