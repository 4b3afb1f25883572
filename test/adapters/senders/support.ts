// The sending side of the sender tests: the From every adapter is built with, and a Mailgun
// sender paired with its stand-in. The receiving side is test/support/mail-receivers.ts.
import { MailgunEmailSender } from '../../../src/adapters/mailgun/mailgun-email-sender.js';
import type { Logger } from '../../../src/application/ports/system.js';
import type { MailgunStandIn } from '../../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../../src/stand-ins/mailgun-stand-in.js';
import type { FailureKind } from '../../contracts/email-sender.contract.js';
import { anAddress } from '../../support/builders.js';

export const FROM = anAddress('Email Example <noreply@sender.example.org>');

export const MAILGUN_DOMAIN = 'mg.example.org';
export const MAILGUN_KEY = 'key-3ax6xnjp29jd6fds4gc373sgvjxteol0';

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
