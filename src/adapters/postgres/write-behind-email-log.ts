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
import { sameEmailEvents, storeUnavailable } from '../../application/ports/email-log.js';
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
  /**
   * After a failed write, the wait before the next, in milliseconds (default 1000). Reads of
   * held emails within it do not write again: they go to the log as they are.
   */
  readonly retryMs?: number;
  /**
   * How long a request's writes may keep failing, from its first failure, before it is dropped
   * from memory and logged as an error with its id, in milliseconds (default 30,000). Its task is
   * on the queue already: the worker that takes it records it then (`SqlEmailLog.recordedBasis`).
   */
  readonly giveUpAfterMs?: number;
  readonly logger: Logger;
  /** Monotonic milliseconds (default `performance.now`): when a write first failed. */
  readonly monotonicMs?: () => number;
}

interface Waiting {
  readonly request: EmailRequest;
  /** When its first write failed (monotonic ms); undefined while none has. */
  failedSince: number | undefined;
  /** When its last write failed (monotonic ms); undefined while none has. */
  failedAt: number | undefined;
  /** Run once its write is over (written, or given up): see `afterWritten`. */
  readonly then: (() => void)[];
}

const DEFAULT_MAX_PENDING = 10_000;
const DEFAULT_RETRY_MS = 1000;
const DEFAULT_GIVE_UP_AFTER_MS = 30_000;

/**
 * An EmailLog whose `record` answers at once and writes behind: the requests recorded within
 * `delayMs` of each other are written together, after the caller went on. For `email server`
 * with `WRITE_BEHIND_MS`, where the accept path then answers `202` once the broker confirmed the
 * task, without a database round trip of its own (docs/architecture.md, "Write-behind").
 *
 * What it promises: the email is never lost, since its task is durable on the queue before the
 * `202`; this process reads its own writes (a read of an email it holds, and any list or count,
 * first has every held row written, unless a write failed less than `retryMs` ago); other
 * processes see the row `delayMs` later (plus the write's own time) while the log answers,
 * later while it does not, or, if this process died first or gave up, when a worker records it
 * from the task it sends. What must not reach other processes before the row can be read waits
 * for it (`afterWritten`). A stop (`close`) writes what is held.
 *
 * Every other method is the inner log's, once the email it names (or, for lists and counts,
 * every held email) is written.
 */
export class WriteBehindEmailLog implements EmailLog {
  /** Recorded, not yet handed to the inner log, by id, in the order recorded. */
  private held = new Map<EmailId, Waiting>();
  /** Handed to the inner log by the write in flight. */
  private readonly writing = new Map<EmailId, Waiting>();
  /** Ids `forget` asked for while being written: not held again if that write fails. */
  private readonly forgotten = new Set<EmailId>();
  private timer: NodeJS.Timeout | undefined;
  /** The write in flight, if any: one at a time. */
  private flight: Promise<void> | undefined;
  private closed = false;
  private readonly maxPending: number;
  private readonly retryMs: number;
  private readonly giveUpAfterMs: number;
  private readonly monotonicMs: () => number;

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
    this.giveUpAfterMs = options.giveUpAfterMs ?? DEFAULT_GIVE_UP_AFTER_MS;
    this.monotonicMs = options.monotonicMs ?? (() => performance.now());
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
      this.held.set(request.id, {
        request,
        failedSince: undefined,
        failedAt: undefined,
        then: [],
      });
      this.schedule(this.options.delayMs);
      return Promise.resolve(E.right(undefined));
    };
  }

  /**
   * Runs `action` once the row of email `id` is written (or given up), and answers true, when
   * this log holds it; answers false, running nothing, when it does not (written already, or
   * never recorded here). For what other processes must not hear of before they can read the
   * row: the server's events to the broker (the `requested` webhook reads the row).
   */
  afterWritten(id: EmailId, action: () => void): boolean {
    const waiting = this.held.get(id) ?? this.writing.get(id);
    if (waiting === undefined) return false;
    waiting.then.push(action);
    return true;
  }

  /**
   * A held email is dropped unwritten; one being written is deleted once it is, and not held
   * again if that write failed. Either way, what was to run after its write (`afterWritten`) is
   * dropped: the email never was.
   */
  forget(id: EmailId): TE.TaskEither<StoreUnavailable, void> {
    return async () => {
      if (this.held.delete(id)) return E.right(undefined);
      if (!this.writing.has(id)) return this.inner.forget(id)();
      this.forgotten.add(id);
      try {
        await this.flight;
      } finally {
        this.forgotten.delete(id);
      }
      return this.inner.forget(id)();
    };
  }

  apply(event: DomainEvent, basis?: Applied): TE.TaskEither<StoreUnavailable, Applied> {
    return async () => {
      await this.written(event.id);
      return this.inner.apply(event, basis)();
    };
  }

  applyAll(
    events: readonly DomainEvent[],
    basis?: Applied,
  ): TE.TaskEither<StoreUnavailable, readonly Applied[]> {
    const id = sameEmailEvents(events)[0].id;
    return async () => {
      await this.written(id);
      return this.inner.applyAll(events, basis)();
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
   * Writes every held request, trying up to three times `retryMs` apart (so about two seconds
   * at most, plus the writes' own time, when the database is away), then records through from
   * then on. Answers how many could not be written: each is logged as an error with its id, and
   * will be recorded by the worker that sends it.
   */
  async close(): Promise<number> {
    this.closed = true;
    this.cancelTimer();
    for (let round = 0; round < 3 && this.pending > 0; round += 1) {
      if (round > 0) await new Promise((resolve) => setTimeout(resolve, this.retryMs));
      if (this.flight !== undefined) await this.flight;
      await this.flushNow();
    }
    this.cancelTimer();
    const left = this.held;
    this.held = new Map();
    for (const waiting of left.values()) runAll(waiting.then);
    const lost = [...left.keys()];
    logIds(
      this.options.logger,
      lost,
      {},
      'Stopping with accepted emails not written to the email log: each is recorded by the worker that sends it',
    );
    return lost.length;
  }

  /**
   * Once `id` is neither held nor being written (written, or back to wait after a failure). A
   * held email is written now (with every other held one), unless its own last write failed
   * less than `retryMs` ago: then the read goes to the log as it is (and most likely finds it
   * away too), rather than counting as a retry of its own.
   */
  private async written(id: EmailId): Promise<void> {
    if (this.writing.has(id)) await this.flight;
    const waiting = this.held.get(id);
    if (waiting !== undefined && !this.backingOff(waiting)) await this.flushNow();
  }

  /** Once everything held when called has been tried (as `written`, for every held email). */
  private async writtenAll(): Promise<void> {
    if (this.flight !== undefined) await this.flight;
    for (const waiting of this.held.values()) {
      if (!this.backingOff(waiting)) return this.flushNow();
    }
  }

  private backingOff(waiting: Waiting): boolean {
    return waiting.failedAt !== undefined && this.monotonicMs() - waiting.failedAt < this.retryMs;
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
    const now = this.monotonicMs();
    [...batch].forEach(([id, waiting], i) => {
      this.writing.delete(id);
      const result = results[i]!;
      if (E.isRight(result)) return runAll(waiting.then);
      failed += 1;
      reason = result.left.reason;
      waiting.failedSince ??= now;
      waiting.failedAt = now;
      if (this.forgotten.has(id)) return;
      if (now - waiting.failedSince >= this.giveUpAfterMs) {
        dropped.push(id);
        return runAll(waiting.then);
      }
      // Back to wait for the next write (`record` adds no id that is being written).
      this.held.set(id, waiting);
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
    logIds(
      this.options.logger,
      dropped,
      { reason },
      'Gave up writing accepted emails to the email log: each is recorded by the worker that sends it',
    );
  }
}

/** Ids an error line names at most: a line stays readable, and every id is still logged. */
const IDS_PER_LINE = 100;

/**
 * Logs `message` at error level for `ids`, naming every one of them, `IDS_PER_LINE` a line
 * (`count` the whole number, `part` which line of how many), so that an operator can find each
 * email it concerns; nothing when there is none.
 */
function logIds(logger: Logger, ids: readonly string[], fields: object, message: string): void {
  const parts = Math.ceil(ids.length / IDS_PER_LINE);
  for (let part = 0; part < parts; part += 1) {
    const emailIds = ids.slice(part * IDS_PER_LINE, (part + 1) * IDS_PER_LINE);
    const numbered = parts > 1 ? { part: `${part + 1} of ${parts}` } : {};
    logger.error({ ...fields, count: ids.length, ...numbered, emailIds }, message);
  }
}

/** Runs each action; one that throws (a bug) does not keep the others from running. */
function runAll(actions: readonly (() => void)[]): void {
  for (const action of actions) {
    try {
      action();
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}
