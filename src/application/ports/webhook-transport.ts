/**
 * One POST of a webhook: the exact body and headers to send, and the longest wait for an
 * answer (ms), after which the attempt counts as failed.
 */
export interface WebhookRequest {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly timeoutMs: number;
}

/**
 * What a POST came to. `Answered`: the receiver's status code (any, 3xx included: redirects
 * are not followed, since a signed delivery must reach the URL its owner registered) and its
 * `Retry-After` in ms from now when it sent a readable one. `NoAnswer`: refused, reset, timed
 * out; `error` is a short text fit for the email's page (no stack, no address of ours).
 * `durationMs` is from the start of the request to its end, either way.
 */
export type WebhookResponse =
  | {
      readonly _tag: 'Answered';
      readonly statusCode: number;
      readonly retryAfterMs?: number;
      readonly durationMs: number;
    }
  | { readonly _tag: 'NoAnswer'; readonly error: string; readonly durationMs: number };

/** Sends webhook requests over HTTP. Never rejects: every failure is a `NoAnswer`. */
export interface WebhookTransport {
  post(request: WebhookRequest): Promise<WebhookResponse>;
}

/**
 * Signs a delivery as the Standard Webhooks specification says: HMAC-SHA256 of
 * `${id}.${unix seconds}.${body}` with the secret after `whsec_`, base64-decoded, as
 * `v1,<base64>` (https://www.standardwebhooks.com/, "Signature scheme").
 */
export interface WebhookSigner {
  sign(secret: string, id: string, timestamp: Date, body: string): string;
}
