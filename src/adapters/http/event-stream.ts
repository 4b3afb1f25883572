import type { Context } from 'koa';
import { PassThrough } from 'node:stream';

/** An open `text/event-stream` answer (Server-Sent Events, WHATWG HTML §9.2). */
export interface EventStream {
  /** True once the stream ended: the browser left, the server stops, or `close` was called. */
  readonly closed: boolean;
  /** Writes one or more complete SSE frames (`event: …\ndata: …\n\n`); nothing once closed. */
  write(frames: string): void;
  /** Runs `cleanup` (an unsubscribe) when the stream ends, or at once if it has ended. */
  onClose(cleanup: () => void): void;
  /** Ends the stream; later calls do nothing. */
  close(): void;
}

export interface EventStreamOptions {
  /** Milliseconds between comment lines that keep idle proxies from closing a quiet stream. */
  readonly heartbeatMs: number;
  /** Aborted when the server stops: the stream ends then, so the stop need not wait for it. */
  readonly closing?: AbortSignal | undefined;
}

/**
 * Answers `ctx` with an event stream (200, no caching, no proxy buffering, Nagle off) and keeps
 * it alive with heartbeats until the browser goes away, the server stops, or the caller closes
 * it. The caller writes its first frame, then checks `closing?.aborted` itself: a stream asked
 * for while the server stops still gets what it came for, and its end.
 */
export function openEventStream(ctx: Context, options: EventStreamOptions): EventStream {
  const { heartbeatMs, closing } = options;
  const stream = new PassThrough();
  const cleanups: (() => void)[] = [];
  let closed = false;
  const heartbeat = setInterval(() => !closed && stream.write(': keep-alive\n\n'), heartbeatMs);
  const close = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    for (const cleanup of cleanups) cleanup();
    closing?.removeEventListener('abort', close);
    stream.end();
  };
  // The browser went away (tab closed, navigated): stop listening for its sake.
  ctx.res.once('close', close);
  closing?.addEventListener('abort', close, { once: true });

  ctx.status = 200;
  ctx.type = 'text/event-stream';
  ctx.set({ 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
  ctx.req.socket.setNoDelay(true);
  ctx.body = stream;
  return {
    get closed() {
      return closed;
    },
    write: (frames) => {
      if (!closed) stream.write(frames);
    },
    onClose: (cleanup) => {
      if (closed) cleanup();
      else cleanups.push(cleanup);
    },
    close,
  };
}
