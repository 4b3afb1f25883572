import type { Option } from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { EmailId } from '../../domain/email-request.js';
import type { WebhookEventType } from '../../domain/webhook.js';
import type { StoreUnavailable } from './email-log.js';

/** `pending` until an attempt got a 2xx (`delivered`) or the last attempt failed (`failed`). */
export type WebhookDeliveryState = 'pending' | 'delivered' | 'failed';

/**
 * One POST to an endpoint: when it started, how long it took (ms), and the receiver's status
 * code, or `error` when there was none (refused, timed out, reset). `error` is ours to show: a
 * short text such as "timed out after 10 s", never a stack.
 */
export interface WebhookAttempt {
  readonly attempt: number;
  readonly at: Date;
  readonly durationMs: number;
  readonly statusCode?: number;
  readonly error?: string;
}

/** What `WebhookDeliveries.create` stores: one change of one email, for one endpoint. */
export interface NewWebhookDelivery {
  /** The `webhook-id` header, the same on every attempt: `msg_` and 22 base64url characters. */
  readonly id: string;
  readonly endpointId: string;
  /** The endpoint's URL when the delivery was made: still shown once the endpoint is removed. */
  readonly url: string;
  readonly emailId: EmailId;
  readonly type: WebhookEventType;
  /** `WebhookNotice.key`: with `endpointId` and `emailId` it names the delivery (unique). */
  readonly noticeKey: string;
  /** The exact JSON body, sent and signed the same on every attempt. */
  readonly payload: string;
  readonly createdAt: Date;
}

/** A delivery as stored, with every attempt so far (oldest first). */
export interface WebhookDelivery extends NewWebhookDelivery {
  readonly state: WebhookDeliveryState;
  readonly attempts: readonly WebhookAttempt[];
  /** When the next attempt is due, while pending. */
  readonly nextAttemptAt?: Date;
}

/** What an attempt left behind: the delivery's new state and, when pending, the next time. */
export interface WebhookAttemptResult {
  readonly state: WebhookDeliveryState;
  readonly nextAttemptAt?: Date;
}

/**
 * Every outgoing webhook delivery and its attempts, shared by every worker: what the email's
 * page shows, and what makes a delivery idempotent when the event behind it is heard twice.
 */
export interface WebhookDeliveries {
  /**
   * Stores those of `deliveries` not stored yet (one per endpoint, email and notice key) and
   * answers each as it is stored now, in the order given: a new one pending without attempts,
   * or the one stored before with its state, so the caller knows which still need a first try.
   */
  create(
    deliveries: readonly NewWebhookDelivery[],
  ): TaskEither<StoreUnavailable, readonly WebhookDelivery[]>;
  get(id: string): TaskEither<StoreUnavailable, Option<WebhookDelivery>>;
  /**
   * Appends `attempt` and sets the result, only when the delivery is pending and `attempt` is
   * the next one (it has `attempt.attempt - 1` attempts): false otherwise, when another worker
   * recorded this attempt already (a job heard twice) and the caller must not act on it.
   */
  recordAttempt(
    id: string,
    attempt: WebhookAttempt,
    result: WebhookAttemptResult,
  ): TaskEither<StoreUnavailable, boolean>;
  /** The deliveries of one email, oldest first (by creation, then id). */
  forEmail(emailId: EmailId): TaskEither<StoreUnavailable, readonly WebhookDelivery[]>;
  /** The newest `limit` deliveries of every endpoint, newest first. */
  recent(limit: number): TaskEither<StoreUnavailable, readonly WebhookDelivery[]>;
  /**
   * Up to `limit` deliveries still pending whose next attempt was due before `dueBefore` (the
   * time it was made, for one not tried yet), most overdue first: those whose job was lost.
   */
  overdue(dueBefore: Date, limit: number): TaskEither<StoreUnavailable, readonly WebhookDelivery[]>;
  /** When the oldest delivery still pending was made; none when nothing is pending. */
  oldestPending(): TaskEither<StoreUnavailable, Option<Date>>;
  /**
   * Deletes up to `batchSize` deliveries made before `cutoff` that are no longer pending, oldest
   * first; answers how many went (retention, like the email log's).
   */
  purgeOlderThan(cutoff: Date, batchSize: number): TaskEither<StoreUnavailable, number>;
}
