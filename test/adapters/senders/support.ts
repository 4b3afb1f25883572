import { randomBytes } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import { simpleParser } from 'mailparser';
import type { AddressObject } from 'mailparser';
import type { EmailAddress } from '../../../src/domain/email-address.js';
import { parseEmailAddress } from '../../../src/domain/email-address.js';
import type { EmailRequest } from '../../../src/domain/email-request.js';
import { EmailId, parseEmailDraft, toEmailRequest } from '../../../src/domain/email-request.js';
import type { ReceivedAddress, ReceivedEmail } from '../../contracts/email-sender.contract.js';

export { recordingLogger } from '../../support/fakes.js';
export type { LogLine } from '../../support/fakes.js';

export function testId(): EmailId {
  const id = `test_${randomBytes(8).toString('hex')}`;
  if (!EmailId.is(id)) throw new Error(`bad test id ${id}`);
  return id;
}

export function address(raw: string): EmailAddress {
  const parsed = parseEmailAddress(raw);
  if (E.isLeft(parsed)) throw new Error(`bad test address ${raw}: ${parsed.left.message}`);
  return parsed.right;
}

export const FROM = address('Email Example <noreply@sender.example.org>');

/** An EmailRequest built the way the service builds one: through the real parser. */
export function emailRequest(input: Record<string, unknown> = {}): EmailRequest {
  const draft = parseEmailDraft({
    to: 'Ada Lovelace <ada@example.org>',
    subject: 'Hello',
    text: 'Hello from the tests',
    ...input,
  });
  if (E.isLeft(draft)) throw new Error(`bad test draft: ${JSON.stringify(draft.left.fields)}`);
  return toEmailRequest(draft.right, testId(), new Date());
}

const addresses = (field: AddressObject | AddressObject[] | undefined): ReceivedAddress[] =>
  (Array.isArray(field) ? field : field ? [field] : []).flatMap((o) =>
    o.value.map((a) => ({ name: a.name, address: a.address ?? '' })),
  );

/** An RFC 5322 message as a mail client would show it. */
export async function parseRaw(
  raw: Buffer | string,
  recipients?: string[],
): Promise<ReceivedEmail> {
  const mail = await simpleParser(raw);
  const to = addresses(mail.to);
  const idHeader = mail.headers.get('x-email-id');
  return {
    from: addresses(mail.from)[0] ?? { name: '', address: '' },
    to,
    recipients: recipients ?? to.map((a) => a.address),
    subject: mail.subject ?? '',
    ...(mail.text !== undefined ? { text: mail.text } : {}),
    ...(typeof mail.html === 'string' ? { html: mail.html } : {}),
    ...(mail.messageId !== undefined ? { messageId: mail.messageId } : {}),
    ...(typeof idHeader === 'string' ? { emailId: idHeader } : {}),
    headerNames: mail.headerLines.map((h) => h.key.toLowerCase()),
  };
}

/** Resolves after `ms`; for the few tests that must let real time pass. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
