import * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { PaceSlot, SendPacer, SendRate } from '../../application/ports/send-pacer.js';
import {
  bookingMs,
  graceMs,
  slotMs,
  staleBeyondMs,
  tokensLeft,
} from '../../application/ports/send-pacer.js';
import type { Clock } from '../../application/ports/system.js';
import { systemClock } from '../system/system.js';
import { ClockOffset } from './clock-offset.js';
import type { SqlClient } from './sql-client.js';
import { attempt } from './sql-client.js';

/**
 * Books the next slot of one transport in one statement. `$2` is the length booked (one slot, or
 * several in a row: `bookingMs`), `$3` how far ahead the caller would wait and `$4` one slot at
 * the caller's rate, all in (fractional) milliseconds. The upsert locks the transport's row, so
 * concurrent workers book one after another, each from the end the previous one left; a slot
 * further than `$3` is not booked (the `WHERE` of `DO UPDATE` leaves the row as it was and
 * returns nothing). A next free slot further than `$5` (`staleBeyondMs`) cannot have been booked
 * at the caller's rate (a rate since corrected, see `SendPacer.acquire`): it is taken as
 * `$3 + $4` away and booked, so that a slot booked at the old rate does not hold the new one
 * back; the booking then ends within `$5`, so the next caller is not taken in by it. Times are
 * the database's `clock_timestamp()`, read when the row is locked, so a worker that waited for
 * the lock is not given a slot in its past, and the workers' wall clocks play no part. A booking
 * comes back with the database's clock as it returned (epoch milliseconds) and the slot's end
 * from that same reading, which ties the slot to the worker's clock (`ClockOffset`) whatever
 * order the rest is read in. The main query reads the row as it was before (a data-modifying
 * CTE's change is not visible to it): how far away the next free slot was when nothing was
 * booked, and the clock once more for that case.
 */
const BOOK_SLOT = `
WITH booked AS (
  INSERT INTO send_pacing AS p (transport, next_slot_at)
  VALUES ($1::text, clock_timestamp() + $2::float8 * interval '1 millisecond')
  ON CONFLICT (transport) DO UPDATE
     SET next_slot_at = greatest(
           least(
             p.next_slot_at,
             clock_timestamp() + ($3::float8 + $4::float8) * interval '1 millisecond'
           ),
           clock_timestamp()
         ) + $2::float8 * interval '1 millisecond'
   WHERE p.next_slot_at <= clock_timestamp() + $3::float8 * interval '1 millisecond'
      OR p.next_slot_at > clock_timestamp() + $5::float8 * interval '1 millisecond'
  RETURNING p.next_slot_at, clock_timestamp() AS read_at
)
SELECT
  (SELECT (1000 * extract(epoch FROM b.next_slot_at - b.read_at))::float8 FROM booked b)
    AS booked_end_ms,
  (SELECT (1000 * extract(epoch FROM b.read_at))::float8 FROM booked b) AS booked_read_at,
  (SELECT (1000 * extract(epoch FROM s.next_slot_at - clock_timestamp()))::float8
     FROM send_pacing s WHERE s.transport = $1::text)
    AS free_in_ms,
  (1000 * extract(epoch FROM clock_timestamp()))::float8 AS read_at`;

interface BookingRow {
  /** Milliseconds from `booked_read_at` to the end of the slot booked; null when none was. */
  readonly booked_end_ms: number | null;
  /** The database's clock once the slot was booked, in epoch milliseconds; null: none was. */
  readonly booked_read_at: number | null;
  /** Milliseconds from now to the next free slot, as it was before this statement. */
  readonly free_in_ms: number | null;
  /** The database's clock while the statement ran, in epoch milliseconds. */
  readonly read_at: number;
}

/**
 * The pacer of every worker on the database: `send_pacing` holds, per transport with a rate, the
 * time its next slot is free (a generic cell rate algorithm, with no burst). rate-limiter-flexible,
 * which counts the API's requests, is not used here: its windows are fixed (a burst at the end of
 * one and the start of the next puts up to twice the limit in one second), timed by each worker's
 * clock, and a refused request books nothing, so waiting workers could only poll.
 */
export class SqlSendPacer implements SendPacer {
  /**
   * The database's clock against this process's, from every booking's exchange; its tick is
   * PGlite's whole millisecond, which is also more than enough for PostgreSQL's microsecond.
   */
  private readonly offset = new ClockOffset(1);

  constructor(
    private readonly sql: SqlClient,
    /** Transport name → its rate; a transport not named here is not paced. */
    private readonly rates: Readonly<Record<string, SendRate>>,
    /** The clock whose `monotonicMs` the caller waits out `waitMs` on: the app's, by default. */
    private readonly clock: Pick<Clock, 'monotonicMs'> = systemClock,
  ) {}

  acquire(
    transport: string,
    withinMs: number,
    slots = 1,
  ): TE.TaskEither<StoreUnavailable, PaceSlot> {
    const rate = Object.hasOwn(this.rates, transport) ? this.rates[transport] : undefined;
    if (rate === undefined) return TE.right({ waitMs: 0, booked: true });
    const slot = bookingMs(rate, slots);
    return attempt(async (): Promise<PaceSlot> => {
      const sentMs = this.clock.monotonicMs();
      const [row] = await this.sql.query<BookingRow>(BOOK_SLOT, [
        transport,
        slot,
        withinMs,
        slotMs(rate),
        staleBeyondMs(rate, withinMs),
      ]);
      const answeredMs = this.clock.monotonicMs();
      if (row === undefined) throw new Error('the booking statement returned no row');
      // The slot is in the database's time. Counted from when its answer was read, a slow answer
      // (a busy event loop, a wait for a pool connection) would put the send that much after its
      // slot, into the next ones' at the provider: it is placed on this process's clock instead,
      // at the latest it can be (never early), and placed again as later exchanges narrow that.
      const read = row.booked_read_at ?? row.read_at;
      const { lo } = this.offset.observe(sentMs, answeredMs, read);
      const grace = graceMs(rate);
      if (row.booked_end_ms !== null) {
        // The least time since the database read its clock, by the estimate: 0, give or take a
        // rounding of epoch milliseconds, when this exchange gave the least offset.
        const sinceRead = Math.max(0, answeredMs - (read - lo));
        // Where the slot begins, in milliseconds from the answer; negative when it had begun
        // (the answer read late, or the slot was the database's "now" when booked).
        const startsIn = row.booked_end_ms - slot - sinceRead;
        const overrun = Math.max(0, -startsIn);
        // A higher least offset puts every time of the database's earlier here by as much.
        const earlierByMs = () => overrun + Math.max(0, (this.offset.current?.lo ?? lo) - lo);
        return {
          waitMs: Math.max(0, startsIn),
          booked: true,
          tokens: tokensLeft(rate, row.booked_end_ms),
          graceMs: grace,
          earlierByMs,
        };
      }
      // A row another worker inserted while this statement ran is not in its snapshot; one a
      // worker at a slower rate had booked far ahead is no further than this rate would book.
      // Nothing was booked: this is only when to ask again, so the database's reading will do.
      const freeIn = Math.min(
        Math.max(row.free_in_ms ?? slot, withinMs + 1),
        withinMs + slotMs(rate),
      );
      return { waitMs: freeIn, booked: false, tokens: tokensLeft(rate, freeIn), graceMs: grace };
    });
  }
}
