// A TCP door between a client and PostgreSQL that a test opens, shuts, freezes and slows: how the
// listener tests make a database go away, a path go silent, or a link slow, without touching
// the server.
import net from 'node:net';

/**
 * A TCP door to PostgreSQL that a test opens and shuts. Shut, it accepts connections and closes
 * them at once (what a Docker published port or a proxy does while the database behind it is
 * down) and cuts every link through it; frozen, every link goes silent both ways without being
 * closed (a dead network path); slowed, what clients send reaches PostgreSQL `ms` later.
 */
export interface Door {
  readonly port: number;
  /** Connections accepted so far, open or shut. */
  accepted(): number;
  open(): void;
  shut(): void;
  freeze(): void;
  slowUp(ms: number): void;
  close(): Promise<void>;
}

export async function door(target: number): Promise<Door> {
  let open = false;
  let frozen = false;
  let upDelay = 0;
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    accepted += 1;
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => {
      if (frozen) return;
      if (upDelay === 0) upstream.write(chunk);
      else setTimeout(() => frozen || upstream.destroyed || upstream.write(chunk), upDelay);
    });
    upstream.on('data', (chunk) => frozen || client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) socket.on('error', end).on('close', end);
  });
  const port = await new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
  const cutAll = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  return {
    port,
    accepted: () => accepted,
    open: () => {
      open = true;
    },
    shut: () => {
      open = false;
      cutAll();
    },
    freeze: () => {
      frozen = true;
    },
    slowUp: (ms) => {
      upDelay = ms;
    },
    close: () =>
      new Promise((resolve) => {
        cutAll();
        server.close(() => resolve());
      }),
  };
}
