import {
  InMemoryEmailStatusStore,
  InMemoryIdempotencyStore,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as E from 'fp-ts/lib/Either.js';
import type { Task } from 'fp-ts/lib/Task.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { DeliveryEvents } from '../../../src/application/ports/delivery-events.js';
import type { EmailQueue, QueueUnavailable } from '../../../src/application/ports/email-queue.js';
import { queueUnavailable } from '../../../src/application/ports/email-queue.js';
import type { Clock, IdGenerator, Logger } from '../../../src/application/ports/system.js';
import { ProjectEmailStatus } from '../../../src/application/project-email-status.js';
import { RequestEmail } from '../../../src/application/request-email.js';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import { createHttpApp } from '../../../src/adapters/http/app.js';
import type { EmailId, EmailRequest } from '../../../src/domain/email-request.js';
import type { DomainEvent } from '../../../src/domain/events.js';

/** Holds what was published; `down` makes it answer as a broker that did not confirm. */
export class RecordingQueue implements EmailQueue {
  readonly published: EmailRequest[] = [];
  down = false;
  publish(request: EmailRequest): TE.TaskEither<QueueUnavailable, void> {
    return async () => {
      if (this.down) return E.left(queueUnavailable('broker did not confirm'));
      this.published.push(request);
      return E.right(undefined);
    };
  }
}

/** Records each event and feeds it to the status projection, as the events consumer would. */
export class RecordingEvents implements DeliveryEvents {
  readonly events: DomainEvent[] = [];
  constructor(private readonly projection: ProjectEmailStatus) {}
  publish(event: DomainEvent): Task<void> {
    return async () => {
      this.events.push(event);
      await this.projection.apply(event)();
    };
  }
}

export interface LogEntry {
  readonly level: 'info' | 'warn' | 'error';
  readonly fields: object;
  readonly message: string;
}

export class RecordingLog implements Logger {
  readonly entries: LogEntry[] = [];
  info(fields: object, message: string): void {
    this.entries.push({ level: 'info', fields, message });
  }
  warn(fields: object, message: string): void {
    this.entries.push({ level: 'warn', fields, message });
  }
  error(fields: object, message: string): void {
    this.entries.push({ level: 'error', fields, message });
  }
  errors(): LogEntry[] {
    return this.entries.filter((e) => e.level === 'error');
  }
}

const sequentialIds = (): IdGenerator => {
  let n = 0;
  return { next: () => `email-${String(++n).padStart(8, '0')}` as EmailId };
};

const fixedClock: Clock = {
  now: () => new Date('2030-01-02T03:04:05.000Z'),
  monotonicMs: () => 0,
};

export interface Harness {
  readonly url: string;
  readonly queue: RecordingQueue;
  readonly events: RecordingEvents;
  readonly statuses: InMemoryEmailStatusStore;
  readonly log: RecordingLog;
  readonly readiness: { ready: boolean };
  close(): Promise<void>;
}

/** The app on a real HTTP server on port 0, wired to the real RequestEmail over fakes. */
export async function startHttp(overrides: Partial<HttpDeps> = {}): Promise<Harness> {
  const queue = new RecordingQueue();
  const statuses = new InMemoryEmailStatusStore();
  const events = new RecordingEvents(new ProjectEmailStatus(statuses));
  const log = new RecordingLog();
  const readiness = { ready: true };
  const requestEmail = new RequestEmail(
    queue,
    events,
    new InMemoryIdempotencyStore(),
    sequentialIds(),
    fixedClock,
  );
  const app = createHttpApp({
    requestEmail,
    statuses,
    readiness: () => readiness.ready,
    csrfSecret: Buffer.from('test-secret-test-secret-test-sec'),
    log,
    statusWaitMs: 0,
    ...overrides,
  });
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    queue,
    events,
    statuses,
    log,
    readiness,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const published = (h: Harness): string[] => h.queue.published.map((r) => r.id);

export interface OpenForm {
  readonly cookie: string;
  readonly token: string;
  readonly nonce: string;
  readonly html: string;
}

const hidden = (page: string, name: string): string => {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(page);
  if (!match?.[1]) throw new Error(`no ${name} in the form`);
  return match[1];
};

/** What a browser does first: GET the form and keep its cookie, token and nonce. */
export async function openForm(h: Harness): Promise<OpenForm> {
  const res = await fetch(`${h.url}/`);
  const html = await res.text();
  const cookie = (res.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
  return { cookie, token: hidden(html, '_csrf'), nonce: hidden(html, '_nonce'), html };
}

export function postForm(
  h: Harness,
  fields: Record<string, string>,
  cookie?: string,
): Promise<Response> {
  return fetch(`${h.url}/`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(cookie !== undefined ? { cookie } : {}),
    },
    body: new URLSearchParams(fields).toString(),
  });
}

export function postJson(
  h: Harness,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${h.url}/emails`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}
