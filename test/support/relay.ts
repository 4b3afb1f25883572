// A relay for webhooks whose target is known only after the sender starts.
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Where the stand-in posts: it needs its webhook URL when it starts, and `email dev` learns its
 * port (PORT=0) only after, so the stand-in posts here and this passes each request on, body and
 * answer untouched. It answers 503 until it knows where to (Mailgun then tries again).
 */
export async function startRelay(
  /** A status to answer instead of passing the request on (e.g. 406: the sender gives up). */
  refuse: (body: Buffer) => number | undefined = () => undefined,
): Promise<{
  url: string;
  target: { url?: string };
  close(): Promise<void>;
}> {
  const target: { url?: string } = {};
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (target.url === undefined) {
        res.writeHead(503).end();
        return;
      }
      const refused = refuse(Buffer.concat(chunks));
      if (refused !== undefined) {
        res.writeHead(refused).end();
        return;
      }
      fetch(`${target.url}${req.url ?? '/'}`, {
        method: req.method ?? 'POST',
        headers: { 'content-type': req.headers['content-type'] ?? 'application/json' },
        body: Buffer.concat(chunks),
      }).then(
        async (answer) =>
          res
            .writeHead(answer.status, {
              'content-type': answer.headers.get('content-type') ?? 'text/plain',
            })
            .end(Buffer.from(await answer.arrayBuffer())),
        () => res.writeHead(502).end(),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    target,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
