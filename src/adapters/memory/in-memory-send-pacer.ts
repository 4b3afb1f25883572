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

/**
 * The pacer of one process, for unit tests and runs without a database: the same generic cell
 * rate algorithm as `SqlSendPacer` (and the same contract suite), the next free slot of each
 * transport kept in a map and timed by `nowMs` (monotonic milliseconds).
 */
export class InMemorySendPacer implements SendPacer {
  constructor(
    /** Transport name → its rate; a transport not named here is not paced. */
    private readonly rates: Readonly<Record<string, SendRate>>,
    private readonly nowMs: () => number = () => performance.now(),
    /** Transport → its next free slot (`nowMs` time), shared with `withRates`' pacers. */
    private readonly nextSlotAt = new Map<string, number>(),
  ) {}

  /**
   * Another worker's pacer on the same slots, with its own rates (a worker started with a
   * corrected rate, in tests).
   */
  withRates(rates: Readonly<Record<string, SendRate>>): InMemorySendPacer {
    return new InMemorySendPacer(rates, this.nowMs, this.nextSlotAt);
  }

  acquire(
    transport: string,
    withinMs: number,
    slots = 1,
  ): TE.TaskEither<StoreUnavailable, PaceSlot> {
    const rate = Object.hasOwn(this.rates, transport) ? this.rates[transport] : undefined;
    if (rate === undefined) return TE.right({ waitMs: 0, booked: true });
    return TE.fromIO(() => {
      const now = this.nowMs();
      const stored = this.nextSlotAt.get(transport) ?? now;
      // Further than this rate could have booked: booked at another, slower one (see `acquire`).
      const stale = stored > now + staleBeyondMs(rate, withinMs);
      const free = stale ? now + withinMs + slotMs(rate) : Math.max(stored, now);
      const waitMs = free - now;
      const grace = graceMs(rate);
      if (waitMs > withinMs && !stale) {
        return { waitMs, booked: false, tokens: tokensLeft(rate, waitMs), graceMs: grace };
      }
      const end = free + bookingMs(rate, slots);
      this.nextSlotAt.set(transport, end);
      return { waitMs, booked: true, tokens: tokensLeft(rate, end - now), graceMs: grace };
    });
  }
}
