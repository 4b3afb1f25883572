import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import type { ReceivedMessage } from './mailgun-form.js';
import { parseMessage, readFields } from './mailgun-form.js';
import type { Fault } from './stand-in-faults.js';
import { FaultScript, parseFaultScript, replyWithFault } from './stand-in-faults.js';

export type { ReceivedMessage } from './mailgun-form.js';
export type { Fault } from './stand-in-faults.js';

export interface MailgunStandIn {
  /** `http://127.0.0.1:PORT/v3/DOMAIN`: what MAILGUN_API_BASE is set to. */
  readonly baseUrl: string;
  readonly messages: ReceivedMessage[];
  /** Queues faults, each consumed by one `/messages` request, in order. */
  script(...faults: Fault[]): void;
  /** The fault for every request once the queue is empty; undefined to behave again. */
  scriptDefault(fault: Fault | undefined): void;
  clear(): void;
  close(): Promise<void>;
}

export interface StandInOptions {
  readonly port?: number;
  readonly host?: string;
  readonly domain?: string;
  readonly apiKey?: string;
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

  async function messagesRoute(req: IncomingMessage, res: ServerResponse, target: string) {
    const body = await readBody(req);
    const fault = faults.next();
    if (fault && (await replyWithFault(fault, req, res, domain))) return;
    // The proxy refuses an oversized body before Mailgun checks anything.
    if (body === undefined) {
      return void res.writeHead(413, { 'content-type': 'text/html' }).end(TOO_LARGE_PAGE);
    }
    if (req.headers.authorization !== expected) return plain(res, 401, 'Forbidden');
    // Inferred from reported Mailgun answers: a valid key on a domain it does not hold.
    if (target !== domain) return json(res, 404, { message: `Domain not found: ${target}` });
    const contentType = req.headers['content-type'] ?? '';
    const form = await readFields(contentType, body).catch(() => undefined);
    const parsed = parseMessage(form?.fields ?? [], form?.files);
    if (!parsed.ok) return json(res, 400, { message: parsed.error });
    const id = messageId(domain, ++count);
    messages.push({
      id,
      domain,
      receivedAt: new Date().toISOString(),
      encoding: /multipart/i.test(contentType) ? 'multipart' : 'urlencoded',
      requestHeaders: Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [
          k,
          k === 'authorization' ? 'Basic ***' : Array.isArray(v) ? v.join(', ') : (v ?? ''),
        ]),
      ),
      ...parsed.message,
    });
    json(res, 200, { id, message: 'Queued. Thank you.' });
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
    plain(res, 404, '404 page not found');
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
    const route = /^\/v3\/([^/]+)\/messages\/?$/.exec(path);
    const handled =
      route && req.method === 'POST'
        ? messagesRoute(req, res, decodeURIComponent(route[1] ?? ''))
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
    clear: () => {
      messages.length = 0;
      faults.reset();
    },
    close: () =>
      new Promise<void>((resolve) => {
        // Hung requests and keep-alive sockets would hold close() open forever.
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

// Run on its own: `PORT=8090 MAILGUN_DOMAIN=… MAILGUN_API_KEY=… node dist/src/stand-ins/…`.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const env = process.env;
  const port = Number(env.PORT ?? 0);
  const standIn = await startMailgunStandIn({
    port,
    ...(env.HOST ? { host: env.HOST } : {}),
    ...(env.MAILGUN_DOMAIN ? { domain: env.MAILGUN_DOMAIN } : {}),
    ...(env.MAILGUN_API_KEY ? { apiKey: env.MAILGUN_API_KEY } : {}),
  }).catch((error: unknown) => {
    // A person started this by hand: one line that says what to change, not a stack trace.
    const code = error instanceof Error && 'code' in error ? String(error.code) : '';
    process.stderr.write(
      code === 'EADDRINUSE'
        ? `mailgun stand-in: port ${port} is already in use; set PORT to another one (0 picks a free one)\n`
        : `mailgun stand-in: could not start (${code || String(error)})\n`,
    );
    process.exit(1);
  });
  console.log(standIn.baseUrl);
  const stop = (): void => void standIn.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
