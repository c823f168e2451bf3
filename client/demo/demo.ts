// The demo page at /. It uses the very client the Worker serves at /client.js (not a bundled
// copy), so what the page shows is what an app embedding the client gets.
import {
  createClient,
  type LatchkeyClient,
  LatchkeyError,
  type Mode,
  type PasskeyInfo,
  passkeyAutofillSupported,
  passkeysSupported,
} from '@latchkey/client';
import { eventDetailWords, formatInstant, wordsFor } from './text.js';

const MODE_KEY = 'latchkey-demo:mode';

function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`demo: #${id} is missing`);
  return found as T;
}

const app = element('app');
const signedOutView = element('signed-out-view');
const signedInView = element('signed-in-view');
const loading = element('loading');
const reasonBox = element('signedout-reason');
const formMessage = element('form-message');
const countdown = element('countdown');
const countdownBar = element<HTMLProgressElement>('countdown-bar');
const renewalsHere = element('renewals-here');
const renewalsElsewhere = element('renewals-elsewhere');
const activity = element('activity');
const replayButton = element<HTMLButtonElement>('replay');
const replayNote = element('replay-note');
const replayResult = element('replay-result');
const resetForm = element<HTMLFormElement>('reset-form');
const emailStatus = element('email-status');
const resendButton = element<HTMLButtonElement>('resend-verification');
const signinForm = element<HTMLFormElement>('signin-form');
const passkeyButton = element<HTMLButtonElement>('passkey-signin');

let client!: LatchkeyClient;
let renewedHere = 0;
let renewedElsewhere = 0;
/** Bearer mode only: every token this tab has seen in the current session, oldest first. */
let tokensSeen: string[] = [];
/** What the last replay was answered, shown with the sign-out it causes. */
let replayOutcome = '';
/** The lifetime of the newest token, for the progress bar. */
let lifetimeMs = 1;
/** The pending conditional passkey request (the email field's autofill), while signed out. */
let autofill: AbortController | null = null;

/** A `<time>` showing `instant` in the page's one date format. */
function timeElement(instant: string | number | Date): HTMLTimeElement {
  const time = document.createElement('time');
  time.dateTime = new Date(instant).toISOString();
  time.textContent = formatInstant(instant);
  return time;
}

/** The line under a message that names the code behind it, for looking it up. */
function codeLine(code: string, ...more: (string | Node)[]): HTMLElement {
  const line = document.createElement('small');
  line.className = 'code-line';
  const name = document.createElement('code');
  name.textContent = code;
  line.append('Code: ', name);
  for (const part of more) line.append(' · ', part);
  return line;
}

/** What went wrong, in words, and the code behind it when there is one. */
interface Described {
  text: string;
  code?: string;
}

function log(text: string, code?: string): void {
  const item = document.createElement('li');
  item.append(timeElement(Date.now()), text);
  if (code) {
    item.dataset.code = code;
    item.append(' ', codeLine(code));
  }
  activity.prepend(item);
  while (activity.children.length > 50) activity.lastElementChild?.remove();
}

function say(message: string | Described, kind: 'info' | 'error' = 'info'): void {
  const { text, code } = typeof message === 'string' ? { text: message, code: undefined } : message;
  formMessage.replaceChildren(text);
  if (code) {
    formMessage.dataset.code = code;
    formMessage.append(codeLine(code));
  } else {
    delete formMessage.dataset.code;
  }
  formMessage.dataset.kind = kind;
}

function describe(error: unknown): Described {
  if (error instanceof LatchkeyError) {
    const words = wordsFor(error.code);
    return { text: words.explain ? `${words.title}. ${words.explain}` : `${words.title}.`, code: error.code };
  }
  return { text: error instanceof Error ? error.message : String(error) };
}

/** `describe` on one line, for the activity log. */
function logFailure(what: string, error: unknown): void {
  const { text, code } = describe(error);
  log(`${what}: ${text}`, code);
}

/** A WebAuthn ceremony that ended because another one started, or because the page stopped it. */
function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}

function disarmPasskeyAutofill(): void {
  autofill?.abort();
  autofill = null;
  delete signinForm.dataset.passkeyAutofill;
}

/**
 * Offers the passkeys of this site in the email field's autofill (conditional mediation) while
 * signed out. Picking one signs in; the client keeps the request fresh however long the page waits.
 */
async function armPasskeyAutofill(): Promise<void> {
  disarmPasskeyAutofill();
  const controller = new AbortController();
  autofill = controller;
  if (!passkeysSupported() || !(await passkeyAutofillSupported()) || controller.signal.aborted) return;
  signinForm.dataset.passkeyAutofill = 'armed';
  try {
    await client.loginWithPasskey({ conditional: true, signal: controller.signal });
  } catch (error) {
    if (controller.signal.aborted || isAbort(error)) return;
    const described = describe(error);
    say({ ...described, text: `Passkey sign-in failed. ${described.text}` }, 'error');
    if (autofill === controller && !client.signedIn) void armPasskeyAutofill();
  }
}

function rememberToken(): void {
  const token = client.accessToken;
  if (token && tokensSeen[tokensSeen.length - 1] !== token) tokensSeen.push(token);
  replayButton.disabled = client.mode !== 'bearer' || tokensSeen.length < 2;
  replayNote.textContent =
    client.mode === 'bearer'
      ? tokensSeen.length < 2
        ? 'Wait for a renewal (or press "Renew now"): there is no old token yet.'
        : `This tab has seen ${tokensSeen.length} tokens of this session; the oldest will be replayed, as a copy without this browser's key would be.`
      : 'In cookie mode this page cannot read any token: that is the point of an HttpOnly cookie. Sign in with page memory to try it.';
}

function showState(state: 'signed-in' | 'signed-out'): void {
  app.dataset.state = state;
  app.setAttribute('aria-busy', 'false');
  loading.hidden = true;
  signedInView.hidden = state !== 'signed-in';
  signedOutView.hidden = state !== 'signed-out';
}

async function refreshAccount(): Promise<void> {
  const response = await client.fetch('/api/account');
  if (!response.ok) return;
  const account = (await response.json()) as { email: string; email_verified: boolean };
  element('account-email').textContent = account.email;
  emailStatus.textContent = account.email_verified ? 'verified' : 'not verified yet: follow the link mailed to it';
  emailStatus.dataset.verified = String(account.email_verified);
  resendButton.hidden = account.email_verified;
}

async function refreshLists(): Promise<void> {
  if (!client.signedIn) return;
  try {
    const [sessions, events] = await Promise.all([client.sessions(), client.events(), refreshPasskeys()]);
    const body = element('sessions');
    body.replaceChildren(
      ...sessions.map((session) => {
        const row = document.createElement('tr');
        const label = session.client ?? 'Unnamed client';
        const cells = [
          cell('Client', `${label}${session.current ? ' (this browser)' : ''}`),
          cell('Signed in', timeElement(session.created_at)),
          cell('Last renewed', session.last_renewed_at ? timeElement(session.last_renewed_at) : 'not yet'),
        ];
        if (session.current) cells[0]?.classList.add('current');
        const actionCell = document.createElement('td');
        actionCell.className = 'action';
        const revoke = document.createElement('button');
        revoke.type = 'button';
        revoke.className = 'danger small';
        revoke.textContent = 'Revoke';
        revoke.setAttribute('aria-label', `Revoke the session of ${label} signed in ${cells[1]?.textContent ?? ''}`);
        revoke.addEventListener('click', () => void revokeSession(session.id));
        actionCell.append(revoke);
        row.append(...cells, actionCell);
        return row;
      }),
    );
    element('events').replaceChildren(
      ...events.map((event) => {
        const item = document.createElement('li');
        item.dataset.code = event.type;
        const words = document.createElement('strong');
        words.textContent = wordsFor(event.type).title;
        const details = eventDetailWords(event.type, event.detail);
        item.append(words, details.length > 0 ? `: ${details.join(', ')}` : '');
        const session = event.session_id ? [`session ${event.session_id.slice(0, 8)}`] : [];
        const meta = codeLine(event.type, ...session);
        meta.prepend(timeElement(event.at), ' · ');
        item.append(meta);
        return item;
      }),
    );
    element('events-empty').hidden = events.length > 0;
    showListPlaceholders(null);
  } catch (error) {
    logFailure('Could not load the lists', error);
    showListPlaceholders('Could not load this list: see Activity below, then Refresh lists.');
  }
}

/** A cell of a list; `label` is its column's heading, shown beside it where the rows stack (narrow screens). */
function cell(label: string, content: string | Node): HTMLTableCellElement {
  const made = document.createElement('td');
  made.dataset.label = label;
  made.append(content);
  return made;
}

function passkeyRow(passkey: PasskeyInfo): HTMLTableRowElement {
  const row = document.createElement('tr');
  const label = passkey.name ?? 'Unnamed passkey';
  const cells = [
    cell('Name', label),
    cell('Added', timeElement(passkey.created_at)),
    cell('Last used', passkey.last_used_at ? timeElement(passkey.last_used_at) : 'never'),
    cell('Kind', passkey.device_type === 'multiDevice' ? (passkey.backed_up ? 'synced' : 'can sync') : 'this device only'),
  ];
  const actionCell = document.createElement('td');
  actionCell.className = 'action';
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'danger small';
  remove.textContent = 'Remove';
  remove.setAttribute('aria-label', `Remove the passkey ${label}`);
  remove.addEventListener('click', () => void removePasskey(passkey));
  actionCell.append(remove);
  row.dataset.passkeyId = passkey.id;
  row.append(...cells, actionCell);
  return row;
}

async function refreshPasskeys(): Promise<void> {
  const passkeys = await client.passkeys();
  element('passkeys').replaceChildren(...passkeys.map(passkeyRow));
  element('passkeys-table').hidden = passkeys.length === 0;
  element('passkeys-empty').hidden = passkeys.length > 0;
}

async function removePasskey(passkey: PasskeyInfo): Promise<void> {
  try {
    await client.removePasskey(passkey.id);
    log(`Removed the passkey ${passkey.name ?? passkey.id.slice(0, 8)}.`);
    await refreshLists();
  } catch (error) {
    logFailure('Removing the passkey failed', error);
  }
}

async function revokeSession(sessionId: string): Promise<void> {
  try {
    await client.revokeSession(sessionId);
    log(`Revoked session ${sessionId.slice(0, 8)}.`);
    await refreshLists();
  } catch (error) {
    logFailure('Revoking failed', error);
  }
}

/** Empties the lists, so that another account's never show, and says they are loading. */
function resetLists(): void {
  for (const id of ['sessions', 'passkeys', 'events']) element(id).replaceChildren();
  for (const id of ['passkeys-table', 'passkeys-empty', 'events-empty']) element(id).hidden = true;
  showListPlaceholders('Loading…');
}

/** What the lists say in place of their rows (loading, or why they are missing); null: nothing. */
function showListPlaceholders(text: string | null): void {
  for (const placeholder of document.querySelectorAll<HTMLElement>('.lists-loading')) {
    placeholder.hidden = text === null;
    if (text !== null) placeholder.textContent = text;
  }
}

function onSignedIn(): void {
  disarmPasskeyAutofill();
  resetLists();
  reasonBox.hidden = true;
  reasonBox.replaceChildren();
  delete reasonBox.dataset.code;
  say('');
  tokensSeen = [];
  rememberToken();
  lifetimeMs = client.expiresInMs ?? 1;
  element('session-id').textContent = client.sessionId ?? '';
  element('mode-label').textContent =
    client.mode === 'cookie' ? 'an HttpOnly cookie (cookie mode)' : 'page memory, sent as a Bearer header (bearer mode)';
  showState('signed-in');
  void refreshAccount();
  void refreshLists();
}

function makeClient(mode: Mode): LatchkeyClient {
  const made = createClient({ baseUrl: location.origin, mode, clientLabel: `Demo page, ${mode} mode` });
  made.addEventListener('signedin', (event) => {
    log(
      event.detail.via === 'tab'
        ? 'Signed in by another tab of this browser.'
        : event.detail.via === 'resume'
          ? 'Picked up the existing sign-in.'
          : event.detail.via === 'reset'
            ? 'Password reset: signed in here, signed out everywhere else.'
            : event.detail.via === 'passkey'
              ? 'Signed in with a passkey.'
              : 'Signed in.',
    );
    onSignedIn();
  });
  made.addEventListener('renewed', (event) => {
    if (event.detail.byThisTab) renewedHere += 1;
    else renewedElsewhere += 1;
    renewalsHere.textContent = String(renewedHere);
    renewalsElsewhere.textContent = String(renewedElsewhere);
    rememberToken();
    lifetimeMs = client.expiresInMs ?? 1;
    log(event.detail.byThisTab ? 'Token renewed by this tab.' : 'Token renewed by another tab and handed over.');
    void refreshLists();
  });
  made.addEventListener('signedout', (event) => {
    const { code } = event.detail;
    const words = wordsFor(code);
    const heading = document.createElement('strong');
    heading.textContent = words.title;
    reasonBox.dataset.code = code;
    reasonBox.replaceChildren(heading, ` ${words.explain ?? 'Sign in again.'}${replayOutcome}`, codeLine(code));
    replayOutcome = '';
    reasonBox.hidden = false;
    tokensSeen = [];
    log(`${words.title}.`, code);
    showState('signed-out');
    void armPasskeyAutofill();
  });
  return made;
}

function selectedMode(form: HTMLFormElement): Mode {
  return new FormData(form).get('mode') === 'bearer' ? 'bearer' : 'cookie';
}

function useMode(mode: Mode): void {
  if (client?.mode === mode) return;
  client?.close();
  client = makeClient(mode);
  localStorage.setItem(MODE_KEY, mode);
}

async function run(action: () => Promise<void>, button: HTMLButtonElement | null): Promise<void> {
  if (button) button.disabled = true;
  try {
    await action();
  } catch (error) {
    say(describe(error), 'error');
  } finally {
    if (button) button.disabled = false;
  }
}

element<HTMLFormElement>('signup-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget as HTMLFormElement;
  const data = new FormData(form);
  void run(async () => {
    const user = await client.register(String(data.get('email')), String(data.get('password')));
    form.reset();
    say(
      `Account created for ${user.email}. Sign in below. A link to confirm the address is on its way (running locally, the terminal running npm start shows the path of the message file).`,
    );
    element<HTMLInputElement>('signin-email').value = user.email;
    element<HTMLInputElement>('signin-password').focus();
  }, form.querySelector('button'));
});

passkeyButton.addEventListener('click', () => {
  void run(async () => {
    useMode(selectedMode(signinForm));
    // The dialog's ceremony replaces the autofill's; the autofill is offered again if it fails.
    disarmPasskeyAutofill();
    try {
      await client.loginWithPasskey();
    } catch (error) {
      if (!client.signedIn) void armPasskeyAutofill();
      if (error instanceof Error && error.name === 'NotAllowedError') throw new Error('No passkey was chosen.');
      throw error;
    }
  }, passkeyButton);
});

element<HTMLFormElement>('passkey-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget as HTMLFormElement;
  const name = String(new FormData(form).get('name') ?? '').trim();
  void run(async () => {
    const passkey = await client.registerPasskey(name === '' ? undefined : name);
    form.reset();
    log(`Added the passkey ${passkey.name ?? passkey.id.slice(0, 8)}.`);
    say('Passkey added: next time, sign in with it instead of the password.');
    await refreshLists();
  }, form.querySelector('button'));
});

element<HTMLFormElement>('signin-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget as HTMLFormElement;
  const data = new FormData(form);
  void run(async () => {
    useMode(selectedMode(form));
    await client.login(String(data.get('email')), String(data.get('password')));
    form.reset();
    (form.querySelector(`input[value="${client.mode}"]`) as HTMLInputElement | null)?.click();
  }, form.querySelector('button'));
});

element<HTMLFormElement>('forgot-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = event.currentTarget as HTMLFormElement;
  const data = new FormData(form);
  void run(async () => {
    await client.forgotPassword(String(data.get('email')));
    form.reset();
    say('If an account uses this address, a link to reset its password is on its way. It works once, for a limited time.');
  }, form.querySelector('button'));
});

resetForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = resetForm.dataset.token ?? '';
  const data = new FormData(resetForm);
  void run(async () => {
    await client.resetPassword(token, String(data.get('password')));
    resetForm.reset();
    resetForm.hidden = true;
    delete resetForm.dataset.token;
    say('Password changed. Every other session of the account has ended.');
  }, resetForm.querySelector('button'));
});

resendButton.addEventListener('click', () => {
  void run(async () => {
    await client.resendVerification();
    say('A new verification link is on its way.');
  }, resendButton);
});

/**
 * The links latchkey mails point here (APP_URL): `#verify=<token>` or `#reset=<token>`. The token
 * is taken out of the address bar at once, so it stays out of the history, bookmarks and
 * screenshots; it was never sent to any server, being in the fragment.
 */
function takeLinkToken(): { purpose: 'verify' | 'reset'; token: string } | null {
  const found = /^#(verify|reset)=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!found) return null;
  history.replaceState(null, '', `${location.pathname}${location.search}`);
  return { purpose: found[1] as 'verify' | 'reset', token: found[2] as string };
}

async function followLink(link: { purpose: 'verify' | 'reset'; token: string }): Promise<void> {
  if (link.purpose === 'reset') {
    resetForm.dataset.token = link.token;
    resetForm.hidden = false;
    element<HTMLInputElement>('reset-password').focus();
    return;
  }
  await run(async () => {
    await client.verifyEmail(link.token);
    say('Email address verified. Thank you.');
    if (client.signedIn) await refreshAccount();
  }, null);
}

window.addEventListener('hashchange', () => {
  const link = takeLinkToken();
  if (link) void followLink(link);
});

element('renew-now').addEventListener('click', (event) => {
  void run(async () => {
    if (!(await client.renew())) say('The renewal did not succeed.', 'error');
  }, event.currentTarget as HTMLButtonElement);
});

element('refresh-lists').addEventListener('click', () => void refreshLists());

element('sign-out').addEventListener('click', (event) => {
  void run(() => client.logout(), event.currentTarget as HTMLButtonElement);
});

element('sign-out-everywhere').addEventListener('click', (event) => {
  void run(() => client.logoutAll(), event.currentTarget as HTMLButtonElement);
});

replayButton.addEventListener('click', () => {
  void run(async () => {
    const oldest = tokensSeen[0];
    if (!oldest) return;
    // Deliberately outside the client: this is what an attacker holding a copied token would do.
    // It has the token but not this browser's key, so it sends no proof.
    const response = await fetch('/auth/renew', {
      method: 'POST',
      headers: { authorization: `Bearer ${oldest}` },
      credentials: 'omit',
    });
    const body = (await response.json()) as { code?: string; detail?: string };
    if (response.ok) {
      replayResult.textContent = `POST /auth/renew → ${response.status}: answered within the grace window (REUSE_GRACE), as for two tabs renewing at once. Renew again or wait a few seconds, then replay.`;
      return;
    }
    replayResult.dataset.code = body.code ?? '';
    if (body.code === 'invalid_dpop_proof') {
      // A bound session (RFC 9449): the copy is refused before the session is even looked at.
      replayResult.textContent =
        "Refused. This session is bound to a key that only this browser holds: it lives in the browser's key store and cannot be exported, not even by this page. " +
        "The replayed token went out without a proof of that key, as a copy taken from a log, a proxy or another machine would, so it cannot renew, sign out or read anything. " +
        `Nothing was revoked: this tab stays signed in and keeps renewing. The refusal shows in the security events as “${wordsFor('proof_failed').title}”.\n` +
        `POST /auth/renew → ${response.status} invalid_dpop_proof`;
      log('Replayed the oldest token without the key: refused, nothing revoked.', 'invalid_dpop_proof');
      await refreshLists();
      return;
    }
    const code = body.code ?? `http_${response.status}`;
    const words = wordsFor(code);
    if (code === 'token_reused') {
      replayOutcome = ' The replayed token was refused as an old token used again: the server detected the reuse and revoked the session.';
    }
    replayResult.textContent = `${words.title}. ${words.explain ?? body.detail ?? ''}\nPOST /auth/renew → ${response.status} ${body.code ?? ''}`;
    log(`Replayed the oldest token: ${words.title.toLowerCase()}.`, code);
    // The session is gone now; the next call tells the client, which signs out with the reason.
    await refreshAccount();
  }, replayButton);
});

function tick(): void {
  const remaining = client?.expiresInMs;
  if (remaining === null || remaining === undefined) return;
  countdown.textContent = `${(remaining / 1000).toFixed(1)} s`;
  countdownBar.value = Math.min(1, remaining / Math.max(1, lifetimeMs));
}

const storedMode = localStorage.getItem(MODE_KEY) === 'bearer' ? 'bearer' : 'cookie';
(document.querySelector(`#signin-form input[value="${storedMode}"]`) as HTMLInputElement | null)?.click();
useMode(storedMode);
// The autofill signs in with the mode chosen: choosing another one offers it again in that mode.
// (Listening only from here: the stored mode's radio was just selected, before any client existed.)
for (const radio of signinForm.querySelectorAll<HTMLInputElement>('input[name="mode"]')) {
  radio.addEventListener('change', () => {
    if (client.signedIn) return;
    useMode(selectedMode(signinForm));
    void armPasskeyAutofill();
  });
}
setInterval(tick, 100);
element<HTMLButtonElement>('passkey-add').disabled = !passkeysSupported();
passkeyButton.hidden = !passkeysSupported();
const link = takeLinkToken();
void client.resume().then(async (signedIn) => {
  if (!signedIn) {
    showState('signed-out');
    void armPasskeyAutofill();
  }
  if (link) await followLink(link);
});
