// Reading a raw RFC 5322 message: pure, shared by the Worker tests' mailbox and the unit tests.

/** One message as the `EMAIL` binding took it, and its parts. */
export interface DeliveredMail {
  /** The envelope sender and recipient given to the binding. */
  from: string;
  to: string;
  /** The raw RFC 5322 message: what the binding parsed and stored as a file. */
  raw: string;
  /** Header names lower-cased. */
  headers: Record<string, string>;
  text: string;
  html: string;
}

/** Splits a raw message into its headers and its text and HTML parts (multipart/alternative). */
export function parseMail(raw: string): Pick<DeliveredMail, 'headers' | 'text' | 'html'> {
  const split = raw.indexOf('\r\n\r\n');
  const headers: Record<string, string> = {};
  for (const line of raw.slice(0, split).split('\r\n')) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  const boundary = /boundary="([^"]+)"/.exec(headers['content-type'] ?? '')?.[1];
  const parts: Record<string, string> = {};
  if (boundary) {
    for (const part of raw.slice(split + 4).split(`--${boundary}`).slice(1, -1)) {
      const body = part.indexOf('\r\n\r\n');
      const type = /content-type:\s*([^;\r\n]+)/i.exec(part.slice(0, body))?.[1]?.trim() ?? '';
      parts[type] = part.slice(body + 4).replace(/\r\n$/, '').replace(/\r\n/g, '\n');
    }
  }
  return { headers, text: parts['text/plain'] ?? '', html: parts['text/html'] ?? '' };
}
