import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * What the stand-in does instead of (or before) answering normally. Fields combine:
 * `{ latencyMs: 200 }` delays then succeeds, `{ latencyMs: 200, status: 503 }` delays then fails.
 */
export interface Fault {
  /** Answer with this status instead of processing the request. */
  readonly status?: number;
  /** Sent as `Retry-After` (delta-seconds) with the status. */
  readonly retryAfterSeconds?: number;
  /** JSON `{"message"}` body (Mailgun's own answers) rather than plain text (a proxy's). */
  readonly json?: boolean;
  /** The body's message; each status has a realistic default. */
  readonly message?: string;
  /** The answer leaves this long after the request arrived (the stand-in's own work included). */
  readonly latencyMs?: number;
  /** Never answer: for client timeouts. */
  readonly hang?: boolean;
  /** Destroy the socket without an answer: for network errors. */
  readonly dropConnection?: boolean;
}

/** A queue consumed one per request, then a sticky default (none: behave normally). */
export class FaultScript {
  private readonly queue: Fault[] = [];
  private sticky: Fault | undefined;

  push(...faults: Fault[]): void {
    this.queue.push(...faults);
  }
  setDefault(fault: Fault | undefined): void {
    this.sticky = fault;
  }
  next(): Fault | undefined {
    return this.queue.shift() ?? this.sticky;
  }
  pending(): number {
    return this.queue.length;
  }
  reset(): void {
    this.queue.length = 0;
    this.sticky = undefined;
  }
}

// Mailgun answers in JSON; 401 is the bare word `Forbidden`; 502-504 come from the proxy in front.
const DEFAULTS: Record<number, { json: boolean; message: string }> = {
  400: { json: true, message: "'to' parameter is not a valid address. please check documentation" },
  401: { json: false, message: 'Forbidden' },
  402: { json: true, message: 'Request failed' },
  403: {
    json: true,
    message: 'Domain is not allowed to send: Sandbox subdomains are for test purposes only',
  },
  404: { json: true, message: 'Domain not found' },
  413: { json: true, message: 'Message size exceeds 25MB' },
  420: { json: true, message: 'Domain is not allowed to send: recipient limit exceeded' },
  429: { json: true, message: 'Too many requests' },
  500: { json: true, message: 'Internal Server Error' },
};

/**
 * How the fault answers instead of the stand-in, once its latency has passed (the caller waits
 * it): a status, a hang (no answer at all) or a dropped connection. Undefined when the fault is
 * only a delay, and the request is answered as usual.
 */
export function faultAnswer(
  fault: Fault,
  req: IncomingMessage,
  domain: string,
): ((res: ServerResponse) => void) | undefined {
  if (fault.hang) return () => undefined;
  if (fault.dropConnection) return () => void req.socket.destroy();
  const status = fault.status;
  if (status === undefined) return undefined;
  const known = DEFAULTS[status];
  const asJson = fault.json ?? known?.json ?? false;
  const message = fault.message ?? known?.message ?? `${status} error at ${domain}`;
  return (res) => {
    res.writeHead(status, {
      'content-type': asJson ? 'application/json' : 'text/plain; charset=utf-8',
      ...(fault.retryAfterSeconds !== undefined
        ? { 'retry-after': String(fault.retryAfterSeconds) }
        : {}),
    });
    res.end(asJson ? JSON.stringify({ message }) : message);
  };
}

const isFault = (u: unknown): u is Fault =>
  typeof u === 'object' &&
  u !== null &&
  Object.entries(u).every(([k, v]) =>
    ['status', 'retryAfterSeconds', 'latencyMs'].includes(k)
      ? typeof v === 'number'
      : ['json', 'hang', 'dropConnection'].includes(k)
        ? typeof v === 'boolean'
        : k === 'message' && typeof v === 'string',
  );

/**
 * The body of `POST /__stand-in/faults`: a fault (queued), or `{"queue": [...], "sticky": f}`
 * where a `sticky` of null clears the default. A string is what is wrong with it.
 */
export function parseFaultScript(text: string): { queue: Fault[]; sticky?: Fault | null } | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'body must be JSON';
  }
  if (isFault(body)) return { queue: [body] };
  if (
    typeof body !== 'object' ||
    body === null ||
    !Object.keys(body).every((k) => k === 'queue' || k === 'sticky')
  ) {
    return 'body must be a fault (status, retryAfterSeconds, json, message, latencyMs, hang, dropConnection) or {queue, sticky}';
  }
  const queue: unknown = 'queue' in body ? body.queue : [];
  if (!Array.isArray(queue) || !queue.every(isFault)) return 'queue must be a list of faults';
  if (!('sticky' in body)) return { queue };
  const sticky = body.sticky;
  if (sticky !== null && !isFault(sticky)) return 'sticky must be a fault or null';
  return { queue, sticky };
}
