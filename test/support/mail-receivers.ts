// The receiving side of every transport, in one place: an SMTP server in-process, the Mailgun
// stand-in's record, and a raw RFC 5322 message, each read into the one `ReceivedEmail` shape the
// sender contract and the process tests compare.
import * as E from 'fp-ts/lib/Either.js';
import { simpleParser } from 'mailparser';
import type { AddressObject } from 'mailparser';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { addressParts, mailbox, parseEmailAddress } from '../../src/domain/email-address.js';
import type { ReceivedMessage } from '../../src/stand-ins/mailgun-stand-in.js';
import { eventually } from './waiting.js';

export interface ReceivedAddress {
  readonly name: string;
  readonly address: string;
}

/** One email as the receiving side sees it (a mail client, an SMTP server, Mailgun's API). */
export interface ReceivedEmail {
  readonly from: ReceivedAddress;
  readonly to: readonly ReceivedAddress[];
  /** Who it was actually delivered to: the SMTP envelope, Mailgun's `to` fields, the To header. */
  readonly recipients: readonly string[];
  readonly subject: string;
  readonly text?: string;
  readonly html?: string;
  readonly messageId?: string;
  /** Our id, from `X-Email-Id` or Mailgun's `v:email-id`. */
  readonly emailId?: string;
  /** Every header (or Mailgun header-making field) name, lowercase. */
  readonly headerNames: readonly string[];
}

const addresses = (field: AddressObject | AddressObject[] | undefined): ReceivedAddress[] =>
  (Array.isArray(field) ? field : field ? [field] : []).flatMap((o) =>
    o.value.map((a) => ({ name: a.name, address: a.address ?? '' })),
  );

/** An RFC 5322 message (an `.eml`, SMTP DATA) as a mail client would show it. */
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

const parsedAddress = (raw: string): ReceivedAddress => {
  const parsed = parseEmailAddress(raw);
  if (E.isLeft(parsed)) return { name: '', address: raw };
  return { name: addressParts(parsed.right).displayName ?? '', address: mailbox(parsed.right) };
};

// Fields Mailgun turns into MIME headers of the message it sends: the addresses and subject,
// plus every `h:` field; `v:`, `o:`, `t:` and the bodies are not headers.
const BODY_FIELDS = new Set(['text', 'html', 'amp-html', 'template', 'attachment', 'inline']);

/** What the Mailgun stand-in received, as the receiving side of our sender sees it. */
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

export type SmtpFault = 'transient' | 'permanent' | 'hang';

export interface SmtpReceiver {
  readonly port: number;
  /** `smtp://[user:pass@]127.0.0.1:PORT`. */
  url(credentials?: { user: string; pass: string }): string;
  received(): Promise<ReceivedEmail[]>;
  /** Raw DATA as it arrived, for the tests that look at the wire. */
  readonly raw: Buffer[];
  /** The next DATA is answered 451 (transient), 550 (permanent), or never (hang). */
  failNext(fault: SmtpFault): void;
  /** RCPT TO for this address is refused with this code (e.g. 550, 452). */
  refuseRecipient(address: string, code: number): void;
  /** From now on, every DATA is answered `ms` after it arrived: a slow server. */
  answerAfter(ms: number): void;
  /**
   * The next DATA is held: `arrived` resolves once it has come in whole, and it is answered
   * (250) only after `release()`.
   */
  holdNext(): { readonly arrived: Promise<void>; release(): void };
  readonly authAttempts: { user: string; pass: string }[];
  close(): Promise<void>;
}

const smtpError = (message: string, responseCode: number): Error =>
  Object.assign(new Error(message), { responseCode });

/**
 * A real smtp-server in-process, on port 0 with STARTTLS off (no certificate to trust in a test).
 * With `auth`, only those credentials are accepted; without, AUTH is optional.
 */
export async function startSmtpReceiver(auth?: {
  user: string;
  pass: string;
}): Promise<SmtpReceiver> {
  const raw: Buffer[] = [];
  const envelopes: string[][] = [];
  const faults: SmtpFault[] = [];
  const refused = new Map<string, number>();
  const authAttempts: { user: string; pass: string }[] = [];
  let queued = 0;
  let answerDelayMs = 0;
  const holds: { arrived: () => void; released: Promise<void> }[] = [];

  const server = new SMTPServer({
    authOptional: auth === undefined,
    disabledCommands: ['STARTTLS'],
    logger: false,
    closeTimeout: 100,
    onAuth(attempt, _session, callback) {
      const user = attempt.username ?? '';
      const pass = attempt.password ?? '';
      authAttempts.push({ user, pass });
      if (auth && user === auth.user && pass === auth.pass) callback(null, { user });
      else callback(smtpError('Authentication credentials invalid', 535));
    },
    onRcptTo(address, _session, callback) {
      const code = refused.get(address.address);
      callback(code ? smtpError(`Mailbox ${address.address} unavailable`, code) : null);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      const fault = faults.shift();
      const hold = holds.shift();
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (fault === 'hang') return; // never answer the DATA
        if (fault === 'transient') return callback(smtpError('Try again later', 451));
        if (fault === 'permanent') return callback(smtpError('Message refused by policy', 550));
        const take = () => {
          raw.push(Buffer.concat(chunks));
          envelopes.push(session.envelope.rcptTo.map((r) => r.address));
          callback(null, `Queued as Q${++queued}`);
        };
        if (hold !== undefined) {
          hold.arrived();
          void hold.released.then(take);
        } else if (answerDelayMs > 0) setTimeout(take, answerDelayMs);
        else take();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;

  return {
    port,
    raw,
    authAttempts,
    url: (credentials) =>
      credentials
        ? `smtp://${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.pass)}@127.0.0.1:${port}`
        : `smtp://127.0.0.1:${port}`,
    received: () => Promise.all(raw.map((r, i) => parseRaw(r, envelopes[i]))),
    failNext: (fault) => void faults.push(fault),
    refuseRecipient: (address, code) => void refused.set(address, code),
    answerAfter: (ms) => void (answerDelayMs = ms),
    holdNext: () => {
      let arrived = (): void => undefined;
      let release = (): void => undefined;
      const hold = {
        arrived: new Promise<void>((resolve) => (arrived = resolve)),
        released: new Promise<void>((resolve) => (release = resolve)),
      };
      holds.push({ arrived, released: hold.released });
      return { arrived: hold.arrived, release };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Resolves once every fault queued on the Mailgun stand-in at `baseUrl` (its `/v3/DOMAIN` base)
 * has been taken by a request: a send scripted to wait out a latency has arrived, read its body
 * and begun its wait. Asked over the stand-in's own `/__stand-in/faults` route.
 */
export async function faultsTaken(baseUrl: string): Promise<void> {
  const root = baseUrl.replace(/\/v3\/.*$/, '');
  await eventually(
    async () => {
      const res = await fetch(`${root}/__stand-in/faults`, {
        method: 'POST',
        body: '{"queue":[]}',
      });
      return ((await res.json()) as { queued: number }).queued === 0;
    },
    { what: 'the stand-in to take its queued faults' },
  );
}
