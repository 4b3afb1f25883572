import * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { PaceSlot, SendPacer, SendRate } from '../../application/ports/send-pacer.js';
import { graceMs, slotMs, tokensLeft } from '../../application/ports/send-pacer.js';

/**
 * The pacer of one process, for unit tests and runs without a database: the same generic cell
 * rate algorithm as `SqlSendPacer` (and the same contract suite), the next free slot of each
 * transport kept in a map and timed by `nowMs` (monotonic milliseconds).
 */
export class InMemorySendPacer implements SendPacer {
  private readonly nextSlotAt = new Map<string, number>();

  constructor(
    /** Transport name → its rate; a transport not named here is not paced. */
    private readonly rates: Readonly<Record<string, SendRate>>,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  acquire(
    transport: string,
    withinMs: number,
    slots = 1,
  ): TE.TaskEither<StoreUnavailable, PaceSlot> {
    const rate = Object.hasOwn(this.rates, transport) ? this.rates[transport] : undefined;
    if (rate === undefined) return TE.right({ waitMs: 0, booked: true });
    return TE.fromIO(() => {
      const now = this.nowMs();
      const free = Math.max(this.nextSlotAt.get(transport) ?? now, now);
      const waitMs = free - now;
      const grace = graceMs(rate);
      if (waitMs > withinMs) {
        return { waitMs, booked: false, tokens: tokensLeft(rate, waitMs), graceMs: grace };
      }
      const end = free + slotMs(rate) * Math.max(1, Math.floor(slots));
      this.nextSlotAt.set(transport, end);
      return { waitMs, booked: true, tokens: tokensLeft(rate, end - now), graceMs: grace };
    });
  }
}
