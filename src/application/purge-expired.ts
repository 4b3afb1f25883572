import { pipe } from 'fp-ts/lib/function.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { AttachmentStore } from './ports/attachment-store.js';
import type { DeliveryLedger } from './ports/delivery-ledger.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { IdempotencyStore } from './ports/idempotency-store.js';
import type { SessionStore } from './ports/session-store.js';
import { IDEMPOTENCY_KEY_TTL_MS } from './ports/idempotency-store.js';
import type { WebhookDeliveries } from './ports/webhook-deliveries.js';
import type { Clock } from './ports/system.js';

export interface RetentionPolicy {
  /**
   * Emails (status, history, request) older than this many days are deleted once they are sent
   * or failed; one still queued or retrying is kept until it is.
   */
  readonly retentionDays: number;
  /** Rows deleted by one statement: small, so a purge never holds long locks. */
  readonly batchSize: number;
  /** Most batches in one run; the rest waits for the next run. */
  readonly maxBatches: number;
}

export interface Purged {
  readonly emails: number;
  readonly idempotencyKeys: number;
  readonly ledgerEntries: number;
  readonly sessions: number;
  /** Stored attachments no email carries any more. */
  readonly attachments: number;
  /** Outgoing webhook deliveries made before the cutoff and no longer pending. */
  readonly webhookDeliveries: number;
}

/** A web session unused for this long is over (see `Operators`), and its row is deleted. */
export const SESSION_RETENTION_MS = 12 * 60 * 60 * 1000;

/**
 * Deletes what is older than the retention period, in small batches: emails by their acceptance
 * time once their delivery is over (sent or failed), idempotency keys after their 24 hours,
 * ledger entries with the emails they guard, web sessions idle past their 12 hours, and the
 * attachments no email carries any more. An email still queued or retrying is never deleted,
 * however old: its task is still coming, and the worker would otherwise write a new entry for it
 * without its request (nothing to show, nothing to send again).
 *
 * Attachments go after the emails, so that what the emails deleted in this run carried goes in
 * this run too, and with the emails' cutoff: a file stored or linked since then may belong to an
 * email the API has not recorded yet (it stores the files first).
 */
export class PurgeExpired {
  constructor(
    private readonly emails: EmailLog,
    private readonly idempotency: IdempotencyStore,
    private readonly ledger: DeliveryLedger,
    private readonly sessions: SessionStore,
    private readonly attachments: AttachmentStore,
    private readonly policy: RetentionPolicy,
    private readonly clock: Clock,
    /** Where webhooks are delivered; without it there are none to purge. */
    private readonly webhooks?: Pick<WebhookDeliveries, 'purgeOlderThan'>,
  ) {}

  execute(): TE.TaskEither<StoreUnavailable, Purged> {
    const now = this.clock.now().getTime();
    const cutoff = new Date(now - this.policy.retentionDays * 24 * 60 * 60 * 1000);
    return pipe(
      TE.Do,
      TE.bind('emails', () =>
        this.inBatches((size) => this.emails.purgeOlderThan(cutoff, size), 0, 0),
      ),
      TE.bind('idempotencyKeys', () =>
        this.idempotency.purgeOlderThan(new Date(now - IDEMPOTENCY_KEY_TTL_MS)),
      ),
      TE.bind('ledgerEntries', () => this.ledger.purgeOlderThan(cutoff)),
      TE.bind('sessions', () => this.sessions.purgeIdleSince(new Date(now - SESSION_RETENTION_MS))),
      TE.bind('attachments', () => this.attachments.purgeOrphans(cutoff)),
      TE.bind('webhookDeliveries', () => {
        const webhooks = this.webhooks;
        return webhooks === undefined
          ? TE.right(0)
          : this.inBatches((size) => webhooks.purgeOlderThan(cutoff, size), 0, 0);
      }),
    );
  }

  /** Runs `purge` a batch at a time until a batch comes back short, or `maxBatches`. */
  private inBatches(
    purge: (batchSize: number) => TE.TaskEither<StoreUnavailable, number>,
    batches: number,
    total: number,
  ): TE.TaskEither<StoreUnavailable, number> {
    return pipe(
      purge(this.policy.batchSize),
      TE.flatMap((deleted) =>
        deleted < this.policy.batchSize || batches + 1 >= this.policy.maxBatches
          ? TE.right(total + deleted)
          : this.inBatches(purge, batches + 1, total + deleted),
      ),
    );
  }
}
