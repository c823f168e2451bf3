/**
 * The pieces of DBSC (W3C Device Bound Session Credentials) around the proof check: the header
 * fields as latchkey writes them and reads them (in the draft's syntax and in the bare form
 * Chromium 150 sends), the session identifier, the challenges, and the session instructions.
 * The proofs themselves, good and bad, are the corpus in test/security/dbsc-proofs.json.
 */
import { describe, expect, it } from 'vitest';
import {
  challengeLifetimeMs,
  DBSC_CHALLENGE_TTL_SECONDS,
  judgeChallenge,
  newChallenge,
  newChallengeValue,
} from '../../src/dbsc/challenges';
import {
  challengeHeaderValue,
  DBSC_HEADERS,
  MAX_PROOF_HEADER_LENGTH,
  readProofField,
  readSessionIdField,
  registrationHeaderValue,
  serializeSfString,
} from '../../src/dbsc/headers';
import { END_SESSION_INSTRUCTIONS, refreshInitiators, sessionInstructions, tokenCookieAttributeList } from '../../src/dbsc/instructions';
import { dbscSessionIdentifier, parseDbscSessionIdentifier } from '../../src/dbsc/session-identifier';
import { call, PASSWORD, register, uniqueEmail } from '../support/helpers';

const USER = '0f8e5b1c-9f0e-4c7a-8a51-3b2f1d6c7e90';
const SESSION = '5d2c7b8a-1e3f-4a6b-9c0d-2e4f6a8b0c1d';
const IDENTIFIER = `${USER}.${SESSION}`;

function withHeaders(entries: Array<[string, string]>): Request {
  const headers = new Headers();
  for (const [name, value] of entries) headers.append(name, value);
  return new Request('https://latchkey.test/auth/dbsc/refresh', { method: 'POST', headers });
}

describe('header fields latchkey writes', () => {
  it('asks for registration with ES256 or RS256, the registration path and a challenge', () => {
    // The shape Chromium 150 was seen to register with, on http://localhost.
    expect(registrationHeaderValue('abc_DEF-123')).toBe('(ES256 RS256);path="/auth/dbsc/register";challenge="abc_DEF-123"');
    expect(DBSC_HEADERS.registration).toBe('Secure-Session-Registration');
  });

  it('names the session a challenge is for', () => {
    expect(challengeHeaderValue('abc', IDENTIFIER)).toBe(`"abc";id="${IDENTIFIER}"`);
    expect(DBSC_HEADERS.challenge).toBe('Secure-Session-Challenge');
  });

  it('writes structured-field strings with their escapes, and refuses what they cannot hold', () => {
    expect(serializeSfString('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(serializeSfString('')).toBe('""');
    expect(() => serializeSfString('é')).toThrow(RangeError);
    expect(() => serializeSfString('a\nb')).toThrow(RangeError);
  });
});

describe('header fields latchkey reads', () => {
  const proofName = DBSC_HEADERS.response;
  const idName = DBSC_HEADERS.sessionId;

  it('reads the bare values Chromium 150 sends', () => {
    expect(readSessionIdField(withHeaders([[idName, IDENTIFIER]]))).toEqual({ kind: 'one', value: IDENTIFIER });
    expect(readProofField(withHeaders([[proofName, 'eyJh.eyJq.sig_-']]))).toEqual({ kind: 'one', value: 'eyJh.eyJq.sig_-' });
  });

  it('reads the draft structured-field strings, escapes undone, parameters ignored', () => {
    expect(readSessionIdField(withHeaders([[idName, `"${IDENTIFIER}"`]]))).toEqual({ kind: 'one', value: IDENTIFIER });
    expect(readSessionIdField(withHeaders([[idName, '"a\\"b";x=1; y="z;\\"w"']]))).toEqual({ kind: 'one', value: 'a"b' });
    expect(readProofField(withHeaders([[proofName, '  "a.b.c"  ']]))).toEqual({ kind: 'one', value: 'a.b.c' });
  });

  it('has nothing when the field is absent', () => {
    expect(readSessionIdField(withHeaders([]))).toEqual({ kind: 'absent' });
    expect(readProofField(withHeaders([]))).toEqual({ kind: 'absent' });
  });

  it.each([
    ['empty', ''],
    ['an empty string', '""'],
    ['unterminated', '"abc'],
    ['a bad escape', '"a\\nb"'],
    ['two list members', '"a", "b"'],
    ['a bare value with a space', 'a b'],
    ['a bare value with a comma', 'a,b'],
    ['a bare value with a semicolon', 'a;b'],
    ['a bare value with a quote', 'a"b'],
    ['a bare value with a backslash', 'a\\b'],
    ['junk after the string', '"a" b'],
  ])('refuses %s', (_name, value) => {
    expect(readSessionIdField(withHeaders([[idName, value]]))).toEqual({ kind: 'malformed' });
  });

  it('refuses the field sent twice', () => {
    expect(readSessionIdField(withHeaders([[idName, IDENTIFIER], [idName, IDENTIFIER]]))).toEqual({ kind: 'malformed' });
    expect(readProofField(withHeaders([[proofName, '"a.b.c"'], [proofName, '"a.b.c"']]))).toEqual({ kind: 'malformed' });
  });

  it('refuses values too long to be one, before parsing them', () => {
    expect(readSessionIdField(withHeaders([[idName, 'a'.repeat(257)]]))).toEqual({ kind: 'malformed' });
    expect(readProofField(withHeaders([[proofName, 'a'.repeat(MAX_PROOF_HEADER_LENGTH + 1)]]))).toEqual({ kind: 'malformed' });
    expect(readProofField(withHeaders([[proofName, 'a'.repeat(MAX_PROOF_HEADER_LENGTH)]]))).toEqual({
      kind: 'one',
      value: 'a'.repeat(MAX_PROOF_HEADER_LENGTH),
    });
  });
});

describe('the session identifier', () => {
  it('names the user and the session, and reads back', () => {
    expect(dbscSessionIdentifier({ userId: USER, sessionId: SESSION })).toBe(IDENTIFIER);
    expect(parseDbscSessionIdentifier(IDENTIFIER)).toEqual({ userId: USER, sessionId: SESSION });
  });

  it.each([
    ['only a session id', SESSION],
    ['upper case', IDENTIFIER.toUpperCase()],
    ['three parts', `${IDENTIFIER}.${SESSION}`],
    ['the parts swapped around a slash', `${USER}/${SESSION}`],
    ['a path', `../${USER}.${SESSION}`],
    ['an empty user', `.${SESSION}`],
    ['trailing text', `${IDENTIFIER} `],
  ])('refuses %s', (_name, value) => {
    expect(parseDbscSessionIdentifier(value)).toBeUndefined();
  });
});

describe('challenges', () => {
  const NOW = 1_800_000_000_000;

  it('are 256 random bits in base64url, never the same twice', () => {
    const values = new Set(Array.from({ length: 200 }, newChallengeValue));
    expect(values.size).toBe(200);
    for (const value of values) expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('live a minute when answered at once, and a token lifetime longer when sent ahead', () => {
    expect(DBSC_CHALLENGE_TTL_SECONDS).toBe(60);
    expect(challengeLifetimeMs('registration', 300)).toBe(60_000);
    expect(challengeLifetimeMs('refresh', 300)).toBe(60_000);
    expect(challengeLifetimeMs('ahead', 300)).toBe(360_000);
  });

  it('are judged: live and of this session, unknown, expired, or of another session', () => {
    const mine = newChallenge('a', NOW, 60_000);
    expect(judgeChallenge(mine, 'a', NOW)).toBe('ok');
    expect(judgeChallenge(mine, 'a', NOW + 59_999)).toBe('ok');
    expect(judgeChallenge(mine, 'a', NOW + 60_000)).toBe('expired');
    expect(judgeChallenge(mine, 'b', NOW)).toBe('other_session');
    expect(judgeChallenge(undefined, 'a', NOW)).toBe('unknown');
  });
});

describe('session instructions', () => {
  it('bind the token cookie of latchkey’s origin, refreshed at /auth/dbsc/refresh', () => {
    expect(
      sessionInstructions({ sessionIdentifier: IDENTIFIER, requestUrl: 'http://localhost:8801/auth/dbsc/register', allowedOrigins: ['http://localhost:8801'] }),
    ).toEqual({
      session_identifier: IDENTIFIER,
      refresh_url: '/auth/dbsc/refresh',
      scope: { origin: 'http://localhost:8801', include_site: false, scope_specification: [] },
      credentials: [{ type: 'cookie', name: 'latchkey_at', attributes: 'Path=/; Secure; HttpOnly; SameSite=Strict' }],
    });
  });

  it('name the __Host- cookie over https, and let the pages of ALLOWED_ORIGINS start refreshes', () => {
    const instructions = sessionInstructions({
      sessionIdentifier: IDENTIFIER,
      requestUrl: 'https://auth.example.com/auth/dbsc/refresh',
      allowedOrigins: ['https://auth.example.com', 'https://app.example.com', 'https://app.example.com:8443', 'not an origin'],
    });
    expect(instructions.credentials[0]?.name).toBe('__Host-latchkey_at');
    expect(instructions.scope.origin).toBe('https://auth.example.com');
    expect(instructions.allowed_refresh_initiators).toEqual(['app.example.com']);
  });

  it('take the hosts of other origins as refresh initiators, ports and schemes aside', () => {
    expect(refreshInitiators(['http://localhost:8801', 'http://localhost:8802', 'https://a.test'], 'http://localhost:8801')).toEqual([
      'localhost',
      'a.test',
    ]);
    expect(refreshInitiators(['http://localhost:8801'], 'http://localhost:8801/auth/dbsc/register')).toEqual([]);
  });

  it('end a session with continue: false', () => {
    expect(END_SESSION_INSTRUCTIONS).toEqual({ continue: false });
  });

  it('name exactly the attributes the token cookie is set with, so the browser sees it as the bound cookie', async () => {
    const email = uniqueEmail();
    await register(email);
    const response = await call('/auth/login', {
      method: 'POST',
      json: { email, password: PASSWORD, mode: 'cookie' },
      headers: { origin: 'http://localhost:8787' },
    });
    expect(response.status).toBe(200);
    const [line] = response.headers.getSetCookie();
    const attributes = (line as string)
      .split(';')
      .slice(1)
      .map((part) => part.trim())
      .filter((part) => !/^max-age=/i.test(part));
    const normalize = (list: string[]) => list.map((part) => part.toLowerCase()).sort();
    expect(normalize(attributes)).toEqual(normalize(tokenCookieAttributeList().split('; ')));
  });
});
