import { describe, expect, it } from 'vitest';
import { lifetimeInWords, linkTo, resetMessage } from '../../src/email/messages';
import { composeMessage } from '../../src/email/mime';
import { isLinkToken, isUsableLink, type LinkTokenRecord, newLinkToken } from '../../src/email/tokens';
import { parseMail } from '../support/mail-parse';

const FROM = { address: 'no-reply@mail.example.com', name: 'Example' };

describe('composing a message', () => {
  it('is multipart/alternative with the text part first, CRLF line ends, and an id on the sender domain', () => {
    const raw = composeMessage(FROM, resetMessage('ada@example.com', 'https://app.example.com/#reset=x', 1800), Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(raw.split('\r\n').every((line) => !line.includes('\n'))).toBe(true);
    const mail = parseMail(raw);
    expect(mail.headers).toMatchObject({
      from: 'Example <no-reply@mail.example.com>',
      to: 'ada@example.com',
      date: 'Fri, 02 Jan 2026 03:04:05 +0000',
    });
    expect(mail.headers['message-id']).toMatch(/@mail\.example\.com>$/);
    expect(raw.indexOf('text/plain')).toBeLessThan(raw.indexOf('text/html'));
    expect(mail.text).toContain('https://app.example.com/#reset=x');
    expect(mail.html).toContain('href="https://app.example.com/#reset=x"');
  });

  it('refuses a header value with a line break (header injection)', () => {
    const content = resetMessage('ada@example.com\r\nBcc: everyone@example.com', 'https://app.example.com/#reset=x', 1800);
    expect(() => composeMessage(FROM, content, 0)).toThrow(/line break/);
  });

  it('refuses a body that is not 7-bit text, and a line over 998 octets', () => {
    const content = resetMessage('ada@example.com', 'https://app.example.com/#reset=x', 1800);
    expect(() => composeMessage(FROM, { ...content, text: 'caf\u00e9' }, 0)).toThrow(/7-bit/);
    expect(() => composeMessage(FROM, { ...content, text: 'x'.repeat(999) }, 0)).toThrow(/998/);
  });

  it('escapes the link in the HTML part', () => {
    const { html } = resetMessage('ada@example.com', 'https://app.example.com/?a=1&b="2"#reset=x', 1800);
    expect(html).toContain('href="https://app.example.com/?a=1&#38;b=&#34;2&#34;#reset=x"');
  });
});

describe('links', () => {
  it('put the token in the fragment of APP_URL, keeping its path and query', () => {
    expect(linkTo('https://app.example.com/account?x=1', 'verify', 'T')).toBe('https://app.example.com/account?x=1#verify=T');
  });

  it.each([
    [1800, '30 minutes'],
    [60, '1 minute'],
    [86_400, '24 hours'],
    [3600, '1 hour'],
    [172_800, '2 days'],
    [90, '90 seconds'],
  ])('say a lifetime of %i seconds as "%s"', (seconds, words) => {
    expect(lifetimeInWords(seconds)).toBe(words);
  });

  it('have 43-character base64url tokens, each new', async () => {
    const [a, b] = await Promise.all([newLinkToken(), newLinkToken()]);
    expect(isLinkToken(a.token)).toBe(true);
    expect(a.token).not.toBe(b.token);
    expect(a.hash).not.toBe(a.token);
  });

  it('work only for their purpose and user, unused, unexpired, and (reset) under the same password', () => {
    const link: LinkTokenRecord = {
      userId: 'u',
      purpose: 'reset',
      passwordHashAtIssue: 'h1',
      expiresAt: 1000,
      usedAt: null,
      currentPasswordHash: 'h1',
    };
    expect(isUsableLink(link, 'reset', 'u', 999)).toBe(true);
    expect(isUsableLink(link, 'reset', undefined, 999)).toBe(true);
    expect(isUsableLink(link, 'verify', 'u', 999)).toBe(false);
    expect(isUsableLink(link, 'reset', 'v', 999)).toBe(false);
    expect(isUsableLink(link, 'reset', 'u', 1000)).toBe(false);
    expect(isUsableLink({ ...link, usedAt: 5 }, 'reset', 'u', 999)).toBe(false);
    expect(isUsableLink({ ...link, currentPasswordHash: 'h2' }, 'reset', 'u', 999)).toBe(false);
    expect(isUsableLink(null, 'reset', 'u', 999)).toBe(false);
  });
});
