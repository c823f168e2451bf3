// Browser tests: the demo page, the client and the HTTP rules of API.md "Browsers", in headless
// Chromium against `npm start`. Run with `npm run test:browser`.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  ALLOWED_PAGE,
  API,
  ARTIFACTS,
  countRenewals,
  launchChromium,
  linkInMail,
  newAccount,
  newContext,
  OTHER_PAGE,
  PORTS,
  servePage,
  startLatchkey,
  TTL_SECONDS,
} from './harness.mjs';

const TTL_MS = TTL_SECONDS * 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let server;
let browser;
const pageServers = [];
/** Uncaught errors of any page: a test fails if its pages threw. */
let pageErrors = [];

function watchErrors(page) {
  page.on('pageerror', (error) => pageErrors.push(`${page.url()}: ${error.message}`));
}

before(async () => {
  browser = await launchChromium();
  server = await startLatchkey();
  // A page on another origin that loads the client from latchkey, as an app would.
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>app</title></head><body>
<script type="module">
import * as latchkey from '${API}/client.js';
window.latchkey = latchkey;
document.body.dataset.ready = 'true';
</script></body></html>`;
  pageServers.push(await servePage(PORTS.allowedPage, html), await servePage(PORTS.otherPage, html));
}, { timeout: 180_000 });

afterEach(() => {
  const errors = pageErrors;
  pageErrors = [];
  assert.deepEqual(errors, [], 'no page threw');
});

after(async () => {
  await browser?.close();
  await Promise.all(pageServers.map((page) => page.close()));
  await server?.stop();
});

/** Opens the demo page and waits until it knows whether it is signed in. Page errors fail the test. */
async function openDemo(context) {
  const page = await context.newPage();
  watchErrors(page);
  await page.goto(`${API}/`);
  await page.waitForSelector('#app[data-state="signed-in"], #app[data-state="signed-out"]');
  return page;
}

async function signUp(page, account) {
  await page.fill('#signup-email', account.email);
  await page.fill('#signup-password', account.password);
  await page.click('#signup-form button[type="submit"]');
  await page.waitForFunction(() => document.querySelector('#form-message')?.textContent?.includes('Account created'));
}

async function signIn(page, account, mode) {
  await page.fill('#signin-email', account.email);
  await page.fill('#signin-password', account.password);
  await page.check(`#signin-form input[name="mode"][value="${mode}"]`);
  await page.click('#signin-form button[type="submit"]');
  await page.waitForSelector('#app[data-state="signed-in"]');
  await page.waitForFunction((email) => document.querySelector('#account-email')?.textContent === email, account.email);
}

/** A demo page of `context`, signed in to a new account. */
async function signedInDemo(context, mode, prefix) {
  const page = await openDemo(context);
  const account = newAccount(prefix);
  await signUp(page, account);
  await signIn(page, account, mode);
  return { page, account };
}

/** Renewals this tab has seen: its own and those handed over by other tabs. */
async function renewalsSeen(page) {
  const [here, elsewhere] = await Promise.all([page.textContent('#renewals-here'), page.textContent('#renewals-elsewhere')]);
  return { here: Number(here), elsewhere: Number(elsewhere), total: Number(here) + Number(elsewhere) };
}

async function waitForRenewals(page, total, timeout = 3 * TTL_MS) {
  await page.waitForFunction(
    (wanted) =>
      Number(document.querySelector('#renewals-here')?.textContent) +
        Number(document.querySelector('#renewals-elsewhere')?.textContent) >=
      wanted,
    total,
    { timeout },
  );
}

const stateOf = (page) => page.getAttribute('#app', 'data-state');

describe('the demo page', () => {
  it('signs in, stays signed in past expiry through renewal, and keeps the cookie from scripts', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const renewals = countRenewals(context);
    const { page, account } = await signedInDemo(context, 'cookie', 'demo');
    // (Opening the page signed out tried the cookie once: a 401 missing_token before this point.)
    const answered = renewals.responses.length;

    await sleep(TTL_MS * 1.75);
    assert.equal(await stateOf(page), 'signed-in');
    assert.ok((await renewalsSeen(page)).here >= 1, 'the page renewed on its own');
    const statuses = renewals.responses.slice(answered).map((response) => response.status);
    assert.ok(statuses.length >= 1 && statuses.every((status) => status === 200), `renewals answered ${statuses}`);
    // Past the first token's expiry, a strict route still answers for this session.
    const account2 = await page.evaluate(async () => (await fetch('/api/account', { credentials: 'include' })).json());
    assert.equal(account2.email, account.email);
    assert.notEqual(await page.textContent('#countdown'), '0.0 s');

    // The token is in an HttpOnly cookie: the page's scripts cannot read it.
    assert.equal(await page.evaluate(() => document.cookie), '');
    const [cookie] = await context.cookies(API);
    assert.deepEqual(
      { name: cookie.name, httpOnly: cookie.httpOnly, secure: cookie.secure, sameSite: cookie.sameSite, path: cookie.path },
      { name: 'latchkey_at', httpOnly: true, secure: true, sameSite: 'Strict', path: '/' },
    );

    // Let the lists catch up with the latest renewal, then keep a picture of the page.
    await page.click('#refresh-lists');
    await page.waitForSelector('#sessions tr');
    await page.screenshot({ path: join(ARTIFACTS, 'demo-signed-in.png'), fullPage: true });
    await context.close();
  });

  it('shows reuse detection when an old token is replayed', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const { page } = await signedInDemo(context, 'bearer', 'replay');
    for (const wanted of [1, 2]) {
      await page.click('#renew-now');
      await waitForRenewals(page, wanted);
    }
    assert.equal(await page.isEnabled('#replay'), true);
    await page.click('#replay');
    await page.waitForSelector('#replay-result[data-code="token_reused"]', { state: 'attached' });
    // The client learns at its next call that the session is gone, and says why.
    await page.waitForSelector('#signedout-reason[data-code="session_revoked"]:not([hidden])');
    assert.equal(await stateOf(page), 'signed-out');
    assert.match(await page.textContent('#signedout-reason'), /session_revoked.*token_reused/s);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-reuse-detected.png'), fullPage: true });
    await context.close();
  });
});

describe('emailed links', () => {
  /** POST /auth/login from outside the browser: the status only. */
  const loginStatus = async (email, password) =>
    (
      await fetch(`${API}/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password }),
      })
    ).status;

  it('forgot password, clicked through: the link from the mail file, a new password, signed in', { timeout: 90_000 }, async () => {
    const context = await newContext(browser);
    const { page: first, account } = await signedInDemo(context, 'cookie', 'forgot');
    // Another device of the same user, signed in before the reset.
    const otherDevice = await newContext(browser);
    const other = await openDemo(otherDevice);
    await signIn(other, account, 'bearer');
    await first.click('#sign-out');
    await first.waitForSelector('#app[data-state="signed-out"]');

    await first.click('#forgot summary');
    await first.fill('#forgot-email', account.email);
    await first.click('#forgot-form button[type="submit"]');
    await first.waitForFunction(() => document.querySelector('#form-message')?.textContent?.includes('on its way'));

    // The local send_email binding stored the message as a file and logged its path.
    const mail = await server.mailTo(account.email, 'Reset your password');
    const link = linkInMail(mail.raw, 'reset');
    assert.match(link, new RegExp(`^${API}/#reset=`), 'the link is built from APP_URL');
    assert.match(mail.raw, /Content-Type: text\/html/, 'an HTML part beside the text');

    // Opened from the mail, in a new tab, as a mail client would.
    const page = await context.newPage();
    watchErrors(page);
    await page.goto(link);
    await page.waitForSelector('#reset-form:not([hidden])');
    assert.equal(new URL(page.url()).hash, '', 'the token left the address bar at once');
    const newPassword = 'a fresh passphrase from the reset link';
    await page.fill('#reset-password', newPassword);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-reset-password.png'), fullPage: true });
    await page.click('#reset-form button[type="submit"]');
    await page.waitForSelector('#app[data-state="signed-in"]');
    await page.waitForFunction((email) => document.querySelector('#account-email')?.textContent === email, account.email);
    // Following the link proved the mailbox.
    await page.waitForSelector('#email-status[data-verified="true"]');
    assert.equal(await page.isVisible('#reset-form'), false);

    assert.equal(await loginStatus(account.email, account.password), 401, 'the old password is dead');
    assert.equal(await loginStatus(account.email, newPassword), 200, 'the new password works');
    // The other device was signed out by the reset, and says why at its next renewal.
    await other.waitForSelector('#signedout-reason[data-code="session_revoked"]:not([hidden])', { timeout: 3 * TTL_MS });

    // The link worked once: opened again, it is refused and the page says so.
    const again = await context.newPage();
    watchErrors(again);
    await again.goto(link);
    await again.fill('#reset-password', `${newPassword} again`);
    await again.click('#reset-form button[type="submit"]');
    await again.waitForFunction(() => document.querySelector('#form-message')?.textContent?.includes('invalid_reset_token'));
    await context.close();
    await otherDevice.close();
  });

  it('sign up, then verify: the link from the mail file marks the address verified', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const { page, account } = await signedInDemo(context, 'bearer', 'verify');
    await page.waitForSelector('#email-status[data-verified="false"]');
    assert.equal(await page.isVisible('#resend-verification'), true);

    const mail = await server.mailTo(account.email, 'Confirm your email address');
    await page.goto(linkInMail(mail.raw, 'verify'));
    await page.waitForFunction(() => document.querySelector('#form-message')?.textContent?.includes('verified'));
    await page.waitForSelector('#app[data-state="signed-in"]');
    await page.waitForSelector('#email-status[data-verified="true"]');
    assert.equal(await page.isVisible('#resend-verification'), false);
    await context.close();
  });
});

describe('renewal across tabs', () => {
  for (const mode of ['bearer', 'cookie']) {
    it(`five tabs whose tokens expire together renew once, in ${mode} mode`, { timeout: 90_000 }, async () => {
      const context = await newContext(browser);
      const renewals = countRenewals(context);
      const { page: first } = await signedInDemo(context, mode, `tabs-${mode}`);
      const answered = renewals.responses.length;
      const others = [];
      for (let i = 0; i < 4; i++) others.push(await openDemo(context));
      const tabs = [first, ...others];
      const sessionId = await first.textContent('#session-id');
      for (const tab of tabs) {
        assert.equal(await stateOf(tab), 'signed-in', 'every tab picked up the sign-in from the first one');
        assert.equal(await tab.textContent('#session-id'), sessionId);
      }

      for (const round of [1, 2]) {
        const sent = renewals.count;
        const seen = await Promise.all(tabs.map(renewalsSeen));
        await Promise.all(tabs.map((tab, i) => waitForRenewals(tab, seen[i].total + 1)));
        assert.equal(renewals.count - sent, 1, `round ${round}: exactly one renewal request for five tabs`);
        const after = await Promise.all(tabs.map(renewalsSeen));
        assert.equal(after.reduce((sum, tab, i) => sum + tab.here - seen[i].here, 0), 1, 'one tab renewed, four were handed over');
      }
      assert.ok(renewals.responses.slice(answered).every((response) => response.status === 200));
      for (const tab of tabs) assert.equal(await stateOf(tab), 'signed-in');
      await context.close();
    });
  }

  it('logout-all in one tab: others are signed out at their next renewal, with the reason shown', { timeout: 60_000 }, async () => {
    const account = newAccount('logout-all');
    // Browser A with two tabs (one shared sign-in), and browser B, another device of the same user.
    const contextA = await newContext(browser);
    const contextB = await newContext(browser);
    const renewalsB = countRenewals(contextB);
    const a1 = await openDemo(contextA);
    await signUp(a1, account);
    await signIn(a1, account, 'cookie');
    const a2 = await openDemo(contextA);
    assert.equal(await stateOf(a2), 'signed-in');
    const b1 = await openDemo(contextB);
    await signIn(b1, account, 'bearer');

    const beforeLogout = renewalsB.responses.length;
    await a1.click('#sign-out-everywhere');
    await a1.waitForSelector('#signedout-reason[data-code="logout_all"]:not([hidden])');
    // The other tab of browser A shares the sign-in and hears of it from the first tab at once.
    await a2.waitForSelector('#signedout-reason[data-code="logout_all"]:not([hidden])', { timeout: 5_000 });

    // Browser B keeps its token until it renews; the renewal is refused and the page says why.
    await b1.waitForSelector('#signedout-reason[data-code="session_revoked"]:not([hidden])', { timeout: 2 * TTL_MS });
    // (A renewal already on its way when the logout-all landed may still have been answered 200.)
    const statuses = renewalsB.responses.slice(beforeLogout).map((response) => response.status);
    assert.equal(statuses.at(-1), 401, `B was signed out by a refused renewal (${statuses})`);
    assert.equal(statuses.filter((status) => status !== 200).length, 1, `one refused renewal (${statuses})`);
    assert.match(await b1.textContent('#signedout-reason'), /revoked/);
    await contextA.close();
    await contextB.close();
  });
});

describe('origins', () => {
  it('a page on an origin not allowed cannot make a cookie-authenticated POST succeed', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const { page: demo, account } = await signedInDemo(context, 'cookie', 'csrf');

    const attacker = await context.newPage();
    await attacker.goto(OTHER_PAGE);
    await attacker.waitForSelector('body[data-ready="true"]', { state: 'attached' });

    // A CORS fetch with credentials: the page cannot read any answer.
    const outcome = await attacker.evaluate(async (api) => {
      try {
        await fetch(`${api}/auth/logout-all`, { method: 'POST', credentials: 'include' });
        return 'readable';
      } catch (error) {
        return error.name;
      }
    }, API);
    assert.equal(outcome, 'TypeError');
    // The classic CSRF: a no-cors POST the page need not read. The browser sends it with the
    // cookie (same site, so SameSite=Strict lets it through); the Origin check refuses it.
    const answered = attacker.waitForResponse((response) => response.url() === `${API}/auth/logout-all`);
    await attacker.evaluate(
      (api) => fetch(`${api}/auth/logout-all`, { method: 'POST', credentials: 'include', mode: 'no-cors' }),
      API,
    );
    const response = await answered;
    // 403 is forbidden_origin, the one 403 of the API, and only ever the answer to a request
    // that carried the cookie (without it the answer would be 401 missing_token).
    assert.equal(response.status(), 403);

    // A plain form post, which no CORS rule stops: refused all the same.
    const navigation = attacker.waitForResponse((candidate) => candidate.url() === `${API}/auth/logout-all`);
    await attacker.evaluate((api) => {
      const form = document.createElement('form');
      form.method = 'POST';
      form.action = `${api}/auth/logout-all`;
      document.body.append(form);
      form.submit();
    }, API);
    const formResponse = await navigation;
    assert.equal(formResponse.status(), 403);
    assert.match(await formResponse.text(), /forbidden_origin/);

    // The client loads there (it is public), but signing in from that origin fails at the preflight.
    const other = await context.newPage();
    await other.goto(OTHER_PAGE);
    await other.waitForSelector('body[data-ready="true"]', { state: 'attached' });
    const login = await other.evaluate(
      async ({ api, email, password }) => {
        const client = window.latchkey.createClient({ baseUrl: api, mode: 'cookie' });
        try {
          await client.login(email, password);
          return 'signed in';
        } catch (error) {
          return error.name;
        }
      },
      { api: API, ...account },
    );
    assert.equal(login, 'TypeError');

    // Nothing happened to the session: a strict route still answers, and the page is signed in.
    const status = await demo.evaluate(async () => (await fetch('/auth/sessions', { credentials: 'include' })).status);
    assert.equal(status, 200);
    assert.equal(await stateOf(demo), 'signed-in');
    await context.close();
  });

  it('a page on an allowed origin uses the API with CORS, in cookie and in bearer mode', { timeout: 60_000 }, async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    watchErrors(page);
    await page.goto(ALLOWED_PAGE);
    await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
    const account = newAccount('allowed');
    const result = await page.evaluate(
      async ({ api, email, password }) => {
        const { createClient, LatchkeyError } = window.latchkey;
        const cookieClient = createClient({ baseUrl: api, mode: 'cookie', clientLabel: 'allowed origin' });
        const user = await cookieClient.register(email, password);
        let duplicate = null;
        try {
          await cookieClient.register(email, password);
        } catch (error) {
          duplicate = error instanceof LatchkeyError ? error.code : String(error);
        }
        await cookieClient.login(email, password);
        const accountResponse = await cookieClient.fetch('/api/account');
        const accountBody = await accountResponse.json();
        const sessions = await cookieClient.sessions();
        const renewed = await cookieClient.renew();
        const tokenVisible = cookieClient.accessToken;
        await cookieClient.logout();
        const afterLogout = await (await fetch(`${api}/api/me`, { credentials: 'include' })).json();
        cookieClient.close();

        const bearerClient = createClient({ baseUrl: api, mode: 'bearer' });
        await bearerClient.login(email, password);
        const me = await (await bearerClient.fetch('/api/me')).json();
        const hasToken = typeof bearerClient.accessToken === 'string';
        await bearerClient.logout();
        return { user, duplicate, status: accountResponse.status, accountBody, sessions, renewed, tokenVisible, afterLogout, me, hasToken };
      },
      { api: API, ...account },
    );
    assert.equal(result.user.email, account.email);
    assert.equal(result.duplicate, 'email_taken', 'problem codes are readable across origins');
    assert.equal(result.status, 200);
    assert.equal(result.accountBody.email, account.email);
    assert.deepEqual(result.sessions.map((session) => [session.client, session.current]), [['allowed origin', true]]);
    assert.equal(result.renewed, true);
    assert.equal(result.tokenVisible, null, 'cookie mode never hands the token to the page');
    assert.equal(result.afterLogout.code, 'missing_token', 'logout cleared the cookie');
    assert.equal(typeof result.me.session_id, 'string');
    assert.equal(result.hasToken, true);
    await context.close();
  });
});

describe('clock skew', () => {
  it('a device clock two hours off neither renews in a loop nor lets the token lapse', { timeout: 60_000 }, async () => {
    const skews = [
      { mode: 'cookie', offsetMs: 2 * 3600_000 },
      { mode: 'bearer', offsetMs: -2 * 3600_000 },
    ];
    const runs = await Promise.all(
      skews.map(async ({ mode, offsetMs }) => {
        const context = await newContext(browser);
        await context.addInitScript((offset) => {
          const RealDate = Date;
          class SkewedDate extends RealDate {
            constructor(...args) {
              if (args.length === 0) super(RealDate.now() + offset);
              else super(...args);
            }
            static now() {
              return RealDate.now() + offset;
            }
          }
          globalThis.Date = SkewedDate;
        }, offsetMs);
        const renewals = countRenewals(context);
        const { page } = await signedInDemo(context, mode, `skew-${mode}`);
        const skew = await page.evaluate(() => Date.now() - (performance.timeOrigin + performance.now()));
        const sent = renewals.count;
        const answered = renewals.responses.length;
        let lowest = Infinity;
        const until = Date.now() + 3 * TTL_MS;
        while (Date.now() < until) {
          lowest = Math.min(lowest, Number.parseFloat(await page.textContent('#countdown')));
          await sleep(200);
        }
        const result = {
          mode,
          skew,
          offsetMs,
          renewals: renewals.count - sent,
          lowest,
          state: await stateOf(page),
          statuses: renewals.responses.slice(answered).map((response) => response.status),
        };
        await context.close();
        return result;
      }),
    );
    for (const run of runs) {
      assert.ok(Math.abs(run.skew - run.offsetMs) < 5_000, `${run.mode}: the page's Date is really off`);
      // One renewal about every 3/4 of the lifetime: 4 in three lifetimes, give or take one.
      assert.ok(run.renewals >= 3 && run.renewals <= 5, `${run.mode}: ${run.renewals} renewals in ${3 * TTL_SECONDS} s`);
      assert.ok(run.lowest > 0, `${run.mode}: the token never ran out (lowest ${run.lowest} s)`);
      assert.equal(run.state, 'signed-in');
      assert.ok(run.statuses.every((status) => status === 200));
    }
  });
});
