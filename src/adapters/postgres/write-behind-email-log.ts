import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type {
  Applied,
  EmailCountQuery,
  EmailLog,
  EmailPage,
  EmailQuery,
  InvalidCursor,
  StatusCounts,
  StoreUnavailable,
} from '../../application/ports/email-log.js';
import { storeUnavailable } from '../../application/ports/email-log.js';
import type { Logger } from '../../application/ports/system.js';
import type { EmailId, EmailRequest } from '../../domain/email-request.js';
import type { EmailStatus } from '../../domain/email-status.js';
import type { DomainEvent } from '../../domain/events.js';
import type { Option } from 'fp-ts/lib/Option.js';

export interface WriteBehindOptions {
  /**
   * The longest an accepted request waits in memory before its row is sent to the log, in
   * milliseconds (1 to 1000). Every request recorded in that span goes in the same write (for
   * SqlEmailLog, one multi-row INSERT of up to 200 rows, its Batcher's cap).
   */
  readonly delayMs: number;
  /**
   * The most requests held unwritten, those being written included; past it `record` answers
   * StoreUnavailable (the client hears 503) until writes succeed again. Default 10,000: at most
   * a few MB, and several seconds of the fastest accept rate measured.
   */
  readonly maxPending?: number;
  /** After a failed write, the wait before the next, in milliseconds (default 1000). */
  readonly retryMs?: number;
  /**
   * Failed writes a request survives before it is dropped from memory, logged as an error with
   * its id (default 30: half a minute of retries at the default `retryMs`). Its task is on the
   * queue already: the worker that takes it records it then (`SqlEmailLog.recordedBasis`).
   */
  readonly maxWriteAttempts?: number;
  readonly logger: Logger;
}

interface Waiting {
  readonly request: EmailRequest;
  /** Failed writes so far. */
  failures: number;
}

const DEFAULT_MAX_PENDING = 10_000;
const DEFAULT_RETRY_MS = 1000;
const DEFAULT_MAX_WRITE_ATTEMPTS = 30;

/**
 * An EmailLog whose `record` answers at once and writes behind: the requests recorded within
 * `delayMs` of each other are written together, after the caller went on. For `email server`
 * with `WRITE_BEHIND_MS`, where the accept path then answers `202` once the broker confirmed the
 * task, without a database round trip of its own (docs/architecture.md, "Write-behind").
 *
 * What it promises: the email is never lost, since its task is durable on the queue before the
 * `202`; this process reads its own writes (a read of an email it holds, and any list or count,
 * first waits for the held rows to be written); other processes see the row at most `delayMs`
 * later (plus the write's own time), or, if this process died first, when a worker records it
 * from the task it sends. A stop (`close`) writes what is held.
 *
 * Every other method is the inner log's, once the email it names (or, for lists and counts,
 * every held email) is written.
 */
export class WriteBehindEmailLog implements EmailLog {
  /** Recorded, not yet handed to the inner log, by id, in the order recorded. */
  private held = new Map<EmailId, Waiting>();
  /** Handed to the inner log by the write in flight. */
  private readonly writing = new Map<EmailId, Waiting>();
  private timer: NodeJS.Timeout | undefined;
  /** The write in flight, if any: one at a time. */
  private flight: Promise<void> | undefined;
  private closed = false;
  private readonly maxPending: number;
  private readonly retryMs: number;
  private readonly maxWriteAttempts: number;

  /** Throws (a wiring bug) for a `delayMs` outside 1 to 1000 or a `maxPending` below 1. */
  constructor(
    private readonly inner: EmailLog,
    private readonly options: WriteBehindOptions,
  ) {
    const { delayMs } = options;
    if (!Number.isInteger(delayMs) || delayMs < 1 || delayMs > 1000) {
      throw new Error(`delayMs must be a whole number from 1 to 1000, got ${delayMs}`);
    }
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
    if (!Number.isInteger(this.maxPending) || this.maxPending < 1) {
      throw new Error(`maxPending must be a positive whole number, got ${this.maxPending}`);
    }
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.maxWriteAttempts = options.maxWriteAttempts ?? DEFAULT_MAX_WRITE_ATTEMPTS;
  }

  /** Requests recorded and not yet written (those being written included): for /metrics. */
  get pending(): number {
    return this.held.size + this.writing.size;
  }

  /**
   * Right at once, the request held to be written within `delayMs`; StoreUnavailable when
   * `maxPending` requests are held already (the log has been failing for a while). Written
   * through (awaited), as the inner log would: after `close`, and a request to be sent later
   * (`sendAt`), which no task carries until it is released from the database, from its row.
   */
  record(request: EmailRequest): TE.TaskEither<StoreUnavailable, void> {
    return () => {
      if (this.closed || request.sendAt !== undefined) return this.inner.record(request)();
      if (this.held.has(request.id) || this.writing.has(request.id)) {
        // Recording an id already recorded changes nothing (EmailLog.record).
        return Promise.resolve(E.right(undefined));
      }
      if (this.pending >= this.maxPending) {
        return Promise.resolve(
          E.left(
            storeUnavailable(
              `${this.pending} accepted emails are waiting to be written to the email log`,
            ),
          ),
        );
      }
      this.held.set(request.id, { request, failures: 0 });
      this.schedule(this.options.delayMs);
      return Promise.resolve(E.right(undefined));
    };
  }

  /** A held email is dropped unwritten; one being written is deleted once it is. */
  forget(id: EmailId): TE.TaskEither<StoreUnavailable, void> {
    return async () => {
      if (this.held.delete(id)) return E.right(undefined);
      await this.written(id);
      return this.inner.forget(id)();
    };
  }

  apply(event: DomainEvent, basis?: Applied): TE.TaskEither<StoreUnavailable, Applied> {
    return async () => {
      await this.written(event.id);
      return this.inner.apply(event, basis)();
    };
  }

  recordedBasis(request: EmailRequest): Applied | undefined {
    return this.inner.recordedBasis(request);
  }

  get(id: EmailId): TE.TaskEither<StoreUnavailable, Option<EmailStatus>> {
    return async () => {
      await this.written(id);
      return this.inner.get(id)();
    };
  }

  request(id: EmailId): TE.TaskEither<StoreUnavailable, Option<EmailRequest>> {
    return async () => {
      await this.written(id);
      return this.inner.request(id)();
    };
  }

  list(query: EmailQuery): TE.TaskEither<StoreUnavailable | InvalidCursor, EmailPage> {
    return async () => {
      await this.writtenAll();
      return this.inner.list(query)();
    };
  }

  countByStatus(query: EmailCountQuery): TE.TaskEither<StoreUnavailable, StatusCounts> {
    return async () => {
      await this.writtenAll();
      return this.inner.countByStatus(query)();
    };
  }

  purgeOlderThan(cutoff: Date, batchSize: number): TE.TaskEither<StoreUnavailable, number> {
    return async () => {
      await this.writtenAll();
      return this.inner.purgeOlderThan(cutoff, batchSize)();
    };
  }

  unconfirmed(
    transport: string,
    sentBefore: Date,
    limit: number,
  ): TE.TaskEither<StoreUnavailable, readonly EmailStatus[]> {
    return async () => {
      await this.writtenAll();
      return this.inner.unconfirmed(transport, sentBefore, limit)();
    };
  }

  /**
   * Writes every held request (retrying a failed write a few times, `retryMs` apart), then
   * records through from then on. Answers how many could not be written: each is logged as an
   * error with its id, and will be recorded by the worker that sends it.
   */
  async close(): Promise<number> {
    this.closed = true;
    this.cancelTimer();
    for (let round = 0; round < 3 && this.pending > 0; round += 1) {
      if (round > 0) await new Promise((resolve) => setTimeout(resolve, this.retryMs));
      await this.writtenAll();
    }
    this.cancelTimer();
    const lost = [...this.held.keys()];
    this.held.clear();
    if (lost.length > 0) {
      this.options.logger.error(
        { count: lost.length, emailIds: lost.slice(0, 100) },
        'Stopping with accepted emails not written to the email log: each is recorded by the worker that sends it',
      );
    }
    return lost.length;
  }

  /** Once `id` is neither held nor being written (written, or back to wait after a failure). */
  private async written(id: EmailId): Promise<void> {
    if (this.writing.has(id)) await this.flight;
    if (this.held.has(id)) await this.flushNow();
  }

  /** Once everything held when called has been tried. */
  private async writtenAll(): Promise<void> {
    if (this.flight !== undefined) await this.flight;
    if (this.held.size > 0) await this.flushNow();
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flushNow();
    }, delayMs);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Starts a write of everything held (after the one in flight) and settles when it has. */
  private async flushNow(): Promise<void> {
    while (this.flight !== undefined) await this.flight;
    if (this.held.size === 0) return;
    this.cancelTimer();
    const flight = this.flush();
    this.flight = flight;
    try {
      await flight;
    } finally {
      this.flight = undefined;
    }
  }

  /** Hands every held request to the inner log at once, so that they go in one write. */
  private async flush(): Promise<void> {
    const batch = this.held;
    this.held = new Map();
    for (const [id, waiting] of batch) this.writing.set(id, waiting);
    const results = await Promise.all(
      [...batch.values()].map((waiting) => this.inner.record(waiting.request)()),
    );
    let failed = 0;
    let reason = '';
    const dropped: EmailId[] = [];
    [...batch].forEach(([id, waiting], i) => {
      this.writing.delete(id);
      const result = results[i]!;
      if (E.isRight(result)) return;
      failed += 1;
      reason = result.left.reason;
      waiting.failures += 1;
      // Back to wait for the next write (`record` adds no id that is being written).
      if (waiting.failures >= this.maxWriteAttempts) dropped.push(id);
      else this.held.set(id, waiting);
    });
    if (failed > 0) {
      this.options.logger.warn(
        { failed, held: this.held.size, reason },
        'Could not write accepted emails to the email log; trying again',
      );
      if (this.held.size > 0) this.schedule(this.retryMs);
    } else if (this.held.size > 0) {
      this.schedule(this.options.delayMs);
    }
    if (dropped.length > 0) {
      this.options.logger.error(
        { count: dropped.length, emailIds: dropped.slice(0, 100), reason },
        'Gave up writing accepted emails to the email log: each is recorded by the worker that sends it',
      );
    }
  }
}
