import { pipe } from 'fp-ts/lib/function.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { EmailStatus } from '../domain/email-status.js';
import type { EmailUnconfirmed } from '../domain/events.js';
import { recordAndAnnounce } from './email-history.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { Clock } from './ports/system.js';

/**
 * The transports whose provider reports on every email it accepted (Mailgun's webhooks). SMTP and
 * the outbox never report, so silence from them means nothing and their emails are never flagged.
 */
export const REPORTING_TRANSPORTS: readonly string[] = ['mailgun'];

/** How much of the log one sweep goes through. */
export interface WatchOptions {
  /** Emails read and flagged at once. */
  readonly batchSize: number;
  /** Batches a sweep goes through at most; what is left waits for the next sweep. */
  readonly maxBatches: number;
}

/** 100 emails a batch, 10 batches a sweep: a sweep's writes stay short, and the next goes on. */
export const DEFAULT_WATCH_OPTIONS: WatchOptions = { batchSize: 100, maxBatches: 10 };

/**
 * The watchdog for silence: an email a reporting provider accepted, with no report on any
 * recipient within `deadlineMs` (milliseconds, `CONFIRM_DEADLINE`) of its send, gets
 * `EmailUnconfirmed` on its history, written to the email log and then announced (so `/metrics`
 * counts it). A provider that says yes and then nothing is an outage no peer notices.
 *
 * Several workers may sweep at once: the fold takes one note per email, so a second worker's
 * note is no news and is announced (and counted) nowhere.
 */
export class WatchConfirmations {
  private readonly change: ReturnType<typeof recordAndAnnounce>;

  constructor(
    private readonly emails: EmailLog,
    events: DeliveryEvents,
    private readonly clock: Clock,
    /** How long after its send an email may go without a report, in milliseconds. */
    readonly deadlineMs: number,
    private readonly options: WatchOptions = DEFAULT_WATCH_OPTIONS,
  ) {
    this.change = recordAndAnnounce(emails, events);
  }

  /**
   * Flags every email sent before now minus the deadline that still awaits a report (up to
   * `maxBatches` batches per transport); answers how many were flagged by this sweep.
   * `StoreUnavailable` when the log cannot be read or written: the next sweep tries again, and
   * what this one flagged before it stays flagged.
   */
  sweep(): TE.TaskEither<StoreUnavailable, number> {
    const now = this.clock.now();
    const cutoff = new Date(now.getTime() - this.deadlineMs);
    return pipe(
      REPORTING_TRANSPORTS.map((transport) => this.batches(transport, cutoff, now, 0)),
      TE.sequenceSeqArray,
      TE.map((counts) => counts.reduce((a, b) => a + b, 0)),
    );
  }

  /** One batch, and the next while batches come back full. */
  private batches(
    transport: string,
    cutoff: Date,
    now: Date,
    done: number,
  ): TE.TaskEither<StoreUnavailable, number> {
    const { batchSize, maxBatches } = this.options;
    return pipe(
      this.emails.unconfirmed(transport, cutoff, batchSize),
      TE.flatMap((candidates) =>
        pipe(
          candidates.map((status) => this.flag(status, transport, now)),
          TE.sequenceSeqArray,
          TE.map((news) => ({
            full: candidates.length === batchSize,
            flagged: news.filter((n) => n).length,
          })),
        ),
      ),
      TE.flatMap(({ full, flagged }) =>
        // A flagged email leaves the candidates, so the next batch reads the ones after it.
        full && done + 1 < maxBatches
          ? pipe(
              this.batches(transport, cutoff, now, done + 1),
              TE.map((more) => flagged + more),
            )
          : TE.right(flagged),
      ),
    );
  }

  /** Records the note on one email; true when it was news (not flagged meanwhile elsewhere). */
  private flag(
    status: EmailStatus,
    transport: string,
    now: Date,
  ): TE.TaskEither<StoreUnavailable, boolean> {
    const event: EmailUnconfirmed = {
      type: 'EmailUnconfirmed',
      id: status.id,
      at: now.toISOString(),
      to: status.to,
      ...(status.cc !== undefined ? { cc: status.cc } : {}),
      ...(status.bcc !== undefined ? { bcc: status.bcc } : {}),
      subject: status.subject,
      transport,
      deadlineMs: this.deadlineMs,
    };
    return pipe(
      this.change(event),
      TE.map((applied) => applied.changed),
    );
  }
}
