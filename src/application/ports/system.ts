import type { EmailId } from '../../domain/email-request.js';

export interface Clock {
  now(): Date;
  /** A monotonic reading in milliseconds, for durations that must not jump with the wall clock. */
  monotonicMs(): number;
}

export interface IdGenerator {
  next(): EmailId;
}

/** Structured logging as the core needs it; pino satisfies it as it is. */
export interface Logger {
  info(fields: object, message: string): void;
  /**
   * False when lines of `level` are dropped (pino's own method): a caller on a hot path skips
   * building them. Absent: every level is written.
   */
  isLevelEnabled?(level: 'info' | 'warn' | 'error'): boolean;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}
