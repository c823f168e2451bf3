import { env } from 'cloudflare:workers';
import { expect } from 'vitest';
import type { LinkPurpose } from '../../src/email/tokens';
import type { CallInit } from './helpers';
import { direct } from './direct';
import { type DeliveredMail, parseMail } from './mail-parse';

export type { DeliveredMail };

/**
 * The raw message inside an `EmailMessage`. Under Miniflare, `cloudflare:email`'s EmailMessage is
 * a plain object holding it under this key, which is where the local binding itself reads it
 * before storing it as a file.
 */
const RAW_EMAIL = 'EmailMessage::raw';

/**
 * The suite's bindings with the real `EMAIL` binding wrapped: every message goes through it as
 * it would in production (the local binding parses it, refuses a malformed one or one whose From
 * does not match the sender, and stores it), and only once the binding has taken it is it
 * recorded here, for the test to read. A message the binding refused is not recorded.
 */
export function mailbox(base: Env = env) {
  const delivered: DeliveredMail[] = [];
  const EMAIL = {
    async send(message: EmailMessage) {
      const result = await base.EMAIL.send(message);
      const raw = (message as unknown as Record<string, unknown>)[RAW_EMAIL];
      expect(typeof raw, 'the raw message of an EmailMessage').toBe('string');
      delivered.push({ from: message.from, to: message.to, raw: raw as string, ...parseMail(raw as string) });
      return result;
    },
  } as unknown as SendEmail;
  const bindings: Env = { ...base, EMAIL };
  return {
    bindings,
    delivered,
    /** A request through the Worker's routes with these bindings, `waitUntil` work included. */
    call: (path: string, init: CallInit = {}) => direct(path, init, bindings),
    /** The messages delivered to `to`, oldest first. */
    to: (to: string) => delivered.filter((mail) => mail.to === to),
  };
}

/** The link of `purpose` in a message's text part, and its token; fails the test if absent. */
export function linkIn(mail: DeliveredMail | undefined, purpose: LinkPurpose): { url: string; token: string } {
  const found = new RegExp(`(\\S+#${purpose}=([A-Za-z0-9_-]{43}))(?:\\s|$)`).exec(mail?.text ?? '');
  expect(found, `a ${purpose} link in ${mail?.text}`).not.toBeNull();
  return { url: found?.[1] as string, token: found?.[2] as string };
}
