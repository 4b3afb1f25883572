import type { SendMailOptions } from 'nodemailer';
import type { EmailAddress } from '../../domain/email-address.js';
import { addressParts, mailbox } from '../../domain/email-address.js';
import type { EmailRequest } from '../../domain/email-request.js';

/**
 * What every transport writes in an email's headers, in one place so that SMTP, the outbox and
 * Mailgun put the same message on the wire for the same request.
 */

/** Our id on every message, whatever the transport: the status page's id, findable in a mailbox. */
export const EMAIL_ID_HEADER = 'X-Email-Id';

/** `{name, address}` objects, so nodemailer renders our parse instead of re-parsing a string. */
export const mimeAddress = (a: EmailAddress): { name: string; address: string } => ({
  name: addressParts(a).displayName ?? '',
  address: mailbox(a),
});

/**
 * `<id@sender-domain>`: the same on every attempt and every transport, so a receiver handed the
 * same email twice (delivery is at least once) can tell it is one message.
 */
export const messageIdOf = (request: EmailRequest, from: EmailAddress): string =>
  `<${request.id}@${addressParts(from).domain}>`;

/**
 * The message nodemailer builds, by its transport or by its composer. The Date is the request's
 * own time, so a re-send of the same id produces the same headers (only MIME boundaries differ).
 */
export function nodemailerMessage(request: EmailRequest, from: EmailAddress) {
  return {
    from: mimeAddress(from),
    to: request.to.map(mimeAddress),
    subject: request.subject,
    ...(request.text !== undefined ? { text: request.text } : {}),
    ...(request.html !== undefined ? { html: request.html } : {}),
    date: new Date(request.requestedAt),
    messageId: messageIdOf(request, from),
    headers: { [EMAIL_ID_HEADER]: request.id },
    // Content never comes from a path or URL: a body is text, not an instruction to read a file.
    disableFileAccess: true,
    disableUrlAccess: true,
  } satisfies SendMailOptions;
}
