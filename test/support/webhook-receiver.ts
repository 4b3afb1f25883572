// A webhook receiver the tests run: it keeps every request as it arrived (headers and body) and
// answers as the test scripts it, so a test can observe retries, signatures and slow receivers.
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the receiver got it. */
export interface ReceivedWebhook {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** How many requests with this `webhook-id` came before this one. */
  readonly earlier: number;
  /** When it arrived (ms since the epoch). */
  readonly receivedAt: number;
}

/**
 * What to answer a request: a status code (and headers), or `hang` to keep it open without an
 * answer until the receiver closes.
 */
export type Answer =
  { readonly status: number; readonly headers?: Record<string, string> } | 'hang';

export interface WebhookReceiver {
  readonly url: string;
  readonly received: ReceivedWebhook[];
  /** Requests still waiting for an answer (`hang`). */
  readonly hanging: number;
  close(): Promise<void>;
}

/** Starts a receiver on 127.0.0.1; `answer` decides each request's fate (default 204). */
export async function startWebhookReceiver(
  answer: (request: ReceivedWebhook) => Answer = () => ({ status: 204 }),
): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const open = new Set<ServerResponse>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const id = req.headers['webhook-id'];
      const request: ReceivedWebhook = {
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        earlier: received.filter((r) => r.headers['webhook-id'] === id).length,
        receivedAt: Date.now(),
      };
      received.push(request);
      const decided = answer(request);
      if (decided === 'hang') {
        open.add(res);
        res.on('close', () => open.delete(res));
        return;
      }
      res.writeHead(decided.status, decided.headers ?? {}).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    get hanging() {
      return open.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
