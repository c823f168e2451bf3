import { EmailMessage } from 'cloudflare:email';
import { now } from '../clock';
import type { Config } from '../config';
import { composeMessage, type MailContent } from './mime';

/**
 * Hands one message to the `send_email` binding `EMAIL` (wrangler.toml). Deployed, Cloudflare
 * Email Service delivers it from EMAIL_FROM's domain. Under `wrangler dev` (and `npm start`) the
 * binding delivers nothing: it stores the message as an .eml file and logs the file's path, so a
 * developer opens the file and clicks the link.
 */
export async function sendMail(binding: SendEmail, config: Config, content: MailContent): Promise<void> {
  const raw = composeMessage(config.emailFrom, content, now());
  await binding.send(new EmailMessage(config.emailFrom.address, content.to, raw));
}
