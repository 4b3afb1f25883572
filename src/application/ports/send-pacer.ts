import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from './email-log.js';

/** A provider's limit, as MAILGUN_RATE and SMTP_RATE give it: `limit` sends per `windowMs`. */
export interface SendRate {
  /** Sends per window: a whole number, at least 1. */
  readonly limit: number;
  /** The window, in milliseconds (1000 for `N/s`, 60000 for `N/min`, 3600000 for `N/h`). */
  readonly windowMs: number;
}

/**
 * How far under the rate the pacer keeps, as a fraction. A send leaves at its slot but reaches
 * the provider some milliseconds later, more or less (the event loop, a cold connection, the
 * network): spaced exactly at the rate, a late send followed by prompt ones would put `limit + 1`
 * sends in one of the provider's windows. 10% under leaves a tenth of a window (100 ms at `20/s`)
 * for that spread: a quarter of it for a send to leave late (`graceMs`), the rest for the way.
 */
export const PACING_MARGIN = 0.1;

/**
 * The time between two sends at `rate`, in milliseconds (fractional): the window spread evenly
 * over its sends, plus PACING_MARGIN. No bursts: `20/s` is one send every 55 ms, never twenty
 * at once, so no window of the provider's, wherever it starts, sees more than `limit`.
 */
export const slotMs = (rate: SendRate): number =>
  // In whole percent, so that 2/s is 550 ms and not 550.0000000000001.
  (rate.windowMs * Math.round(100 * (1 + PACING_MARGIN))) / (100 * rate.limit);

/**
 * The least grace a send is given, in milliseconds, whatever its rate. A worker cannot time a
 * send finer than its event loop and timers do (a millisecond at best, several on a busy
 * machine): with a grace of one slot at a very high rate (1.1 ms at `1000/s`) nearly every send
 * would miss its slot, book another and miss that too, and nothing would go. Ten milliseconds is
 * a tenth of the margin (`windowMs × PACING_MARGIN`, 100 ms for a rate per second), so sends
 * leaving that late still put at most `limit` in any window of the provider's.
 */
export const MIN_GRACE_MS = 10;

/**
 * How late after its slot a send may still leave, in milliseconds. Sends that reach the provider
 * between 0 and `s` milliseconds after their slots put at most `limit` in any of its windows as
 * long as `s` stays under `windowMs × PACING_MARGIN`; a quarter of that is for leaving late, the
 * rest for the way to the provider. No more than one slot, so a late send does not land on the
 * next one (a provider may count in finer windows than its rate says), except that it is never
 * under MIN_GRACE_MS (rates above about 110/s, whose slots are shorter than a worker can time).
 * At `20/s`: 25 ms; at `1000/s`: 10 ms.
 */
export const graceMs = (rate: SendRate): number =>
  Math.max(MIN_GRACE_MS, Math.min(slotMs(rate), (rate.windowMs * PACING_MARGIN) / 4));

/**
 * The most room, in milliseconds, that the extra slots of a booking of several (`acquire`'s
 * `slots`) add after its own slot. They are room for a send expected to reach the provider late
 * (a process's first send, opening its connection: 60 to 100 ms later than the sends after it, in
 * the process tests); at a low rate a whole extra slot would throw away far more than that (11 s
 * at `6/min`, an hour at `1/h`) at every worker start.
 */
export const MAX_EXTRA_ROOM_MS = 100;

/**
 * How long a booking of `slots` slots at `rate` holds the transport, in (fractional)
 * milliseconds: one slot, plus the others up to MAX_EXTRA_ROOM_MS in all.
 */
export const bookingMs = (rate: SendRate, slots = 1): number =>
  slotMs(rate) + Math.min((Math.max(1, Math.floor(slots)) - 1) * slotMs(rate), MAX_EXTRA_ROOM_MS);

/**
 * How far ahead (milliseconds from now) a next free slot must be before a pacer at `rate`, whose
 * callers wait at most `withinMs`, takes it as booked at another, slower rate: further than any
 * booking at this rate can reach (`withinMs`, plus one slot, plus the most `bookingMs` adds) and
 * than the booking a stale slot is replaced by (`withinMs` plus two slots), so that neither a
 * cold start's extra room nor the replacement itself is ever taken for stale, which would let
 * every caller book the same slot.
 */
export const staleBeyondMs = (rate: SendRate, withinMs: number): number =>
  withinMs + 2 * slotMs(rate) + MAX_EXTRA_ROOM_MS;

/**
 * The sends still free in the coming window at `rate`, when the next free slot is `aheadMs`
 * (milliseconds) from now: `limit` when nothing is booked, 0 when a whole window is booked ahead.
 * What `email_pacing_tokens` shows, as a token bucket of `limit` tokens would.
 */
export const tokensLeft = (rate: SendRate, aheadMs: number): number =>
  Math.max(0, Math.min(rate.limit, rate.limit - Math.ceil(Math.max(0, aheadMs) / slotMs(rate))));

/** The pacer's answer for one send. */
export interface PaceSlot {
  /** Milliseconds to wait before sending (0: now); when not `booked`, until a slot may be free. */
  readonly waitMs: number;
  /**
   * True when a slot was booked for this send: it goes after `waitMs`. False when the next free
   * slot is further than the caller would wait: nothing was booked (a slot booked and not used
   * would leave a hole in the pace), and the caller asks again after `waitMs`.
   */
  readonly booked: boolean;
  /** `tokensLeft` after this answer; absent for a transport without a rate. */
  readonly tokens?: number;
  /**
   * `graceMs` of the transport's rate: a booked send that cannot leave within this many
   * milliseconds after its slot must not leave on it (its worker was held up) and books another.
   * Absent for a transport without a rate.
   */
  readonly graceMs?: number;
  /**
   * How much earlier than `waitMs` after the answer the slot is known to begin, as of the call,
   * in milliseconds (0 or more), when the store's clock is not this process's: a slot that had
   * begun before its answer was read (`waitMs` is then 0), and one that later exchanges with the
   * store placed more exactly on this process's clock (`SqlSendPacer`). A send counts it as
   * lateness against `graceMs` when it leaves. Absent: always 0.
   */
  readonly earlierByMs?: () => number;
}

/**
 * Keeps each transport's sends to its rate (MAILGUN_RATE, SMTP_RATE) across every worker: one
 * slot per send, booked in turn where every worker sees it, spaced `slotMs` apart (a generic cell
 * rate algorithm: the store keeps, per transport, the time the next slot is free). A transport
 * without a rate is answered at once (`{ waitMs: 0, booked: true }`), without a store call.
 */
export interface SendPacer {
  /**
   * Books the next slot of `transport` if it comes within `withinMs` milliseconds, and says how
   * long to wait for it; otherwise books nothing and says how long until one may be free.
   * `slots` (default 1) books that many in a row for one send, which leaves on the first: the
   * others stay empty, room for a send expected to reach the provider late, at most
   * MAX_EXTRA_ROOM_MS of it (`bookingMs`).
   *
   * The next free slot the store keeps may have been booked at another rate (a rate corrected
   * from `1/h` to `20/s`, workers restarted with it). One further ahead than this rate could
   * have booked (`staleBeyondMs`) is taken as `withinMs` plus one of its slots away, and booked
   * (so its wait may be up to one slot more than `withinMs`): every send booked before it leaves
   * within `withinMs` of its booking, so one slot after that is still a slot after the last of
   * them, and the corrected rate holds from its first send. Every worker
   * asks with the same `withinMs` (MAX_WAIT_IN_HAND_MS), or slots one booked further ahead than
   * another would wait could be taken as stale by that other.
   */
  acquire(
    transport: string,
    withinMs: number,
    slots?: number,
  ): TaskEither<StoreUnavailable, PaceSlot>;
}

/**
 * What pacing shows on /metrics; the worker's metrics implement it. Each method is told about
 * this process's sends only.
 */
export interface PacingObserver {
  /**
   * A pacing decision made a send wait `waitMs` milliseconds for `transport` (its pace or its
   * pause): in the worker before it went, or in the queue, handed back because the wait was long.
   * Told once per decision, not once per send: a task handed back several times is told each
   * time, with the whole wait still to go then.
   */
  pacingWaited(transport: string, waitMs: number): void;
  /**
   * The sends still free in `transport`'s coming window, as the pacer last answered; told only
   * when this process books, so it is not refilled while the process is idle.
   */
  pacingTokens(transport: string, tokens: number): void;
  /** `transport` answered a send with `throttled`. */
  transportThrottled(transport: string): void;
  /** `transport` is paused until `until`, as this process last learnt. */
  transportPaused(transport: string, until: Date): void;
}
