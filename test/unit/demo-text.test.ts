/**
 * The demo page's words for codes (client/demo/text.ts): every code the page can meet has words,
 * and the words are words. The page itself, with them, is tested in a browser (test/browser/).
 */
import { describe, expect, it } from 'vitest';
import { type KnownCode, WORDS, type Words, wordsFor } from '../../client/demo/text';
import type { ErrorCode } from '../../src/errors';
import type { SecurityEventType } from '../../src/storage/records';

/** The sign-outs a browser asks for itself; the client's other sign-out reasons are problem codes. */
type OwnSignOut = 'logout' | 'logout_all';
type PageCode = ErrorCode | SecurityEventType | OwnSignOut;

// Checked by `npm run typecheck`: a new event type or problem code without words fails here, and
// so does an entry for a code that does not exist (a typo would never be looked up).
const everyCodeHasWords: Record<PageCode, Words> = WORDS;
const noStrayEntry: [Exclude<KnownCode, PageCode>] extends [never] ? true : false = true;

describe("the demo page's words for codes", () => {
  it('cover the codes, and read as words: no code in them, a capital, no stop in a title, a stop after an explanation', () => {
    expect(noStrayEntry).toBe(true);
    const entries = Object.entries(everyCodeHasWords) as [string, Words][];
    expect(entries.length).toBe(Object.keys(WORDS).length);
    for (const [code, words] of entries) {
      for (const text of [words.title, words.explain ?? '']) expect(text, code).not.toMatch(/\b[a-z]+_[a-z_]+\b/);
      expect(words.title, code).toMatch(/^[A-Z][^.]*[^.\s]$/);
      if (words.explain !== undefined) expect(words.explain, code).toMatch(/^[A-Z].*\.$/);
    }
  });

  it('reads the examples people see first the way they should', () => {
    expect(wordsFor('logout_all').title).toBe('Signed out everywhere');
    expect(wordsFor('session_revoked').title).toBe('Session revoked');
    expect(wordsFor('reuse_detected').title).toBe('Old token used again');
  });

  it('still has words for a code it does not know: an HTTP status without a problem document, a newer server\'s code', () => {
    expect(wordsFor('http_502')).toEqual({ title: 'Unexpected answer', explain: 'The server answered with HTTP status 502.' });
    expect(wordsFor('some_future_code').title).toBe('Something went wrong');
    // Only the table's own entries, never what every object inherits.
    expect(wordsFor('constructor').title).toBe('Something went wrong');
  });
});
