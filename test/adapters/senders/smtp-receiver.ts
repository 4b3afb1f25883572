import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { ReceivedEmail } from '../../contracts/email-sender.contract.js';
import { parseRaw } from './support.js';

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
  readonly authAttempts: { user: string; pass: string }[];
  close(): Promise<void>;
}

const smtpError = (message: string, responseCode: number): Error =>
  Object.assign(new Error(message), { responseCode });

/**
 * A real smtp-server in-process (STACK.md trap 12: STARTTLS off, port 0). With `auth`, only
 * those credentials are accepted; without, AUTH is optional.
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
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (fault === 'hang') return; // never answer the DATA
        if (fault === 'transient') return callback(smtpError('Try again later', 451));
        if (fault === 'permanent') return callback(smtpError('Message refused by policy', 550));
        raw.push(Buffer.concat(chunks));
        envelopes.push(session.envelope.rcptTo.map((r) => r.address));
        callback(null, `Queued as Q${++queued}`);
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
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
