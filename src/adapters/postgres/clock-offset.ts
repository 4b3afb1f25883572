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

interface Sample extends OffsetBounds {
  /** When it was answered, in this process's monotonic milliseconds. */
  readonly at: number;
}

/**
 * What this process knows of another clock's offset from its own monotonic one (the database's
 * `clock_timestamp()` against `performance.now()`), from timed exchanges: Cristian's algorithm
 * (the remote reading was taken while the request was out), with the filter of recent samples
 * that NTP applies (RFC 5905 §8 for one exchange's offset and delay, §10 for the clock filter).
 *
 * An exchange sent at `sentMs` and answered at `answeredMs` (ours), whose answer carries the
 * remote clock's `remoteMs`, bounds the offset to `[remoteMs − answeredMs, remoteMs − sentMs]`
 * (the upper bound one remote tick more):
 * as wide as the exchange took, including any time the answer waited to be read (a pool
 * connection, a busy event loop). The bounds of every sample of the last OFFSET_WINDOW_MS are
 * intersected, so one prompt exchange narrows the estimate for the slow ones around it. The
 * window keeps a drift between the clocks out (100 ppm moves the offset 1 ms in 10 s); a sample
 * whose bounds do not meet the others' (a clock stepped) starts the estimate over from itself.
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
    const bounds = intersect(kept);
    this.samples = bounds === undefined ? [sample] : kept;
    this.bounds = bounds ?? { lo: sample.lo, hi: sample.hi };
    return this.bounds;
  }
}

/** The bounds every sample allows, or undefined when they allow none. */
function intersect(samples: readonly OffsetBounds[]): OffsetBounds | undefined {
  let lo = -Infinity;
  let hi = Infinity;
  for (const s of samples) {
    lo = Math.max(lo, s.lo);
    hi = Math.min(hi, s.hi);
  }
  return lo <= hi ? { lo, hi } : undefined;
}
