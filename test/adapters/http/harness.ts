import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import {
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { InMemoryDeliveryEvents } from '../../../src/adapters/memory/in-memory-delivery-events.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { recordAndAnnounce } from '../../../src/application/email-history.js';
import { RequestEmail } from '../../../src/application/request-email.js';
import type { DomainEvent } from '../../../src/domain/events.js';
import { RecordingLogger, RecordingQueue, fixedClock, sequentialIds } from '../../support/fakes.js';
import type { HttpDeps } from '../../../src/adapters/http/app.js';
import { createHttpApp } from '../../../src/adapters/http/app.js';

const clock = fixedClock('2030-01-02T03:04:05.000Z');

export interface Harness {
  readonly url: string;
  readonly queue: RecordingQueue;
  readonly emails: InMemoryEmailLog;
  readonly bus: InMemoryDeliveryEvents;
  /** What a worker does: writes `event` to the email log, then announces it on the bus. */
  change(event: DomainEvent): Promise<void>;
  readonly log: RecordingLogger;
  readonly readiness: { ready: boolean };
  close(): Promise<void>;
}

/** The parts of a test app: what `createHttpApp` takes, and the fakes behind it to look at. */
export interface TestApp {
  readonly deps: HttpDeps;
  readonly queue: RecordingQueue;
  readonly emails: InMemoryEmailLog;
  readonly bus: InMemoryDeliveryEvents;
  readonly log: RecordingLogger;
  readonly readiness: { ready: boolean };
  change(event: DomainEvent): Promise<void>;
}

/** The real RequestEmail over fakes, wired as the composition roots wire the real thing. */
export function testApp(overrides: Partial<HttpDeps> = {}): TestApp {
  const queue = new RecordingQueue();
  const emails = new InMemoryEmailLog();
  const log = new RecordingLogger();
  const bus = new InMemoryDeliveryEvents(log);
  const readiness = { ready: true };
  const requestEmail = new RequestEmail(
    queue,
    emails,
    bus,
    new InMemoryIdempotencyStore(),
    sequentialIds(),
    clock,
    log,
  );
  const record = recordAndAnnounce(emails, bus);
  const deps: HttpDeps = {
    requestEmail,
    emails,
    watch: (id, onChange) =>
      bus.subscribe(
        async (event) => {
          if (event.id === id) onChange();
        },
        { remote: true },
      ),
    watchAll: (onChange) => bus.subscribe(async (event) => onChange(event.id), { remote: true }),
    readiness: () => readiness.ready,
    csrfSecret: Buffer.from('test-secret-test-secret-test-sec'),
    log,
    ...overrides,
  };
  return {
    deps,
    queue,
    emails,
    bus,
    log,
    readiness,
    async change(event) {
      const done = await record(event)();
      if (E.isLeft(done)) throw new Error(done.left.reason);
    },
  };
}

/** The app on a real HTTP server on port 0, wired to the real RequestEmail over fakes. */
export async function startHttp(overrides: Partial<HttpDeps> = {}): Promise<Harness> {
  const { deps, ...parts } = testApp(overrides);
  const server = createServer(createHttpApp(deps).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    ...parts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Gives each test of the calling `describe` a server of its own (`startHttp`), handed to `use`
 * before the test; after it, checks that the server still answers `/healthz`, whatever the test
 * sent, and (unless `allowErrors`) that it logged no error, then closes it.
 */
export function eachHttp(
  use: (h: Harness) => void,
  options: { readonly allowErrors?: boolean } = {},
): void {
  let current: Harness | undefined;
  beforeEach(async () => {
    current = await startHttp();
    use(current);
  });
  afterEach(async () => {
    const h = current;
    current = undefined;
    if (h === undefined) return;
    try {
      expect((await fetch(`${h.url}/healthz`)).status).to.equal(200);
      if (options.allowErrors !== true) expect(h.log.errors()).to.deep.equal([]);
    } finally {
      await h.close();
    }
  });
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
