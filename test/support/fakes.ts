// Fakes of our own ports that record state, for use-case tests. Adapters have their own suites.
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { DeliveryEvents } from '../../src/application/ports/delivery-events.js';
import { storeUnavailable } from '../../src/application/ports/email-log.js';
import type { EmailQueue } from '../../src/application/ports/email-queue.js';
import { queueUnavailable } from '../../src/application/ports/email-queue.js';
import type { EmailSender } from '../../src/application/ports/email-sender.js';
import type { Clock, IdGenerator, Logger } from '../../src/application/ports/system.js';
import type { DeliveryOutcome } from '../../src/domain/delivery.js';
import type { EmailId, EmailRequest } from '../../src/domain/email-request.js';
import type { DomainEvent } from '../../src/domain/events.js';

export class RecordingQueue implements EmailQueue {
  readonly published: EmailRequest[] = [];
  down = false;
  publish(request: EmailRequest) {
    if (this.down) return TE.left(queueUnavailable('broker unreachable'));
    this.published.push(request);
    return TE.right(undefined);
  }
}

/** Records each event, then hands it to `sink` (a status projection, say) if one is given. */
export class RecordingEvents implements DeliveryEvents {
  readonly events: DomainEvent[] = [];
  constructor(private readonly sink?: (event: DomainEvent) => Promise<void>) {}
  publish(event: DomainEvent) {
    return async () => {
      this.events.push(event);
      await this.sink?.(event);
    };
  }
}

export class ScriptedSender implements EmailSender {
  readonly name = 'scripted';
  readonly sent: EmailRequest[] = [];
  constructor(private readonly outcomes: DeliveryOutcome[]) {}
  send(request: EmailRequest) {
    return async () => {
      this.sent.push(request);
      return this.outcomes.shift() ?? { _tag: 'Sent' as const, providerId: `<${request.id}@test>` };
    };
  }
}

export const fixedClock = (
  iso = '2026-11-28T10:00:00.000Z',
): Clock & { advance(ms: number): void } => {
  let now = new Date(iso).getTime();
  let mono = 0;
  return {
    now: () => new Date(now),
    monotonicMs: () => mono,
    advance(ms) {
      now += ms;
      mono += ms;
    },
  };
};

export const sequentialIds = (prefix = 'email'): IdGenerator => {
  let n = 0;
  return { next: () => `${prefix}-${String(++n).padStart(8, '0')}` as EmailId };
};

export interface LogLine {
  readonly level: 'info' | 'warn' | 'error';
  readonly fields: object;
  readonly message: string;
}

/** A Logger that keeps every line, so a test can read them (and search them for secrets). */
export class RecordingLogger implements Logger {
  readonly lines: LogLine[] = [];
  info(fields: object, message: string) {
    this.lines.push({ level: 'info', fields, message });
  }
  warn(fields: object, message: string) {
    this.lines.push({ level: 'warn', fields, message });
  }
  error(fields: object, message: string) {
    this.lines.push({ level: 'error', fields, message });
  }
  errors(): LogLine[] {
    return this.lines.filter((l) => l.level === 'error');
  }
  /** Every line, fields and message, as one searchable string. */
  text(): string {
    return JSON.stringify(this.lines);
  }
}

export const recordingLogger = (): RecordingLogger => new RecordingLogger();

/** Wraps a store so a test can take it down and bring it back: every call answers Left meanwhile. */
export function switchable<S extends object>(inner: S): { store: S; down: boolean } {
  const state = { down: false, store: inner };
  state.store = new Proxy(inner, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) =>
        state.down
          ? TE.left(storeUnavailable('the database is not reachable (test)'))
          : Reflect.apply(value, target, args);
    },
  });
  return state;
}
