// The app with everything an email's page offers (its message, its html part, the raw message,
// cancel, retry now, resend), wired as `email dev` wires it but on the in-memory adapters, with a
// worker that sends through a sender of the test's choice. For the email page's HTTP and browser
// tests.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { pipe } from 'fp-ts/lib/function.js';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import { createHttpApp } from '../../../src/adapters/http/app.js';
import type { RawMessage } from '../../../src/adapters/http/raw-routes.js';
import type { StoredMessages } from '../../../src/adapters/http/message-routes.js';
import { InMemoryAttachmentStore } from '../../../src/adapters/memory/in-memory-attachment-store.js';
import { InMemoryDeliveryEvents } from '../../../src/adapters/memory/in-memory-delivery-events.js';
import { InMemoryEmailQueue } from '../../../src/adapters/memory/in-memory-email-queue.js';
import { InMemoryScheduledEmails } from '../../../src/adapters/memory/in-memory-scheduled-emails.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { InMemorySuppressionList } from '../../../src/adapters/memory/in-memory-suppression-list.js';
import { composeMessage } from '../../../src/adapters/mime/mime-message.js';
import { systemClock } from '../../../src/adapters/system/system.js';
import { CancelEmail } from '../../../src/application/cancel-email.js';
import { DeliverEmail } from '../../../src/application/deliver-email.js';
import { recordAndAnnounce } from '../../../src/application/email-history.js';
import type { EmailSender } from '../../../src/application/ports/email-sender.js';
import type { Clock } from '../../../src/application/ports/system.js';
import { ReleaseScheduled } from '../../../src/application/release-scheduled.js';
import { RequestEmail } from '../../../src/application/request-email.js';
import { ResendEmail } from '../../../src/application/resend-email.js';
import { RetryNow } from '../../../src/application/retry-now.js';
import { permanent, sent } from '../../../src/domain/delivery.js';
import type { DomainEvent } from '../../../src/domain/events.js';
import { anAddress } from '../../support/builders.js';
import { RecordingLogger, sequentialIds } from '../../support/fakes.js';

export const MAIL_FROM = anAddress('Email Example <noreply@example.com>');

/**
 * A provider that refuses, for good, every email with a recipient whose address holds
 * "refuse", and takes every other one.
 */
export const refusingSender = (): EmailSender & { readonly sent: string[] } => {
  const taken: string[] = [];
  return {
    name: 'test',
    sent: taken,
    send: (request) => async () => {
      if ([...request.to, ...(request.cc ?? [])].some((a) => a.includes('refuse'))) {
        return permanent('550 5.1.1 no such user');
      }
      taken.push(request.id);
      return sent(`<${request.id}@provider.test>`);
    },
  };
};

export interface EmailPageAppOptions {
  /** Default: the open policy of `email dev` on loopback. */
  readonly deps?: Partial<HttpDeps>;
  /** A worker takes the tasks and sends with this; without it, the tasks stay queued. */
  readonly sender?: EmailSender;
  readonly clock?: Clock;
}

export interface EmailPageApp {
  readonly url: string;
  readonly emails: InMemoryEmailLog;
  readonly queue: InMemoryEmailQueue;
  readonly files: InMemoryAttachmentStore;
  readonly suppressions: InMemorySuppressionList;
  readonly scheduled: InMemoryScheduledEmails;
  readonly log: RecordingLogger;
  readonly requestEmail: RequestEmail;
  /** What a worker does: writes `event` to the email log, then announces it on the bus. */
  change(event: DomainEvent): Promise<void>;
  /** Releases the scheduled emails that are due, as the poller does. */
  release(): Promise<void>;
  close(): Promise<void>;
}

export async function startEmailPageApp(options: EmailPageAppOptions = {}): Promise<EmailPageApp> {
  const clock = options.clock ?? systemClock;
  const log = new RecordingLogger();
  const emails = new InMemoryEmailLog();
  const bus = new InMemoryDeliveryEvents(log);
  const idempotency = new InMemoryIdempotencyStore();
  const files = new InMemoryAttachmentStore(emails, clock);
  const scheduled = new InMemoryScheduledEmails();
  const suppressions = new InMemorySuppressionList();
  const queue = new InMemoryEmailQueue({ concurrency: 4 });
  const ids = sequentialIds();
  const requestEmail = new RequestEmail(queue, emails, bus, idempotency, ids, clock, log, {
    allowedFromDomains: ['example.com'],
    attachments: files,
    scheduled,
    suppressions,
  });
  const messages: StoredMessages = {
    request: (id) => emails.request(id),
    attachment: (digest) => files.get(digest),
    defaultFrom: MAIL_FROM,
  };
  const rawMessage: RawMessage = (id) =>
    pipe(
      emails.request(id),
      TE.mapLeft((e) => e.reason),
      TE.flatMap(
        O.match(
          () => TE.right(O.none),
          (request) =>
            pipe(
              composeMessage(files, request, MAIL_FROM),
              TE.mapLeft(() => 'the message could not be composed'),
              TE.map(O.some),
            ),
        ),
      ),
    );
  if (options.sender !== undefined) {
    const deliver = new DeliverEmail(
      options.sender,
      emails,
      bus,
      new InMemoryDeliveryLedger(),
      { maxAttempts: 3, delaysMs: [60_000] },
      clock,
      log,
      { holder: 'test-worker', suppressions },
    );
    await queue.consume((task) => deliver.execute(task)());
  }
  const deps: HttpDeps = {
    requestEmail,
    cancelEmail: new CancelEmail(scheduled, emails, bus, clock, log),
    retryNow: new RetryNow(queue, emails, bus, clock, log),
    resendEmail: new ResendEmail(requestEmail, emails, files, idempotency, bus, ids, clock, log),
    emails,
    messages,
    rawMessage,
    watch: (id, onChange) =>
      bus.subscribe(
        async (event) => {
          if (event.id === id) onChange();
        },
        { remote: true },
      ),
    readiness: () => true,
    csrfSecret: Buffer.from('test-secret-test-secret-test-sec'),
    log,
    ...options.deps,
  };
  const server = createServer(createHttpApp(deps).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const record = recordAndAnnounce(emails, bus);
  const releaser = new ReleaseScheduled(scheduled, emails, queue, bus, clock, log);
  return {
    url: `http://127.0.0.1:${port}`,
    emails,
    queue,
    files,
    suppressions,
    scheduled,
    log,
    requestEmail,
    async change(event) {
      const done = await record(event)();
      if (E.isLeft(done)) throw new Error(done.left.reason);
    },
    async release() {
      await releaser.execute()();
    },
    async close() {
      await queue.stop(0);
      queue.close();
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}

/** Accepts `input` as `POST /emails` would, and answers the new email's id. */
export async function accept(app: EmailPageApp, input: object): Promise<string> {
  const result = await app.requestEmail.execute(input)();
  if (E.isLeft(result)) throw new Error(`not accepted: ${JSON.stringify(result.left)}`);
  return result.right.id;
}

/** A page as a visitor got it: status, headers and text. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** The hidden fields of the forms in `html`, by name. */
export function hiddenFields(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    fields[match[1]!] = match[2]!;
  }
  return fields;
}

/**
 * A browser as far as cookies and redirects go: it keeps what the server sets, sends it back,
 * and follows no redirect (the test looks at each).
 */
export class Visitor {
  private readonly jar = new Map<string, string>();
  constructor(
    private readonly url: string,
    private readonly headers: Record<string, string> = {},
  ) {}

  get cookie(): string {
    return [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  async get(path: string): Promise<Answer> {
    return this.keep(
      await fetch(`${this.url}${path}`, {
        redirect: 'manual',
        headers: { accept: 'text/html', ...this.headers, cookie: this.cookie },
      }),
    );
  }

  async post(path: string, fields: Record<string, string>): Promise<Answer> {
    return this.keep(
      await fetch(`${this.url}${path}`, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          accept: 'text/html',
          'content-type': 'application/x-www-form-urlencoded',
          ...this.headers,
          cookie: this.cookie,
        },
        body: new URLSearchParams(fields).toString(),
      }),
    );
  }

  /** Opens the page at `path` and posts its form with its hidden fields, as a person would. */
  async confirm(path: string): Promise<Answer> {
    const page = await this.get(path);
    if (page.status !== 200) throw new Error(`${path} answered ${page.status}: ${page.text}`);
    return this.post(path, hiddenFields(page.text));
  }

  private async keep(res: Response): Promise<Answer> {
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const expired = attributes.some((a) => /^\s*(expires=.*1970|max-age=0)/i.test(a));
      if (expired || pair.slice(at + 1) === '') this.jar.delete(name);
      else this.jar.set(name, pair.slice(at + 1));
    }
    return { status: res.status, headers: res.headers, text: await res.text() };
  }
}
