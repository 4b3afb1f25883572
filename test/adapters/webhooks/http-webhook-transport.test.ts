// HttpWebhookTransport against a real HTTP server on 127.0.0.1: what a receiver gets, and how
// each kind of answer (or none) comes back to the caller.
import { expect } from 'chai';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpWebhookTransport } from '../../../src/adapters/webhooks/http-webhook-transport.js';
import type {
  WebhookRequest,
  WebhookResponse,
} from '../../../src/application/ports/webhook-transport.js';

interface Received {
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

type Answer = (req: IncomingMessage, res: ServerResponse) => void;

interface Receiver {
  readonly url: string;
  readonly port: number;
  /** Every request in full, in the order they came. */
  readonly received: Received[];
  /** How the next requests are answered (200 with no body until set). */
  answer: Answer;
  close(): Promise<void>;
}

/**
 * A webhook receiver on a free port of 127.0.0.1 that records each request (read in full before
 * `answer` runs), so a test can check the exact bytes that arrived and count the requests.
 */
async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const receiver = {
    received,
    answer: ((_req, res) => res.end()) as Answer,
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({
        method: req.method,
        path: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      receiver.answer(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${port}/hooks/email`,
    port,
    // Connections the transport keeps alive, or a request left unanswered, would hold close().
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** A port nothing listens on: one the system just gave out, and that we closed again. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A request as DeliverWebhook makes one: a signed JSON body, with a generous timeout by default. */
const aWebhookRequest = (url: string, overrides: Partial<WebhookRequest> = {}): WebhookRequest => ({
  url,
  headers: {
    'content-type': 'application/json',
    'webhook-id': 'wd_0123456789abcdef',
    'webhook-timestamp': '1795860000',
    'webhook-signature': 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=',
    'user-agent': 'queued-email-webhooks',
  },
  body: JSON.stringify({
    type: 'email.sent',
    timestamp: '2026-11-28T10:00:00.000Z',
    data: { id: 'email-1', subject: 'Grüße — ünïcödé ✓', to: ['ada@example.org'] },
  }),
  timeoutMs: 5_000,
  ...overrides,
});

/** The error of a NoAnswer; fails the test on an Answered. */
const noAnswerError = (response: WebhookResponse): string => {
  if (response._tag !== 'NoAnswer') {
    throw new Error(`expected NoAnswer, got ${JSON.stringify(response)}`);
  }
  return response.error;
};

describe('HttpWebhookTransport (against a real HTTP server on 127.0.0.1)', function () {
  this.timeout(20_000);
  const NOW = Date.parse('2026-11-28T10:00:00.000Z');
  let transport: HttpWebhookTransport;
  let receiver: Receiver;

  beforeEach(async () => {
    // A fixed clock: an HTTP-date Retry-After then reads as an exact wait.
    transport = new HttpWebhookTransport(() => NOW);
    receiver = await startReceiver();
  });
  afterEach(async () => {
    transport.close();
    await receiver.close();
  });

  it('POSTs the exact body and headers it is given to the URL', async () => {
    const request = aWebhookRequest(receiver.url);
    await transport.post(request);
    expect(receiver.received).to.have.length(1);
    const [got] = receiver.received;
    expect(got!.method).to.equal('POST');
    expect(got!.path).to.equal('/hooks/email');
    expect(got!.body).to.equal(request.body);
    expect(got!.headers).to.include(request.headers);
    expect(got!.headers['content-length']).to.equal(String(Buffer.byteLength(request.body)));
  });

  it('answers Answered with the status and a duration for a 200', async () => {
    receiver.answer = (_req, res) => res.writeHead(200).end('ok');
    const response = await transport.post(aWebhookRequest(receiver.url));
    expect(response).to.have.property('_tag', 'Answered');
    expect(response).to.have.property('statusCode', 200);
    expect(response).not.to.have.property('retryAfterMs');
    expect(response.durationMs).to.be.a('number').and.at.least(0);
  });

  it('reads a Retry-After in seconds as milliseconds', async () => {
    receiver.answer = (_req, res) => res.writeHead(500, { 'Retry-After': '7' }).end();
    const response = await transport.post(aWebhookRequest(receiver.url));
    expect(response).to.deep.include({ _tag: 'Answered', statusCode: 500, retryAfterMs: 7_000 });
  });

  it('reads a Retry-After HTTP-date as the milliseconds from now until then', async () => {
    const inTwoMinutes = new Date(NOW + 120_000).toUTCString();
    receiver.answer = (_req, res) => res.writeHead(503, { 'Retry-After': inTwoMinutes }).end();
    const response = await transport.post(aWebhookRequest(receiver.url));
    expect(response).to.deep.include({ _tag: 'Answered', statusCode: 503, retryAfterMs: 120_000 });
  });

  it('leaves out a Retry-After it cannot read', async () => {
    receiver.answer = (_req, res) => res.writeHead(429, { 'Retry-After': 'soon-ish' }).end();
    const response = await transport.post(aWebhookRequest(receiver.url));
    expect(response).to.deep.include({ _tag: 'Answered', statusCode: 429 });
    expect(response).not.to.have.property('retryAfterMs');
  });

  it('does not follow a redirect: the 302 is the answer, and the server sees one request', async () => {
    receiver.answer = (req, res) => {
      if (req.url === '/hooks/email') {
        res.writeHead(302, { Location: `http://127.0.0.1:${receiver.port}/elsewhere` }).end();
      } else res.writeHead(200).end();
    };
    const response = await transport.post(aWebhookRequest(receiver.url));
    expect(response).to.deep.include({ _tag: 'Answered', statusCode: 302 });
    // A followed redirect would have been requested before post() resolved.
    expect(receiver.received.map((r) => r.path)).to.deep.equal(['/hooks/email']);
  });

  it('answers NoAnswer after timeoutMs from a server that never answers', async () => {
    receiver.answer = () => undefined; // holds the request open
    const response = await transport.post(aWebhookRequest(receiver.url, { timeoutMs: 300 }));
    expect(response).to.deep.equal({
      _tag: 'NoAnswer',
      error: 'no answer within 300 ms',
      durationMs: response.durationMs,
    });
    // Timers may fire a millisecond early by rounding; never much before the timeout.
    expect(response.durationMs).to.be.at.least(290);
  });

  it('says a timeout of whole seconds in seconds', async () => {
    receiver.answer = () => undefined;
    const response = await transport.post(aWebhookRequest(receiver.url, { timeoutMs: 1_000 }));
    expect(noAnswerError(response)).to.equal('no answer within 1 s');
  });

  it('answers NoAnswer "connection refused" for a port nothing listens on', async () => {
    const port = await closedPort();
    const response = await transport.post(aWebhookRequest(`http://127.0.0.1:${port}/hooks`));
    expect(noAnswerError(response)).to.equal('connection refused');
    expect(response.durationMs).to.be.at.least(0);
  });

  it('answers NoAnswer "connection reset" when the server drops the connection unanswered', async () => {
    receiver.answer = (req) => req.socket.destroy();
    const response = await transport.post(aWebhookRequest(receiver.url));
    expect(noAnswerError(response)).to.equal('connection reset');
  });

  it('still answers Answered when the answer is larger than the 64 KiB it reads', async () => {
    const big = 'x'.repeat(256 * 1024);
    receiver.answer = (_req, res) =>
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': big.length }).end(big);
    const response = await transport.post(aWebhookRequest(receiver.url));
    expect(response).to.deep.include({ _tag: 'Answered', statusCode: 200 });
    // And the transport is still usable after dropping that socket.
    receiver.answer = (_req, res) => res.writeHead(204).end();
    expect(await transport.post(aWebhookRequest(receiver.url))).to.deep.include({
      _tag: 'Answered',
      statusCode: 204,
    });
  });

  it('never puts the URL, host or port in an error text', async () => {
    const port = await closedPort();
    receiver.answer = (req) => req.socket.destroy();
    const refused = await transport.post(aWebhookRequest(`http://127.0.0.1:${port}/secret-path`));
    const reset = await transport.post(aWebhookRequest(`${receiver.url}?token=secret-query`));
    receiver.answer = () => undefined;
    const timedOut = await transport.post(aWebhookRequest(receiver.url, { timeoutMs: 200 }));
    const errors = [refused, reset, timedOut].map(noAnswerError);
    for (const error of errors) {
      expect(error).not.to.match(/127\.0\.0\.1|http|secret|hooks/);
      expect(error).not.to.include(String(port));
      expect(error).not.to.include(String(receiver.port));
    }
  });
});
