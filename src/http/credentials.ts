/**
 * The credential a request presents. `undefined` means none at all (no header, an empty
 * `Bearer `, another scheme): RFC 6750 §3.1 answers that with a bare challenge, not an error.
 */
export function bearerToken(request: Request): string | undefined {
  const header = request.headers.get('authorization');
  if (header === null) return undefined;
  const match = /^Bearer(?:\s+(.*))?$/i.exec(header.trim());
  if (!match) return undefined;
  const token = (match[1] ?? '').trim();
  return token === '' ? undefined : token;
}
