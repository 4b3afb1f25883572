import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  DeadLetter,
  DeadLetterBox,
  ReplaySelector,
} from '../../application/ports/dead-letter-box.js';
import type { EmailQueue, QueueUnavailable } from '../../application/ports/email-queue.js';
import { queueUnavailable } from '../../application/ports/email-queue.js';
import type { EmailTaskSource, TaskHandler } from '../../application/ports/email-task-source.js';
import type { Expedited, RetryQueue } from '../../application/ports/retry-queue.js';
import type { Logger } from '../../application/ports/system.js';
import type { EmailRequest } from '../../domain/email-request.js';
import type { WireMessage } from '../messaging/task-message.js';
import { encodeNewTask, replayOf } from '../messaging/task-message.js';
import type { SqlClient } from './sql-client.js';
import { safeReason, countDeleted } from './sql-client.js';
import { SqlTaskConsumer } from './sql-task-consumer.js';
import type { DeadLetterRow, PendingRow } from './sql-task-statements.js';
import * as sql from './sql-task-statements.js';

export interface SqlEmailQueueOptions {
  /** Handlers in flight at once in this process, like the AMQP prefetch. */
  readonly concurrency: number;
  /** Outages, recoveries, released leases, dropped outcomes and handler bugs (default: none). */
  readonly logger?: Logger;
  /**
   * How often an idle consumer looks for due tasks (default 250 ms). It also looks at once when
   * this same instance publishes or replays, or finishes a task, so this bounds only how late a
   * retry that fell due, or a task another process published, is taken.
   */
  readonly pollIntervalMs?: number;
  /**
   * How long a take holds a task (default 30 s), renewed every third of it while the handler
   * runs: the longest a crashed process's tasks wait before another worker takes them.
   */
  readonly leaseMs?: number;
  /**
   * First pause before a Redeliver is asked again (doubling, at most 5 s) and before a task
   * whose handler rejected is offered again (doubling with the times the task was taken, at
   * most `maxRedeliveryDelayMs`). Default 100 ms.
   */
  readonly redeliveryDelayMs?: number;
  /** Default 30 s. */
  readonly maxRedeliveryDelayMs?: number;
  /** Longest wait between two tries while the database is away (default 5 s). */
  readonly maxBackoffMs?: number;
  /** Jitter source for retry delays (default Math.random), as in the in-memory queue. */
  readonly random?: () => number;
  /** Written in `locked_by` (default `<host>:<pid>:<6 hex>`); unique per instance. */
  readonly workerName?: string;
}

/** What is left in the queue (every worker's tasks), e.g. for "N emails left waiting". */
export interface PendingTasks {
  /** Due now and free: the next take would have them. */
  readonly ready: number;
  /** Free but due later: retries, and tasks whose handler failed, waiting out their delay. */
  readonly scheduled: number;
  /** Held under a live lease, by this process or another (a crashed one's until it runs out). */
  readonly leased: number;
}

const unavailable = (err: unknown): QueueUnavailable => queueUnavailable(safeReason(err));

/**
 * A durable task queue in two tables of a SQL database (`email_tasks`, `email_dead_letters`;
 * see `migrations/`), the same on node-postgres and on PGlite: the queue of `email dev`, and
 * correct with several workers on one PostgreSQL.
 *
 * A task is a row from publish (one committed INSERT) until its handler's disposition is
 * carried out: Done deletes it, Retry updates the same row (next attempt, due later), DeadLetter
 * moves it to `email_dead_letters`. Workers take due rows with `FOR UPDATE SKIP LOCKED` under a
 * lease they renew while the handler runs (see `SqlTaskConsumer`); a lease that runs out (a
 * crashed process) makes the row due again, and stop() releases what did not finish so that the
 * next start takes it at once. Delivery is at least once, as with RabbitMQ.
 *
 * Publishing and consuming through one instance in one process wakes the consumer at once;
 * across processes the poll interval bounds the wait.
 */
export class SqlEmailQueue implements EmailQueue, RetryQueue, EmailTaskSource, DeadLetterBox {
  /** The value of `locked_by` on the rows this instance holds. */
  readonly workerName: string;
  private readonly consumer: SqlTaskConsumer;

  constructor(
    private readonly sql: SqlClient,
    options: SqlEmailQueueOptions,
  ) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new Error(`concurrency must be a positive integer, got ${options.concurrency}`);
    }
    this.workerName =
      options.workerName ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.consumer = new SqlTaskConsumer(sql, {
      concurrency: options.concurrency,
      logger: options.logger,
      pollIntervalMs: options.pollIntervalMs ?? 250,
      leaseMs: options.leaseMs ?? 30_000,
      redeliveryDelayMs: options.redeliveryDelayMs ?? 100,
      maxRedeliveryDelayMs: options.maxRedeliveryDelayMs ?? 30_000,
      maxBackoffMs: options.maxBackoffMs ?? 5_000,
      random: options.random ?? Math.random,
      workerName: this.workerName,
    });
  }

  /** Right once the INSERT is committed; QueueUnavailable, never a rejection, otherwise. */
  publish(request: EmailRequest): TE.TaskEither<QueueUnavailable, void> {
    return TE.tryCatch(() => this.store(encodeNewTask(request)), unavailable);
  }

  /**
   * "Retry now": the row waiting for `attempt` is made due now and the consumer woken, so this
   * process (`email dev`) takes it at once. `moved`, or `not-waiting` when no free row of that
   * attempt waits for later (a worker holds it, or it is done). The history stays the row's own.
   */
  expedite(request: EmailRequest, attempt: number): TE.TaskEither<QueueUnavailable, Expedited> {
    return TE.tryCatch(async () => {
      const statement = sql.expediteRetry(request.id, attempt);
      const rows = await this.sql.query(statement.sql, statement.params);
      if (rows.length === 0) return 'not-waiting';
      this.consumer.wake();
      return 'moved';
    }, unavailable);
  }

  /**
   * Starts the poll loop and resolves at once, the database reachable or not (an outage is
   * logged once and the loop keeps trying). Rejects if this instance is already consuming.
   */
  async consume(handler: TaskHandler): Promise<void> {
    this.consumer.consume(handler);
  }

  /**
   * Takes nothing new, waits up to `graceMs` for the handlers in flight (a Redeliver pause ends
   * at once, unless its send went out: that task is asked again until it is done or the grace
   * period ends), then releases the leases of what did not finish, so that the next start takes
   * it at once. Never rejects: a lease it cannot release runs out by itself within `leaseMs`.
   * consume() may be called again afterwards.
   */
  stop(graceMs: number): Promise<void> {
    return this.consumer.stop(graceMs);
  }

  /** Counts the tasks in the table, whoever holds them. */
  pending(): TE.TaskEither<QueueUnavailable, PendingTasks> {
    return TE.tryCatch(async () => {
      const [row] = await this.sql.query<PendingRow>(sql.countPending.sql);
      return { ready: row?.ready ?? 0, scheduled: row?.scheduled ?? 0, leased: row?.leased ?? 0 };
    }, unavailable);
  }

  /** Oldest first, as the other boxes list them; the letters stay. */
  list(): TE.TaskEither<QueueUnavailable, readonly DeadLetter[]> {
    return TE.tryCatch(async () => {
      const rows = await this.sql.query<DeadLetterRow>(sql.selectDeadLetters(false));
      return rows.map(sql.describeRow);
    }, unavailable);
  }

  /**
   * Moves the selected letters back to the tasks as fresh first attempts (task-message's
   * `replayOf`: a malformed letter stays) in one transaction; answers how many moved.
   */
  replay(selector: ReplaySelector): TE.TaskEither<QueueUnavailable, number> {
    return TE.tryCatch(async () => {
      const replayed = await this.sql.transaction(async (tx) => {
        const rows = await tx.query<DeadLetterRow>(sql.selectDeadLetters(true));
        let count = 0;
        for (const row of rows) {
          const task = replayOf(sql.deadLetterMessage(row), selector);
          if (task === undefined) continue;
          const insert = sql.insertTask(task);
          await tx.query(insert.sql, insert.params);
          await tx.query('DELETE FROM email_dead_letters WHERE seq = $1::bigint', [row.seq]);
          count += 1;
        }
        return count;
      });
      if (replayed > 0) this.consumer.wake();
      return replayed;
    }, unavailable);
  }

  /** Deletes every dead letter; answers how many. */
  purge(): TE.TaskEither<QueueUnavailable, number> {
    return TE.tryCatch(() => countDeleted(this.sql, 'DELETE FROM email_dead_letters'), unavailable);
  }

  /** Stores any wire message (the tests' foreign publisher's too) and wakes the consumer. */
  protected async store(message: WireMessage): Promise<void> {
    const insert = sql.insertTask(message);
    await this.sql.query(insert.sql, insert.params);
    this.consumer.wake();
  }
}
