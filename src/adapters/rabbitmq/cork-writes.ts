import type { ChannelModel } from 'amqplib';

/** The parts of amqplib's connection (lib/connection.js, lib/mux.js) this relies on. */
interface MuxedConnection {
  readonly stream?: { cork?: () => void; uncork?: () => void };
  readonly muxer?: { _readIncoming?: () => void };
}

/**
 * Makes every pass of amqplib's writer one socket write. amqplib queues each channel's frames
 * (a publish is one buffer) and, once per event-loop turn, its Mux copies all that are waiting to
 * the socket, one `write` each: one system call per publish. Corked for the pass, the socket
 * sends them with a single `writev`, so the publishes of concurrent requests (the task and its
 * event) cost one system call here and one read in RabbitMQ. Order, flow control (`write`
 * still answers false past the high-water mark) and confirms are unchanged.
 *
 * amqplib's internals, not its API: if they are not as expected (another version), this changes
 * nothing and the connection works as before. Answers whether the writes are corked.
 */
export function corkWrites(model: ChannelModel): boolean {
  const connection = (model as unknown as { connection?: MuxedConnection }).connection;
  const socket = connection?.stream;
  const muxer = connection?.muxer;
  const pass = muxer?._readIncoming;
  if (socket?.cork === undefined || socket.uncork === undefined || pass === undefined) {
    return false;
  }
  const cork = socket.cork.bind(socket);
  const uncork = socket.uncork.bind(socket);
  muxer!._readIncoming = function corkedPass(this: unknown) {
    cork();
    try {
      pass.call(this);
    } finally {
      uncork();
    }
  };
  return true;
}
