export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive transient outcomes that open the circuit. */
  readonly failureThreshold: number;
  /** How long an open circuit skips its sender before letting one probe through. */
  readonly coolDownMs: number;
}

export const DEFAULT_BREAKER: BreakerOptions = { failureThreshold: 5, coolDownMs: 30_000 };

/**
 * One sender's circuit: closed → open after `failureThreshold` consecutive transient outcomes →
 * after `coolDownMs`, half-open: exactly one send (the probe) goes through while the others
 * still skip it; the probe's success closes the circuit, its failure opens it again. Time is
 * read from the injected monotonic clock, so tests control it and wall-clock jumps do not.
 */
export class CircuitBreaker {
  private state: BreakerState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private probing = false;

  constructor(
    private readonly options: BreakerOptions,
    private readonly nowMs: () => number,
  ) {}

  /** Whether a send may go through now; in half-open, true once, for the probe. */
  tryAcquire(): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open' && this.nowMs() - this.openedAt >= this.options.coolDownMs) {
      this.state = 'half-open';
      this.probing = false;
    }
    if (this.state === 'half-open' && !this.probing) {
      this.probing = true;
      return true;
    }
    return false;
  }

  /** The sender answered (sent or permanent): it is up. Returns the state it left. */
  onSuccess(): BreakerState {
    const before = this.state;
    this.state = 'closed';
    this.failures = 0;
    this.probing = false;
    return before;
  }

  /** The sender answered transient. Returns true when this failure opened the circuit. */
  onFailure(): boolean {
    this.failures += 1;
    this.probing = false;
    if (this.state === 'half-open' || this.failures >= this.options.failureThreshold) {
      const opened = this.state !== 'open';
      this.state = 'open';
      this.openedAt = this.nowMs();
      return opened;
    }
    return false;
  }

  /**
   * The send `tryAcquire` let through never reached the sender (the worker stopped first): no
   * news either way. A probe's place goes to the next send.
   */
  onNotStarted(): void {
    this.probing = false;
  }

  /** What /readyz shows: an open circuit whose cool-down is over reads as half-open. */
  current(): BreakerState {
    if (this.state === 'open' && this.nowMs() - this.openedAt >= this.options.coolDownMs) {
      return 'half-open';
    }
    return this.state;
  }

  /** Milliseconds until an open circuit lets a probe through; 0 when it would now. */
  remainingMs(): number {
    if (this.state !== 'open') return 0;
    return Math.max(0, this.openedAt + this.options.coolDownMs - this.nowMs());
  }
}
