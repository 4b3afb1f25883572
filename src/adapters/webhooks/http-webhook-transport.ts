import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import fetch from 'node-fetch';
import type {
  WebhookRequest,
  WebhookResponse,
  WebhookTransport,
} from '../../application/ports/webhook-transport.js';
import { parseRetryAfter } from '../mailgun/mailgun-response.js';
import { DeadlinePassed, Deadlines } from '../system/deadlines.js';

/** What a receiver's answer may say at most; it is read only to free the socket. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/** The error codes worth naming on the email's page, in words a receiver's owner knows. */
const NETWORK_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed while sending',
  CERT_HAS_EXPIRED: 'TLS certificate expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed TLS certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed TLS certificate in the chain',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate not trusted',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS certificate is for another host',
};

/** The code of a node-fetch FetchError or of its cause, if any. */
const codeOf = (error: unknown): string | undefined => {
  if (typeof error !== 'object' || error === null) return undefined;
  const own = (error as { code?: unknown }).code;
  if (typeof own === 'string') return own;
  const errno = (error as { errno?: unknown }).errno;
  return typeof errno === 'string' ? errno : undefined;
};

/** A wait as the error text says it: whole seconds, or milliseconds below a second (not "0 s"). */
const waitText = (ms: number): string => (ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`);

/**
 * POSTs webhooks with node-fetch over keep-alive agents. Redirects are not followed (the answer
 * is a 3xx, a failure), the answer is read up to 64 KiB and thrown away, and the whole exchange,
 * body included, is cut at `timeoutMs`. Errors become short texts such as "connection refused"
 * or "no answer within 10 s"; node's own message is not used, since it can carry our addresses.
 */
export class HttpWebhookTransport implements WebhookTransport {
  private readonly http = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  private readonly https = new HttpsAgent({ keepAlive: true, maxSockets: 64 });
  /** The abort signals of `timeoutMs`. */
  private readonly deadlines = new Deadlines();

  constructor(private readonly now: () => number = Date.now) {}

  async post(request: WebhookRequest): Promise<WebhookResponse> {
    const started = performance.now();
    const took = (): number => Math.round(performance.now() - started);
    try {
      return await this.deadlines.within(request.timeoutMs, async (signal) => {
        const response = await fetch(request.url, {
          method: 'POST',
          headers: request.headers,
          body: request.body,
          redirect: 'manual',
          size: MAX_RESPONSE_BYTES,
          signal,
          agent: (url) => (url.protocol === 'https:' ? this.https : this.http),
        });
        // A receiver that answers with more than we read is still an answer.
        await response.arrayBuffer().catch(() => undefined);
        const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), this.now());
        return {
          _tag: 'Answered',
          statusCode: response.status,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
          durationMs: took(),
        };
      });
    } catch (error) {
      if (error instanceof DeadlinePassed) {
        return {
          _tag: 'NoAnswer',
          error: `no answer within ${waitText(request.timeoutMs)}`,
          durationMs: took(),
        };
      }
      const code = codeOf(error);
      return {
        _tag: 'NoAnswer',
        error: (code !== undefined ? NETWORK_ERRORS[code] : undefined) ?? 'the request failed',
        durationMs: took(),
      };
    }
  }

  /** Closes idle keep-alive sockets, so a stopping worker does not wait for them. */
  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}
