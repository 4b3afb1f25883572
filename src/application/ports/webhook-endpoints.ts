import type { Option } from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { WebhookEventType } from '../../domain/webhook.js';
import type { StoreUnavailable } from './email-log.js';

/**
 * An outgoing webhook endpoint as listed: never with its secret. `id` is `we_` and 16 base64url
 * characters; `events` is the filter, empty for every type.
 */
export interface WebhookEndpoint {
  readonly id: string;
  /** An absolute `http:` or `https:` URL. */
  readonly url: string;
  readonly events: readonly WebhookEventType[];
  readonly createdAt: Date;
}

/**
 * An endpoint with its signing secret, `whsec_` and the base64 of 24 random bytes (the Standard
 * Webhooks format, https://www.standardwebhooks.com/, "Signature scheme"). Stored as it is: it
 * has to sign every delivery, so it cannot be a digest the way API keys are.
 */
export interface SigningWebhookEndpoint extends WebhookEndpoint {
  readonly secret: string;
}

/** The outgoing webhook endpoints, shared by every server and worker. */
export interface WebhookEndpoints {
  /** Stores a new endpoint (its id is new: the caller drew it at random). */
  add(endpoint: SigningWebhookEndpoint): TaskEither<StoreUnavailable, void>;
  /** Removes it; answers whether it was there. Its past deliveries stay, with its URL. */
  remove(id: string): TaskEither<StoreUnavailable, boolean>;
  /** Every endpoint, oldest first, without secrets. */
  list(): TaskEither<StoreUnavailable, readonly WebhookEndpoint[]>;
  /** Every endpoint whose filter takes `type`, with secrets, oldest first. */
  subscribedTo(
    type: WebhookEventType,
  ): TaskEither<StoreUnavailable, readonly SigningWebhookEndpoint[]>;
  /** One endpoint with its secret, to sign a delivery; none once removed. */
  get(id: string): TaskEither<StoreUnavailable, Option<SigningWebhookEndpoint>>;
}
