import * as E from 'fp-ts/lib/Either.js';
import { MailgunEmailSender } from '../../../src/adapters/mailgun/mailgun-email-sender.js';
import type { Logger } from '../../../src/application/ports/system.js';
import { addressParts, mailbox, parseEmailAddress } from '../../../src/domain/email-address.js';
import type { MailgunStandIn, ReceivedMessage } from '../../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../../src/stand-ins/mailgun-stand-in.js';
import type {
  FailureKind,
  ReceivedAddress,
  ReceivedEmail,
} from '../../contracts/email-sender.contract.js';
import { FROM } from './support.js';

export const MAILGUN_DOMAIN = 'mg.example.org';
export const MAILGUN_KEY = 'key-3ax6xnjp29jd6fds4gc373sgvjxteol0';

const parsedAddress = (raw: string): ReceivedAddress => {
  const parsed = parseEmailAddress(raw);
  if (E.isLeft(parsed)) return { name: '', address: raw };
  return { name: addressParts(parsed.right).displayName ?? '', address: mailbox(parsed.right) };
};

// Fields Mailgun turns into MIME headers of the message it sends: the addresses and subject,
// plus every `h:` field; `v:`, `o:`, `t:` and the bodies are not headers.
const BODY_FIELDS = new Set(['text', 'html', 'amp-html', 'template', 'attachment', 'inline']);

/** What Mailgun received, as the receiving side of our sender sees it. */
export function asReceived(m: ReceivedMessage): ReceivedEmail {
  const to = m.to.map(parsedAddress);
  const headerNames = [
    ...m.fields.map(([k]) => k).filter((k) => !k.includes(':') && !BODY_FIELDS.has(k)),
    ...Object.keys(m.headers),
  ].map((k) => k.toLowerCase());
  return {
    from: parsedAddress(m.from),
    to,
    recipients: to.map((a) => a.address),
    subject: m.subject,
    ...(m.text !== undefined ? { text: m.text } : {}),
    ...(m.html !== undefined ? { html: m.html } : {}),
    ...(m.headers['Message-Id'] !== undefined ? { messageId: m.headers['Message-Id'] } : {}),
    ...(m.variables['email-id'] !== undefined ? { emailId: m.variables['email-id'] } : {}),
    headerNames: [...new Set(headerNames)],
  };
}

/** The stand-in's faults for each failure the contract asks for. */
export const mailgunFault = (kind: FailureKind) =>
  kind === 'transient' ? { status: 503 } : kind === 'permanent' ? { status: 400 } : { hang: true };

export async function mailgunPair(
  log: Logger,
  timeoutMs = 500,
): Promise<{ standIn: MailgunStandIn; sender: MailgunEmailSender }> {
  const standIn = await startMailgunStandIn({ domain: MAILGUN_DOMAIN, apiKey: MAILGUN_KEY });
  const sender = new MailgunEmailSender({
    apiBase: standIn.baseUrl,
    apiKey: MAILGUN_KEY,
    from: FROM,
    timeoutMs,
    log,
  });
  return { standIn, sender };
}
