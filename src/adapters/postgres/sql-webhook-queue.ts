import * as TE from 'fp-ts/lib/TaskEither.js';
import type { QueueUnavailable } from '../../application/ports/email-queue.js';
import { queueUnavailable } from '../../application/ports/email-queue.js';
import { redeliverPauseMs } from '../../application/ports/email-task-source.js';
import type { Logger } from '../../application/ports/system.js';
import type {
  WebhookHandlers,
  WebhookJob,
  WebhookJobSource,
  WebhookQueue,
  WebhookWork,
} from '../../application/ports/webhook-queue.js';
import type { SqlClient } from './sql-client.js';
import { safeReason } from './sql-client.js';

export interface SqlWebhookQueueOptions {
  /** Jobs handled at once in this process. */
  readonly concurrency: number;
  readonly logger: Logger;
  /** How often an idle consumer looks for due jobs (default 250 ms). */
  readonly pollIntervalMs?: number;
  /**
   * How long a take holds a job (default 60 s): longer than any attempt (10 s at most), so it is
   * not renewed while a try runs, only before each `redeliver` pause; a crashed process's jobs
   * are taken again once it runs out.
   */
  readonly leaseMs?: number;
  readonly now?: () => Date;
}

interface JobRow {
  readonly delivery_id: string;
  readonly attempt: number;
}

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms).unref());

/**
 * The webhook queue of `email dev`: one row per delivery in `webhook_jobs` (its next attempt and
 * when it is due), in the same database as everything else, so a job is as durable as the
 * change that made it. Publishing a delivery's next attempt replaces its row; a handled job
 * deletes the row only if it still names that attempt. Takes use `FOR UPDATE SKIP LOCKED` under
 * a lease, so several processes on one PostgreSQL share the work as they do the email tasks.
 * Events do not come through here: `email dev` hands them over in process.
 */
export class SqlWebhookQueue implements WebhookQueue, WebhookJobSource {
  private handlers: WebhookHandlers | undefined;
  private stopping = false;
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private taking: Promise<void> | undefined;
  private again = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly now: () => Date;

  constructor(
    private readonly client: SqlClient,
    private readonly options: SqlWebhookQueueOptions,
  ) {
    this.now = options.now ?? (() => new Date());
  }

  publish(job: WebhookJob, delayMs: number): TE.TaskEither<QueueUnavailable, void> {
    return TE.tryCatch(
      async () => {
        const due = new Date(this.now().getTime() + Math.max(0, delayMs));
        await this.client.query(
          `INSERT INTO webhook_jobs (delivery_id, attempt, due_at, lease_until)
           VALUES ($1, $2, $3, NULL)
           ON CONFLICT (delivery_id) DO UPDATE
             SET attempt = EXCLUDED.attempt, due_at = EXCLUDED.due_at, lease_until = NULL
             WHERE webhook_jobs.attempt <= EXCLUDED.attempt`,
          [job.deliveryId, job.attempt, due],
        );
        if (delayMs <= 0) this.wake();
      },
      (err) => queueUnavailable(safeReason(err)),
    );
  }

  consume(handlers: WebhookHandlers): Promise<void> {
    if (this.handlers) throw new Error('SqlWebhookQueue: already consuming');
    this.handlers = handlers;
    this.stopping = false;
    this.schedule(0);
    return Promise.resolve();
  }

  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await this.taking;
    if (this.inFlight.size > 0) {
      await Promise.race([Promise.allSettled([...this.inFlight]), sleep(graceMs)]);
    }
    this.handlers = undefined;
  }

  private wake(): void {
    if (this.handlers && !this.stopping) this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.take(), ms);
    this.timer.unref();
  }

  private async take(): Promise<void> {
    if (this.taking) {
      this.again = true;
      return;
    }
    const taking = this.takeOnce();
    this.taking = taking;
    await taking;
    this.taking = undefined;
    if (this.stopping) return;
    if (this.again) {
      this.again = false;
      this.schedule(0);
    } else {
      this.schedule(this.options.pollIntervalMs ?? 250);
    }
  }

  private async takeOnce(): Promise<void> {
    const handlers = this.handlers;
    const room = this.options.concurrency - this.running;
    if (handlers === undefined || this.stopping || room <= 0) return;
    const now = this.now();
    let rows: readonly JobRow[];
    try {
      rows = await this.client.query<JobRow>(
        `UPDATE webhook_jobs SET lease_until = $2
         WHERE delivery_id IN (
           SELECT delivery_id FROM webhook_jobs
           WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
           ORDER BY due_at LIMIT $3
           FOR UPDATE SKIP LOCKED)
         RETURNING delivery_id, attempt`,
        [now, new Date(now.getTime() + (this.options.leaseMs ?? 60_000)), room],
      );
    } catch (err) {
      this.options.logger.warn({ reason: safeReason(err) }, 'Could not take webhook jobs');
      return;
    }
    for (const row of rows) {
      const work = this.run(handlers, { deliveryId: row.delivery_id, attempt: row.attempt });
      this.inFlight.add(work);
      void work.finally(() => this.inFlight.delete(work));
    }
  }

  private async run(handlers: WebhookHandlers, job: WebhookJob): Promise<void> {
    this.running += 1;
    try {
      let work: WebhookWork;
      try {
        work = await handlers.job(job);
      } catch (err) {
        this.options.logger.error({ err: safeReason(err) }, 'Bug while handling a webhook job');
        work = 'redeliver';
      }
      for (let earlier = 0; work === 'redeliver' && !this.stopping; earlier += 1) {
        const pauseMs = redeliverPauseMs(100, earlier);
        // The take's lease covers one try: hold the job through this pause and the next try, or
        // once the lease runs out another take (this process's own too) would run it at once.
        await this.client
          .query(
            'UPDATE webhook_jobs SET lease_until = $3 WHERE delivery_id = $1 AND attempt = $2',
            [
              job.deliveryId,
              job.attempt,
              new Date(this.now().getTime() + pauseMs + (this.options.leaseMs ?? 60_000)),
            ],
          )
          .catch(() => undefined);
        await sleep(pauseMs);
        if (this.stopping) break;
        work = await handlers.job(job).catch(() => 'redeliver' as const);
      }
      if (work === 'redeliver') {
        // Stopping: free the row for the next start rather than wait out the lease.
        await this.client
          .query(
            'UPDATE webhook_jobs SET lease_until = NULL WHERE delivery_id = $1 AND attempt = $2',
            [job.deliveryId, job.attempt],
          )
          .catch(() => undefined);
        return;
      }
      // Only this attempt's row: handling it may have queued the next attempt in its place.
      await this.client
        .query('DELETE FROM webhook_jobs WHERE delivery_id = $1 AND attempt = $2', [
          job.deliveryId,
          job.attempt,
        ])
        .catch((err: unknown) =>
          this.options.logger.warn(
            { deliveryId: job.deliveryId, reason: safeReason(err) },
            'Could not remove a handled webhook job; it will be taken again and found done',
          ),
        );
    } finally {
      this.running -= 1;
      this.wake();
    }
  }
}
