// The bare baselines: the least code that does the same job as one of our roles, each run as a
// child process of its own (`node dist/bench/baselines.js MODE …`) like the role it is compared
// with, so that it gets its own event loop and its own RSS. Each prints one JSON line once ready.
//
//   http URL?QUEUE?      parse the JSON body, answer 202; with URL and QUEUE, also publish the
//                        task to QUEUE on a confirm channel and answer only once confirmed
//   koa URL QUEUE DB?    Koa + koa-body: parse the JSON body; with DB (a postgres:// URL), INSERT
//                        one row through a pg.Pool; then the same confirmed publish; answer 202
//   consume URL QUEUE DIR PREFETCH
//                        ack each message after writing it to DIR/<messageId>.eml, as durably as
//                        the outbox does (temp file, fsync, rename, fsync of the directory)
//   mailgun-consume URL QUEUE DB BASE KEY FROM TO PREFETCH
//                        per message: POST the Mailgun form to BASE/messages with node-fetch
//                        (keep-alive agent, as our sender), UPDATE its row of DB's
//                        bare_deliveries, ack
//   mailgun KEY DOMAIN   host the project's Mailgun stand-in; answers 'count', 'clear' and
//                        {latencyMs} (every later send answered that late) over IPC
import { connect } from 'amqplib';
import type { ConfirmChannel } from 'amqplib';
import Koa from 'koa';
import { koaBody } from 'koa-body';
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename } from 'node:fs/promises';
import { Agent, createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import fetch from 'node-fetch';
import pg from 'pg';
import { startMailgunStandIn } from '../src/stand-ins/mailgun-stand-in.js';
import { mailgunAuthorization, mailgunForm } from './bare.js';

const announce = (fields: object): void => void process.stdout.write(`${JSON.stringify(fields)}\n`);

const onStop = (close: () => Promise<unknown>): void => {
  const stop = (): void => void close().finally(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
};

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The broker's confirm and nothing else: no timeout, no return tracking, no reconnect. */
const confirmed = (channel: ConfirmChannel, queue: string, body: Buffer, id: string) =>
  new Promise<void>((resolve, reject) => {
    channel.sendToQueue(
      queue,
      body,
      { persistent: true, mandatory: true, messageId: id, contentType: 'application/json' },
      (err: unknown) => (err ? reject(new Error(String(err))) : resolve()),
    );
  });

async function bareHttp(amqpUrl?: string, queue?: string): Promise<void> {
  const model = amqpUrl ? await connect(amqpUrl) : undefined;
  const channel = await model?.createConfirmChannel();
  const server = createServer((req, res) => {
    readBody(req)
      .then(async (raw) => {
        const draft = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
        const id = randomBytes(16).toString('base64url');
        if (channel && queue) {
          const request = { ...draft, id, requestedAt: new Date().toISOString() };
          await confirmed(channel, queue, Buffer.from(JSON.stringify({ v: 1, request })), id);
        }
        res
          .writeHead(202, { 'content-type': 'application/json', location: `/emails/${id}` })
          .end(JSON.stringify({ id, status: 'queued' }));
      })
      .catch(() => res.writeHead(400).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  announce({ url: `http://127.0.0.1:${port}/emails` });
  onStop(async () => {
    server.closeAllConnections();
    await model?.close();
  });
}

/**
 * The row a bare service would keep per email: id, time, status and the request as jsonb, with
 * a primary key and no other index. (Our `emails` table also has a folded state, recipients,
 * tags, a generated status column and three more indexes: see migrations/.)
 */
const BARE_TABLE = `CREATE TABLE IF NOT EXISTS bare_emails (
  id text PRIMARY KEY,
  created_at timestamptz NOT NULL,
  status text NOT NULL,
  request jsonb NOT NULL
)`;

/**
 * The same durable work as our accept path, with nothing else: Koa and koa-body, one INSERT
 * through a pg.Pool of the same size as ours (10), one confirmed publish, 202. No validation,
 * no DI, no error mapping (Koa's default answers a failure with 500).
 */
async function bareKoa(amqpUrl: string, queue: string, databaseUrl?: string): Promise<void> {
  const model = await connect(amqpUrl);
  const channel = await model.createConfirmChannel();
  const pool = databaseUrl ? new pg.Pool({ connectionString: databaseUrl, max: 10 }) : undefined;
  await pool?.query(BARE_TABLE);
  const app = new Koa();
  // The options of our API route (src/adapters/http/api-routes.ts).
  app.use(
    koaBody({ json: true, jsonStrict: false, urlencoded: false, text: false, multipart: false }),
  );
  app.use(async (ctx) => {
    if (ctx.method !== 'POST' || ctx.path !== '/emails') return; // Koa answers 404
    const draft = ctx.request.body as Record<string, unknown>;
    const id = randomBytes(16).toString('base64url');
    const requestedAt = new Date();
    const request = { ...draft, id, requestedAt: requestedAt.toISOString() };
    await pool?.query(
      'INSERT INTO bare_emails (id, created_at, status, request) VALUES ($1, $2, $3, $4)',
      [id, requestedAt, 'queued', JSON.stringify(request)],
    );
    await confirmed(channel, queue, Buffer.from(JSON.stringify({ v: 1, request })), id);
    ctx.status = 202;
    ctx.set('Location', `/emails/${id}`);
    ctx.body = { id, status: 'queued' };
  });
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const { port } = server.address() as AddressInfo;
  announce({ url: `http://127.0.0.1:${port}/emails` });
  onStop(async () => {
    server.closeAllConnections();
    await pool?.end();
    await model.close();
  });
}

// The same durable write as OutboxEmailSender (temp file, fsync, rename), written out again on
// purpose: a baseline must not run our code, or it would measure us against ourselves.
async function writeDurably(dir: string, name: string, content: Buffer): Promise<void> {
  const temp = join(dir, `.${randomBytes(6).toString('hex')}.eml.tmp`);
  const file = await open(temp, 'w', 0o644);
  try {
    await file.writeFile(content);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, join(dir, name));
  const directory = await open(dir, 'r');
  await directory.sync().finally(() => directory.close());
}

async function bareConsumer(url: string, queue: string, dir: string, prefetch: number) {
  await mkdir(dir, { recursive: true });
  const model = await connect(url);
  const channel = await model.createChannel();
  await channel.prefetch(prefetch);
  await channel.consume(queue, (msg) => {
    if (msg === null) return;
    const id = String(msg.properties.messageId ?? randomBytes(8).toString('hex'));
    writeDurably(dir, `${id}.eml`, msg.content).then(
      () => channel.ack(msg),
      () => channel.reject(msg, true),
    );
  });
  announce({ consuming: queue });
  onStop(() => model.close());
}

/**
 * The same work as `email worker` with MAIL_TRANSPORT=mailgun, with nothing else: per message,
 * the provider call (node-fetch on a keep-alive agent, as our sender), one UPDATE of the email's
 * row, the ack; `prefetch` messages at a time, like WORKER_CONCURRENCY. A failed send or update
 * is requeued. No validation, no ledger, no events, no retry policy.
 */
async function bareMailgunConsumer(
  url: string,
  queue: string,
  databaseUrl: string,
  base: string,
  apiKey: string,
  from: string,
  to: string,
  prefetch: number,
) {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const authorization = mailgunAuthorization(apiKey);
  const model = await connect(url);
  const channel = await model.createChannel();
  await channel.prefetch(prefetch);
  const deliver = async (id: string, content: Buffer) => {
    const { request } = JSON.parse(content.toString('utf8')) as {
      request: { subject: string; text: string };
    };
    const response = await fetch(`${base}/messages`, {
      method: 'POST',
      headers: {
        Authorization: authorization,
        'Content-Type': 'application/x-www-form-urlencoded',
        Accept: 'application/json',
      },
      body: mailgunForm(from, to, request.subject, request.text, id),
      agent,
    });
    await response.text();
    if (response.status !== 200) throw new Error(`the provider answered ${response.status}`);
    await pool.query(
      "UPDATE bare_deliveries SET status = 'sent', updated_at = now() WHERE id = $1",
      [id],
    );
  };
  await channel.consume(queue, (msg) => {
    if (msg === null) return;
    deliver(String(msg.properties.messageId), msg.content).then(
      () => channel.ack(msg),
      () => channel.reject(msg, true),
    );
  });
  announce({ consuming: queue });
  onStop(async () => {
    await model.close();
    await pool.end();
    agent.destroy();
  });
}

async function standInHost(apiKey: string, domain: string): Promise<void> {
  const standIn = await startMailgunStandIn({ apiKey, domain });
  process.on('message', (message) => {
    if (message === 'clear') standIn.clear();
    if (typeof message === 'object' && message !== null && 'latencyMs' in message) {
      const { latencyMs } = message as { latencyMs: number };
      // The stand-in's sticky fault: every send waits this long, then succeeds.
      standIn.scriptDefault(latencyMs > 0 ? { latencyMs } : undefined);
    }
    // 'arrivals': when each message held arrived (ms since the epoch), for the slots' cycle.
    const arrivals = message === 'arrivals' ? standIn.messages.map((m) => m.arrivedAtMs) : [];
    process.send?.({ count: standIn.messages.length, arrivals });
  });
  announce({ url: standIn.baseUrl });
  onStop(() => standIn.close());
}

const [mode, ...args] = process.argv.slice(2);
const started =
  mode === 'http'
    ? bareHttp(args[0], args[1])
    : mode === 'koa'
      ? bareKoa(args[0]!, args[1]!, args[2])
      : mode === 'consume'
        ? bareConsumer(args[0]!, args[1]!, args[2]!, Number(args[3] ?? 32))
        : mode === 'mailgun'
          ? standInHost(args[0]!, args[1]!)
          : mode === 'mailgun-consume'
            ? bareMailgunConsumer(
                args[0]!,
                args[1]!,
                args[2]!,
                args[3]!,
                args[4]!,
                args[5]!,
                args[6]!,
                Number(args[7] ?? 32),
              )
            : Promise.reject(new Error(`unknown mode ${String(mode)}`));
started.catch((error: unknown) => {
  process.stderr.write(`baseline ${String(mode)} failed: ${String(error)}\n`);
  process.exit(1);
});
