/**
 * A mail message as the `send_email` binding takes it: a raw RFC 5322 message, here
 * multipart/alternative with a plain-text and an HTML part (RFC 2046 §5.1.4), text first so that
 * clients showing the HTML fall back to the text, and text-only clients show the text.
 *
 * Bodies are 7-bit ASCII (links come from `URL.href`, which is always ASCII; the wording is ours),
 * sent as they are rather than quoted-printable or base64: then the file that `wrangler dev` writes
 * for each message shows the link as it is, ready to click. A non-ASCII recipient address goes into
 * the To header as UTF-8 (RFC 6532).
 */

export interface MailContent {
  /** One address, as stored in the directory. */
  to: string;
  subject: string;
  text: string;
  html: string;
}

export interface Sender {
  address: string;
  name: string | null;
}

/** RFC 5322 §2.1.1: no line may exceed 998 octets. Ours are far shorter; longer is a bug. */
const MAX_LINE_OCTETS = 998;

function headerValue(name: string, value: string): string {
  // A line break in a header value would start a header (or a body) of the value's choosing.
  if (/[\r\n]/.test(value) || value.includes('\u0000')) throw new Error(`mail header ${name} contains a line break`);
  return `${name}: ${value}`;
}

function body(text: string, kind: string): string[] {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  for (const line of lines) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the check is for anything outside printable ASCII and tab.
    if (/[^\x09\x20-\x7e]/.test(line)) throw new Error(`mail ${kind} body is not 7-bit ASCII text`);
    if (line.length > MAX_LINE_OCTETS) throw new Error(`mail ${kind} body has a line over ${MAX_LINE_OCTETS} octets`);
    // A line that is exactly the boundary would end the part early; ours never start with "--".
    if (line.startsWith('--')) throw new Error(`mail ${kind} body has a line starting with "--"`);
  }
  return lines;
}

/** RFC 5322 §3.3 date-time, in UTC. */
function mailDate(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

/**
 * The raw message. `from.address` must also be the envelope sender given to the binding: the
 * binding refuses a message whose From header names another address.
 */
export function composeMessage(from: Sender, content: MailContent, sentAtMs: number): string {
  const id = crypto.randomUUID();
  const domain = from.address.slice(from.address.lastIndexOf('@') + 1);
  const boundary = `latchkey-${id}`;
  const lines = [
    headerValue('From', from.name === null ? from.address : `${from.name} <${from.address}>`),
    headerValue('To', content.to),
    headerValue('Subject', content.subject),
    headerValue('Date', mailDate(sentAtMs)),
    headerValue('Message-ID', `<${id}@${domain}>`),
    // RFC 3834: an automatic message, so vacation responders do not answer it.
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    `Content-Type: multipart/alternative; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    ...body(content.text, 'text'),
    `--${boundary}`,
    'Content-Type: text/html; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    ...body(content.html, 'HTML'),
    `--${boundary}--`,
    '',
  ];
  return lines.join('\r\n');
}
