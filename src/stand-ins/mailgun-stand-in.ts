/**
 * A local Mailgun: the Messages API, scriptable faults, and Mailgun's signed event webhooks.
 *
 * In-process: `startMailgunStandIn(options)` → `MailgunStandIn` (below). Options: `port`, `host`,
 * `domain`, `apiKey`; `webhookUrl` (where events are POSTed), `webhookSigningKey` (the HMAC key;
 * a random one when not given, readable as `standIn.webhookSigningKey`), `autoEvents:
 * 'delivered'` (post `delivered` for each recipient of each accepted message, after the 200, with
 * up to `webhookRetry.tries` tries `webhookRetry.delayMs` apart: 3 and 1 s), and
 * `standIn.sendEvent({ emailId | messageId, recipient, event, severity?, reason?, code? })` →
 * the receiver's `{ status, body }` (rejects: unknown message or recipient, no webhook URL,
 * receiver unreachable). Every POST is recorded in `standIn.webhookDeliveries`.
 *
 * Over HTTP (no auth), for another process:
 * - `POST /v3/:domain/messages`: Mailgun's Messages API.
 * - `POST /__stand-in/faults`, `GET|DELETE /__stand-in/messages`: script faults, read the record.
 * - `POST /__stand-in/events` `{"email_id" | "message_id", "recipient", "event", "severity"?,
 *   "reason"?, "code"?}`: posts one event (no retries) and answers the receiver's status and
 *   body; 400 for a bad body, 404 for an unknown message or recipient, 409 without a webhook
 *   URL, 502 when the receiver cannot be reached.
 * - `GET|DELETE /__stand-in/webhook-deliveries`: every attempt (url, event, recipient, status, at…).
 *
 * As a process: `PORT`, `HOST`, `MAILGUN_DOMAIN`, `MAILGUN_API_KEY`,
 * `MAILGUN_STANDIN_WEBHOOK_URL`, `MAILGUN_STANDIN_WEBHOOK_SIGNING_KEY` (required with the URL),
 * `MAILGUN_STANDIN_AUTO_EVENTS=delivered`; it prints the base URL on stdout.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import type { ReceivedMessage } from './mailgun-form.js';
import { parseMessage, readFields } from './mailgun-form.js';
import type { Fault } from './stand-in-faults.js';
import { FaultScript, faultAnswer, parseFaultScript } from './stand-in-faults.js';
import type { EventScript, WebhookAnswer, WebhookDelivery } from './mailgun-webhooks.js';
import {
  WebhookPoster,
  eventData,
  findTarget,
  newSigningKey,
  parseEventScript,
  recipientsOf,
  whyUnreachable,
} from './mailgun-webhooks.js';

export type { ReceivedMessage } from './mailgun-form.js';
export type { Fault } from './stand-in-faults.js';
export type {
  EventScript,
  MailgunEventData,
  MailgunWebhookPayload,
  WebhookAnswer,
  WebhookDelivery,
} from './mailgun-webhooks.js';

export interface MailgunStandIn {
  /** `http://127.0.0.1:PORT/v3/DOMAIN`: what MAILGUN_API_BASE is set to. */
  readonly baseUrl: string;
  readonly messages: ReceivedMessage[];
  /** Queues faults, each consumed by one `/messages` request, in order. */
  script(...faults: Fault[]): void;
  /** The fault for every request once the queue is empty; undefined to behave again. */
  scriptDefault(fault: Fault | undefined): void;
  /** Where events go; undefined: none are posted. */
  readonly webhookUrl: string | undefined;
  /** The key every event is signed with, given or generated. */
  readonly webhookSigningKey: string;
  /** Every POST to the webhook URL, retries included, in the order they were answered. */
  readonly webhookDeliveries: readonly WebhookDelivery[];
  /** Posts one event for a recorded message, once; resolves with the receiver's answer. */
  sendEvent(script: EventScript): Promise<WebhookAnswer>;
  /** Forgets messages, faults and webhook deliveries. */
  clear(): void;
  /** Stops auto-event retries, then the server. */
  close(): Promise<void>;
}

export interface StandInOptions {
  readonly port?: number;
  readonly host?: string;
  readonly domain?: string;
  readonly apiKey?: string;
  readonly webhookUrl?: string;
  /** Default: a fresh random key. */
  readonly webhookSigningKey?: string;
  /** `delivered`: post it for every recipient of every accepted message. Needs `webhookUrl`. */
  readonly autoEvents?: 'delivered';
  /** For auto events: tries per event, and the pause between two (default 3 tries, 1 s). */
  readonly webhookRetry?: { readonly tries: number; readonly delayMs: number };
}

const MAX_BODY_BYTES = 25 * 1024 * 1024; // Mailgun's message size limit

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function plain(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
}

/**
 * The body, or undefined past 25 MB. The rest is still read (and dropped), so the client hears
 * the answer instead of a reset while it is still writing.
 */
async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size <= MAX_BODY_BYTES) chunks.push(buf);
  }
  return size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks);
}

// What the nginx in front of Mailgun answers to a body over its limit, before Mailgun sees it
// (mailgun/mailgun-js-boland#67; mailgun/documentation#325 asks for the 413 to be documented).
const TOO_LARGE_PAGE =
  '<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n' +
  '<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n' +
  '</body>\r\n</html>\r\n';

/** Mailgun's id shape: `<20261128103000.42.1f2e3d4c@domain>`. */
const messageId = (domain: string, n: number): string =>
  `<${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}.${n}.${randomBytes(4).toString('hex')}@${domain}>`;

/**
 * A local Mailgun for tests and `email worker` runs without an account: the Messages API's
 * auth, encodings, validation wording and status codes, plus scriptable faults. Over HTTP,
 * `/__stand-in/faults` (POST), `/__stand-in/messages` (GET, DELETE) let another process script it.
 */
export async function startMailgunStandIn(options: StandInOptions = {}): Promise<MailgunStandIn> {
  const domain = options.domain ?? 'stand-in.example.org';
  const apiKey = options.apiKey ?? 'key-stand-in';
  const expected = `Basic ${Buffer.from(`api:${apiKey}`).toString('base64')}`;
  const messages: ReceivedMessage[] = [];
  const faults = new FaultScript();
  const sockets = new Set<Socket>();
  let count = 0;
  /** close() began: a send still waiting out its latency is neither answered nor recorded. */
  let closed = false;
  const signingKey = options.webhookSigningKey ?? newSigningKey();
  const poster = options.webhookUrl
    ? new WebhookPoster(
        validUrl(options.webhookUrl),
        signingKey,
        options.webhookRetry ?? { tries: 3, delayMs: 1000 },
      )
    : undefined;
  if (options.autoEvents !== undefined && poster === undefined) {
    throw new Error(`autoEvents '${options.autoEvents}' needs a webhookUrl`);
  }
  const noDeliveries: WebhookDelivery[] = [];
  const deliveries = poster?.deliveries ?? noDeliveries;

  /** The event ready to post, or why not (the status `POST /__stand-in/events` answers). */
  function prepare(script: EventScript) {
    const target = findTarget(messages, script);
    if ('status' in target) return target;
    if (poster === undefined) {
      return { status: 409 as const, message: 'no webhook URL: start the stand-in with one' };
    }
    return { poster, data: eventData(target.message, target.recipient, script) };
  }

  async function messagesRoute(req: IncomingMessage, res: ServerResponse, target: string) {
    const arrivedAtMs = Date.now();
    const body = await readBody(req);
    const fault = faults.next();
    // A provider's latency runs from the request's arrival, its own work inside it: the answer
    // is read and checked during the wait, not after it. (After it, 32 sends landing together
    // were each parsed in turn once their waits ended, and the last answer of a batch left
    // about 20 ms late.)
    const wait = fault?.latencyMs ? arrivedAtMs + fault.latencyMs - Date.now() : 0;
    const due = wait > 0 ? delay(wait) : undefined;
    const answer =
      (fault && faultAnswer(fault, req, domain)) ??
      (await messageAnswer(req, target, body, arrivedAtMs));
    await due;
    // Its socket is gone (close() destroyed it): Mailgun would not have taken it either.
    if (closed) return;
    answer(res);
  }

  /** How the stand-in answers `/messages` once its latency has passed (see messagesRoute). */
  async function messageAnswer(
    req: IncomingMessage,
    target: string,
    body: Buffer | undefined,
    arrivedAtMs: number,
  ): Promise<(res: ServerResponse) => void> {
    // The proxy refuses an oversized body before Mailgun checks anything.
    if (body === undefined) {
      return (res) => void res.writeHead(413, { 'content-type': 'text/html' }).end(TOO_LARGE_PAGE);
    }
    if (req.headers.authorization !== expected) return (res) => plain(res, 401, 'Forbidden');
    // Inferred from reported Mailgun answers: a valid key on a domain it does not hold.
    if (target !== domain) {
      return (res) => json(res, 404, { message: `Domain not found: ${target}` });
    }
    const contentType = req.headers['content-type'] ?? '';
    const form = await readFields(contentType, body).catch(() => undefined);
    const parsed = parseMessage(form?.fields ?? [], form?.files);
    if (!parsed.ok) return (res) => json(res, 400, { message: parsed.error });
    const requestHeaders = Object.fromEntries(
      Object.entries(req.headers).map(([k, v]) => [
        k,
        k === 'authorization' ? 'Basic ***' : Array.isArray(v) ? v.join(', ') : (v ?? ''),
      ]),
    );
    // Held, numbered and answered together: a message is in the record once it is answered,
    // even to a client that went away meanwhile (Mailgun keeps a message whose answer was lost,
    // which is how a worker comes to send an email twice).
    return (res) => {
      const id = messageId(domain, ++count);
      const message: ReceivedMessage = {
        id,
        domain,
        receivedAt: new Date().toISOString(),
        arrivedAtMs,
        encoding: /multipart/i.test(contentType) ? 'multipart' : 'urlencoded',
        requestHeaders,
        ...parsed.message,
      };
      messages.push(message);
      json(res, 200, { id, message: 'Queued. Thank you.' });
      // After the answer, in the background: a slow or failing receiver never delays the sender.
      if (options.autoEvents === 'delivered' && poster) {
        for (const recipient of recipientsOf(message)) {
          const script = { messageId: id, recipient, event: 'delivered' } as const;
          poster.postWithRetries(eventData(message, recipient, script));
        }
      }
    };
  }

  async function eventsRoute(req: IncomingMessage, res: ServerResponse) {
    const script = parseEventScript((await readBody(req))?.toString('utf8') ?? '');
    if ('status' in script) return json(res, script.status, { message: script.message });
    const ready = prepare(script);
    if ('status' in ready) return json(res, ready.status, { message: ready.message });
    let answer: WebhookAnswer;
    try {
      answer = await ready.poster.post(ready.data);
    } catch (error) {
      const message = `webhook receiver at ${ready.poster.url} unreachable: ${whyUnreachable(error)}`;
      return json(res, 502, { message });
    }
    const { status, body, contentType } = answer;
    res.writeHead(status, contentType ? { 'content-type': contentType } : {}).end(body);
  }

  async function controlRoute(req: IncomingMessage, res: ServerResponse, path: string) {
    if (path === '/__stand-in/messages' && req.method === 'GET') return json(res, 200, messages);
    if (path === '/__stand-in/messages' && req.method === 'DELETE') {
      messages.length = 0;
      return json(res, 200, { cleared: true });
    }
    if (path === '/__stand-in/faults' && req.method === 'POST') {
      const script = parseFaultScript((await readBody(req))?.toString('utf8') ?? '');
      if (typeof script === 'string') return json(res, 400, { message: script });
      faults.push(...script.queue);
      if (script.sticky !== undefined) faults.setDefault(script.sticky ?? undefined);
      return json(res, 200, { queued: faults.pending() });
    }
    if (path === '/__stand-in/events' && req.method === 'POST') return eventsRoute(req, res);
    if (path === '/__stand-in/webhook-deliveries' && req.method === 'GET') {
      return json(res, 200, deliveries);
    }
    if (path === '/__stand-in/webhook-deliveries' && req.method === 'DELETE') {
      deliveries.length = 0;
      return json(res, 200, { cleared: true });
    }
    plain(res, 404, '404 page not found');
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
    const route = /^\/v3\/([^/]+)\/messages\/?$/.exec(path);
    const handled =
      route && req.method === 'POST'
        ? messagesRoute(req, res, decodedDomain(route[1] ?? ''))
        : controlRoute(req, res, path);
    handled.catch((error: unknown) => {
      if (!res.headersSent) json(res, 500, { message: `stand-in error: ${String(error)}` });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    baseUrl: `http://${options.host ?? '127.0.0.1'}:${port}/v3/${domain}`,
    messages,
    script: (...list) => faults.push(...list),
    scriptDefault: (fault) => faults.setDefault(fault),
    webhookUrl: poster?.url,
    webhookSigningKey: signingKey,
    webhookDeliveries: deliveries,
    sendEvent: async (script) => {
      const ready = prepare(script);
      if ('status' in ready) throw new Error(`mailgun stand-in: ${ready.message}`);
      return ready.poster.post(ready.data);
    },
    clear: () => {
      messages.length = 0;
      deliveries.length = 0;
      faults.reset();
    },
    close: async () => {
      closed = true;
      await poster?.close();
      await new Promise<void>((resolve) => {
        // Hung requests and keep-alive sockets would hold close() open forever.
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
    },
  };
}

/**
 * The domain of a `/v3/{domain}/messages` path, percent-decoded; broken encoding (`%E0`) is kept
 * as it came, so that the request is answered as for any domain the stand-in does not hold (404)
 * rather than throwing in the request listener, which would end the process.
 */
function decodedDomain(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function validUrl(url: string): string {
  if (!URL.canParse(url)) throw new Error(`the webhook URL is not a URL: ${url}`);
  return url;
}

/** The webhook options from the environment, or the one line that says what to change. */
function webhookEnv(env: NodeJS.ProcessEnv): Partial<StandInOptions> | string {
  const url = env.MAILGUN_STANDIN_WEBHOOK_URL || undefined;
  const key = env.MAILGUN_STANDIN_WEBHOOK_SIGNING_KEY || undefined;
  const auto = env.MAILGUN_STANDIN_AUTO_EVENTS || 'none';
  // A generated key would have to be printed for the receiver to verify anything: ask for one.
  if (url && !key) {
    return 'MAILGUN_STANDIN_WEBHOOK_URL needs MAILGUN_STANDIN_WEBHOOK_SIGNING_KEY, the key your receiver verifies signatures with';
  }
  if (auto !== 'none' && auto !== 'delivered') {
    return `MAILGUN_STANDIN_AUTO_EVENTS must be delivered or none (got "${auto}")`;
  }
  if (auto === 'delivered' && !url) {
    return 'MAILGUN_STANDIN_AUTO_EVENTS=delivered needs MAILGUN_STANDIN_WEBHOOK_URL';
  }
  return {
    ...(url ? { webhookUrl: url } : {}),
    ...(key ? { webhookSigningKey: key } : {}),
    ...(auto === 'delivered' ? { autoEvents: auto } : {}),
  };
}

// Run on its own: `PORT=8090 MAILGUN_DOMAIN=… MAILGUN_API_KEY=… node dist/src/stand-ins/…`.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const env = process.env;
  const port = Number(env.PORT ?? 0);
  const webhooks = webhookEnv(env);
  if (typeof webhooks === 'string') {
    process.stderr.write(`mailgun stand-in: ${webhooks}\n`);
    process.exit(1);
  }
  const standIn = await startMailgunStandIn({
    port,
    ...(env.HOST ? { host: env.HOST } : {}),
    ...(env.MAILGUN_DOMAIN ? { domain: env.MAILGUN_DOMAIN } : {}),
    ...(env.MAILGUN_API_KEY ? { apiKey: env.MAILGUN_API_KEY } : {}),
    ...webhooks,
  }).catch((error: unknown) => {
    // A person started this by hand: one line that says what to change, not a stack trace.
    const code = error instanceof Error && 'code' in error ? String(error.code) : '';
    const why = code || (error instanceof Error ? error.message : String(error));
    process.stderr.write(
      code === 'EADDRINUSE'
        ? `mailgun stand-in: port ${port} is already in use; set PORT to another one (0 picks a free one)\n`
        : `mailgun stand-in: could not start (${why})\n`,
    );
    process.exit(1);
  });
  console.log(standIn.baseUrl);
  const stop = (): void => void standIn.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
