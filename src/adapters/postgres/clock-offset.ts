/** Bounds on another clock's offset from this process's: `remote − local`, in milliseconds. */
export interface OffsetBounds {
  /** The least the offset can be: a remote time maps to at most `remote − lo` here. */
  readonly lo: number;
  /** The most the offset can be: a remote time maps to at least `remote − hi` here. */
  readonly hi: number;
}

/** How long a sample narrows the estimate, in milliseconds (see `ClockOffset`). */
export const OFFSET_WINDOW_MS = 10_000;

/** The most samples kept within OFFSET_WINDOW_MS; the oldest go first. */
export const OFFSET_SAMPLES = 64;

/**
 * How fast the two clocks are assumed to drift apart at most, as a fraction (500 ppm): the most
 * the kernel's NTP discipline sets a clock's frequency off (Linux `MAXFREQ`,
 * `include/uapi/linux/timex.h`). An assumption, not a guarantee: a clock slewed harder (chrony
 * can slew far faster) or stepped by less than the bounds' width can go unseen for up to
 * OFFSET_WINDOW_MS. On one host both clocks are the same clock, and nothing drifts. A sample's
 * bounds widen by this much of its age, as NTP grows a sample's dispersion with its age
 * (RFC 5905 §10, by `PHI`), so an old sample cannot hold the estimate where the clocks no longer
 * are.
 */
export const MAX_DRIFT = 500e-6;

interface Sample extends OffsetBounds {
  /** When it was answered, in this process's monotonic milliseconds. */
  readonly at: number;
}

/**
 * What this process knows of another clock's offset from its own monotonic one (the database's
 * `clock_timestamp()` against `performance.now()`), from timed exchanges: Cristian's algorithm
 * (the remote reading was taken while the request was out), each exchange an interval the offset
 * lies in, and the intervals intersected (the intersection that Marzullo's algorithm and NTP's
 * selection of sources, RFC 5905 §11.2.1, build on; a sample that does not meet the others is
 * not outvoted here, it starts the estimate over).
 *
 * An exchange sent at `sentMs` and answered at `answeredMs` (ours), whose answer carries the
 * remote clock's `remoteMs`, bounds the offset to `[remoteMs − answeredMs, remoteMs − sentMs]`
 * (the upper bound one remote tick more, `tickMs`): as wide as the exchange took, including any
 * time the answer waited to be read (a pool connection, a busy event loop). The bounds of every
 * sample of the last OFFSET_WINDOW_MS, each widened by MAX_DRIFT of its age, are intersected, so
 * one prompt exchange narrows the estimate for the slow ones around it. A sample whose bounds do
 * not meet the others' (a clock stepped) starts the estimate over from itself.
 *
 * `lo` is where a remote time is placed at the latest: `remote − lo` here is never before the
 * remote time, as long as the clocks drift apart no faster than MAX_DRIFT. It is later than the
 * remote time by the least time, over the recent exchanges, from the remote reading to this
 * process reading the answer: a constant for one process with a steady way to the database.
 */
export class ClockOffset {
  private samples: Sample[] = [];
  private bounds: OffsetBounds | undefined;

  constructor(
    /**
     * The remote clock's tick, in milliseconds: a reading may be up to this much behind the time
     * it was taken (PGlite's `clock_timestamp()` reads whole milliseconds; PostgreSQL's,
     * microseconds). Without it, two prompt exchanges could seem not to meet.
     */
    private readonly tickMs = 0,
  ) {}

  /** The offset's bounds as the last `observe` left them; undefined before the first. */
  get current(): OffsetBounds | undefined {
    return this.bounds;
  }

  /**
   * Takes one exchange (`sentMs`, `answeredMs`: this process's monotonic milliseconds; `remoteMs`:
   * the remote clock's reading, in its milliseconds) and returns the offset's bounds as they now
   * stand. `answeredMs` before `sentMs` is a bug and throws.
   */
  observe(sentMs: number, answeredMs: number, remoteMs: number): OffsetBounds {
    if (answeredMs < sentMs) throw new RangeError('an exchange answered before it was sent');
    const sample: Sample = {
      lo: remoteMs - answeredMs,
      hi: remoteMs + this.tickMs - sentMs,
      at: answeredMs,
    };
    const kept = this.samples.filter((s) => s.at > answeredMs - OFFSET_WINDOW_MS);
    kept.push(sample);
    if (kept.length > OFFSET_SAMPLES) kept.splice(0, kept.length - OFFSET_SAMPLES);
    const bounds = intersect(kept, answeredMs);
    this.samples = bounds === undefined ? [sample] : kept;
    this.bounds = bounds ?? { lo: sample.lo, hi: sample.hi };
    return this.bounds;
  }
}

/** The bounds every sample allows at `nowMs`, each widened by its age; undefined for none. */
function intersect(samples: readonly Sample[], nowMs: number): OffsetBounds | undefined {
  let lo = -Infinity;
  let hi = Infinity;
  for (const s of samples) {
    const drift = (nowMs - s.at) * MAX_DRIFT;
    lo = Math.max(lo, s.lo - drift);
    hi = Math.min(hi, s.hi + drift);
  }
  return lo <= hi ? { lo, hi } : undefined;
}
