import * as E from 'fp-ts/lib/Either.js';
import type {
  Disposition,
  EmailTask,
  TaskHandler,
} from '../../application/ports/email-task-source.js';
import { redeliverPauseMs, sentButUnrecorded } from '../../application/ports/email-task-source.js';
import type { Logger } from '../../application/ports/system.js';
import { withJitter } from '../../domain/delivery.js';
import { decodeTask, reportStop, undecodable } from '../messaging/task-message.js';
import type { SqlClient } from './sql-client.js';
import { isConnectionError, safeReason } from './sql-client.js';
import type { Statement, Take, TaskRow } from './sql-task-statements.js';
import * as sql from './sql-task-statements.js';

/** SqlEmailQueueOptions with every default applied (see there for what each one means). */
export interface ConsumerSettings {
  readonly concurrency: number;
  readonly logger: Logger | undefined;
  readonly pollIntervalMs: number;
  readonly leaseMs: number;
  readonly redeliveryDelayMs: number;
  readonly maxRedeliveryDelayMs: number;
  readonly maxBackoffMs: number;
  readonly random: () => number;
  readonly workerName: string;
}

interface Delivery extends Take {
  readonly emailId: string | null;
  /** stop() gave up waiting and released the lease: the outcome must not touch the row. */
  abandoned: boolean;
  /** The handler's last answer was a Redeliver whose send went out (see Disposition). */
  sentUnrecorded: boolean;
  done: Promise<void>;
}

/** One consume() until its stop(). */
interface Session {
  readonly handler: TaskHandler;
  readonly deliveries: Set<Delivery>;
  stopping: boolean;
  /** Settles when stop() begins, so that a Redeliver pause ends at once. */
  readonly stopped: Promise<void>;
  readonly signalStop: () => void;
  taking: Promise<void> | undefined;
  /** A wake-up came during a take: look again as soon as it is over. */
  again: boolean;
  backoffMs: number;
  pollTimer: NodeJS.Timeout | undefined;
  readonly renewTimer: NodeJS.Timeout;
}

// Timers never keep a process alive on their own: `email dev` must exit on SIGTERM.
const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms).unref());

/**
 * SqlEmailQueue's worker side: a poll loop that takes due rows under a lease, runs the handler,
 * and carries out its disposition on the same row. Every settle names the take it ends (see
 * `sql-task-statements.ts`), so a worker that lost its lease cannot undo another's work.
 */
export class SqlTaskConsumer {
  private session: Session | undefined;
  /** Why the database was last unreachable, while it still is: outages are logged once. */
  private outage: string | undefined;

  constructor(
    private readonly sql: SqlClient,
    private readonly settings: ConsumerSettings,
  ) {}

  /** Starts the poll loop; throws if one runs already (see SqlEmailQueue.consume). */
  consume(handler: TaskHandler): void {
    if (this.session) throw new Error('SqlEmailQueue: already consuming');
    let signalStop = (): void => undefined;
    const stopped = new Promise<void>((resolve) => (signalStop = resolve));
    const session: Session = {
      handler,
      deliveries: new Set(),
      stopping: false,
      stopped,
      signalStop,
      taking: undefined,
      again: false,
      backoffMs: 0,
      pollTimer: undefined,
      renewTimer: setInterval(() => void this.renew(session), this.settings.leaseMs / 3).unref(),
    };
    this.session = session;
    this.settings.logger?.info(
      { worker: this.settings.workerName, concurrency: this.settings.concurrency },
      'Consuming email tasks from the database',
    );
    this.wake();
  }

  /**
   * Ends the poll loop; see SqlEmailQueue.stop. A Redeliver whose send went out is asked again
   * until the grace period ends (any other goes back at once); what is still unrecorded then is
   * logged at error level by id.
   */
  async stop(graceMs: number): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    session.stopping = true;
    session.signalStop();
    clearTimeout(session.pollTimer);
    // One deadline for all: a take stuck on a database that does not answer must not stretch
    // the grace period. A take that lands after it gives its rows straight back (see take()).
    const grace = sleep(graceMs);
    await Promise.race([session.taking, grace]);
    const inFlight = [...session.deliveries];
    if (inFlight.length > 0) {
      await Promise.race([Promise.allSettled(inFlight.map((d) => d.done)), grace]);
    }
    clearInterval(session.renewTimer);
    const unfinished = [...session.deliveries];
    session.deliveries.clear();
    for (const delivery of unfinished) delivery.abandoned = true;
    const unrecorded = unfinished.filter((d) => d.sentUnrecorded).map((d) => d.emailId);
    const cut = unfinished.filter((d) => !d.sentUnrecorded).map((d) => d.emailId ?? 'unknown');
    reportStop(this.settings.logger, unrecorded, cut, graceMs);
    if (unfinished.length > 0) await this.release(unfinished);
  }

  /** Takes due tasks now, unless a take is under way (then once more right after it). */
  wake(): void {
    if (this.session) this.poll(this.session);
  }

  private poll(session: Session): void {
    if (session.stopping) return;
    if (session.taking) {
      session.again = true;
      return;
    }
    clearTimeout(session.pollTimer);
    session.again = false;
    session.taking = this.take(session)
      .catch((err: unknown) => {
        this.settings.logger?.error({ err: String(err) }, 'Bug in the task queue');
        session.backoffMs = this.settings.maxBackoffMs;
        return true;
      })
      .then((failed) => {
        session.taking = undefined;
        if (session.stopping) return;
        if (session.again && !failed) return this.poll(session);
        const waitMs = failed ? session.backoffMs : this.settings.pollIntervalMs;
        session.pollTimer = setTimeout(() => this.poll(session), waitMs).unref();
      });
  }

  /** One take of as many due tasks as there are free handler slots; true when it failed. */
  private async take(session: Session): Promise<boolean> {
    const { concurrency, leaseMs, workerName, pollIntervalMs, maxBackoffMs } = this.settings;
    const free = concurrency - session.deliveries.size;
    if (free <= 0) return false;
    let rows: readonly TaskRow[];
    try {
      rows = await this.run<TaskRow>(sql.takeDue(free, leaseMs, workerName));
    } catch (err) {
      this.unreachable(err);
      session.backoffMs = Math.min(Math.max(session.backoffMs * 2, pollIntervalMs), maxBackoffMs);
      return true;
    }
    this.reachable();
    session.backoffMs = 0;
    // stop() began while the take was under way: these rows are given straight back.
    if (session.stopping) {
      if (rows.length > 0) await this.release(rows);
      return false;
    }
    const ordered = [...rows].sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
    for (const row of ordered) this.deliver(session, row);
    return false;
  }

  private deliver(session: Session, row: TaskRow): void {
    const delivery: Delivery = {
      seq: row.seq,
      deliveries: row.deliveries,
      emailId: row.email_id,
      abandoned: false,
      sentUnrecorded: false,
      done: Promise.resolve(),
    };
    session.deliveries.add(delivery);
    delivery.done = this.work(session, delivery, row)
      .catch((err: unknown) =>
        this.settings.logger?.error(
          { emailId: row.email_id, err: String(err) },
          'Bug in the task queue',
        ),
      )
      .finally(() => {
        session.deliveries.delete(delivery);
        this.poll(session);
      });
  }

  private async work(session: Session, delivery: Delivery, row: TaskRow): Promise<void> {
    const headers = sql.rowHeaders(row);
    const decoded = decodeTask(Buffer.from(row.body), headers);
    if (E.isLeft(decoded)) {
      this.settings.logger?.warn(
        { emailId: row.email_id, reason: decoded.left },
        'Dead-lettering a task that does not decode',
      );
      const info = undecodable(headers, decoded.left);
      return this.settle(delivery, sql.moveToDeadLetters(delivery, info));
    }
    const task = decoded.right;
    const outcome = await this.decide(session, delivery, task);
    if (delivery.abandoned) return;
    if (E.isLeft(outcome)) {
      this.settings.logger?.warn(
        { emailId: task.request.id, attempt: task.attempt, err: String(outcome.left) },
        'Task handler failed; the task will be offered again',
      );
      // Longer each time the task was taken: a handler with a bug does not spin on it.
      const { redeliveryDelayMs, maxRedeliveryDelayMs } = this.settings;
      const delayMs = Math.min(
        redeliveryDelayMs * 2 ** Math.min(delivery.deliveries - 1, 10),
        maxRedeliveryDelayMs,
      );
      return this.settle(delivery, sql.releaseLater(delivery, delayMs));
    }
    return this.settle(delivery, this.carryOut(delivery, task, outcome.right));
  }

  /**
   * Runs the handler until it decides. A Redeliver (a store down) keeps the task here, leased,
   * and asks again after a growing pause, as the other queues do: the task neither spins nor
   * spends an attempt while the database the handler needs is away. Once stop() began, a
   * Redeliver goes back at once, unless its send went out: that one is asked until stop() gives
   * up on it. Left is a rejection (a bug).
   */
  private async decide(
    session: Session,
    delivery: Delivery,
    task: EmailTask,
  ): Promise<E.Either<unknown, Disposition>> {
    for (let earlier = 0; ; earlier += 1) {
      let disposition: Disposition;
      try {
        disposition = await session.handler(task);
      } catch (err) {
        return E.left(err);
      }
      const sent = sentButUnrecorded(disposition);
      delivery.sentUnrecorded = sent;
      const leaving = delivery.abandoned || (session.stopping && !sent);
      if (disposition._tag !== 'Redeliver' || leaving) return E.right(disposition);
      const pauseMs = redeliverPauseMs(this.settings.redeliveryDelayMs, earlier);
      // A stop ends the pause of a task that goes back; one whose send went out keeps its pace.
      await Promise.race(sent ? [sleep(pauseMs)] : [sleep(pauseMs), session.stopped]);
      if (delivery.abandoned || (session.stopping && !sent)) return E.right(disposition);
    }
  }

  private carryOut(take: Take, task: EmailTask, disposition: Disposition): Statement {
    switch (disposition._tag) {
      case 'Done':
        return sql.deleteTask(take);
      case 'Retry':
        return sql.scheduleRetry(
          take,
          disposition.attempt,
          disposition.history,
          withJitter(disposition.delayMs, this.settings.random),
        );
      case 'DeadLetter':
        return sql.moveToDeadLetters(take, {
          reason: disposition.reason,
          attempts: task.attempt,
          history: disposition.history,
        });
      case 'Redeliver':
        // Stopped while waiting for a store: the task goes back as it was, due now.
        return sql.releaseLeases([take], this.settings.workerName);
    }
  }

  /**
   * Carries out a disposition. While the database is unreachable the outcome is kept and tried
   * again (the lease is renewed meanwhile), so that an email that was sent is not sent again
   * just because its Done could not be written; stop() ends that wait.
   */
  private async settle(delivery: Delivery, statement: Statement): Promise<void> {
    const { logger, pollIntervalMs, maxBackoffMs, workerName } = this.settings;
    for (let waitMs = pollIntervalMs; !delivery.abandoned;) {
      try {
        const rows = await this.run(statement);
        this.reachable();
        if (rows.length === 0) {
          logger?.warn(
            { emailId: delivery.emailId, outcome: statement.what, worker: workerName },
            'The lease on this task ran out and another worker took it; this outcome is dropped',
          );
        }
        return;
      } catch (err) {
        if (!isConnectionError(err)) {
          logger?.error(
            { emailId: delivery.emailId, outcome: statement.what, reason: safeReason(err) },
            'Could not record a task outcome; the task will be offered again when its lease ends',
          );
          return;
        }
        this.unreachable(err);
        await sleep(waitMs);
        waitMs = Math.min(waitMs * 2, maxBackoffMs);
      }
    }
  }

  private async renew(session: Session): Promise<void> {
    const held = [...session.deliveries].filter((d) => !d.abandoned);
    if (held.length === 0) return;
    try {
      await this.run(sql.renewLeases(held, this.settings.leaseMs, this.settings.workerName));
      this.reachable();
    } catch (err) {
      this.unreachable(err);
    }
  }

  private async release(takes: readonly Take[]): Promise<void> {
    const { logger, leaseMs, workerName } = this.settings;
    try {
      const rows = await this.run(sql.releaseLeases(takes, workerName));
      logger?.info({ tasks: rows.length }, 'Gave unfinished tasks back to the queue');
    } catch (err) {
      logger?.warn(
        { tasks: takes.length, reason: safeReason(err), leaseMs },
        'Could not release the leases of unfinished tasks; they are taken again when they run out',
      );
    }
  }

  private run<Row>(statement: Statement): Promise<readonly Row[]> {
    return this.sql.query<Row>(statement.sql, statement.params);
  }

  private unreachable(err: unknown): void {
    if (this.outage !== undefined) return;
    this.outage = safeReason(err);
    this.settings.logger?.warn(
      { reason: this.outage },
      'The email task queue cannot reach its database; retrying with back-off',
    );
  }

  private reachable(): void {
    if (this.outage === undefined) return;
    this.outage = undefined;
    this.settings.logger?.info({}, 'The email task queue reaches its database again');
  }
}
