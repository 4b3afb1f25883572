import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { DomainEvent } from '../domain/events.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { Applied, EmailLog, StoreUnavailable } from './ports/email-log.js';

/**
 * Writes a change to the email log, the source of truth, and only then announces it on the
 * event bus, and only if it was news: a redelivered task or a repeated event changes nothing
 * and is not counted twice by anything listening. `basis`: see `EmailLog.apply`. `onApplied`
 * hears the log's answer as soon as it is written, before the announcement (the worker keeps
 * it as the basis of the email's next change): a caller needs no layer of its own around this.
 */
export const recordAndAnnounce =
  (
    emails: EmailLog,
    events: DeliveryEvents,
    onApplied?: (event: DomainEvent, applied: Applied) => void,
  ) =>
  (event: DomainEvent, basis?: Applied): TE.TaskEither<StoreUnavailable, Applied> => {
    const applying = emails.apply(event, basis);
    // An async function rather than a pipeline: every change of every email passes here.
    return async () => {
      const applied = await applying();
      if (E.isRight(applied)) {
        onApplied?.(event, applied.right);
        if (applied.right.changed) await events.publish(event)();
      }
      return applied;
    };
  };

/**
 * `recordAndAnnounce` for changes known together (every event of one email): folded in one
 * write (`EmailLog.applyAll`), then each event that was news announced, in order. `onApplied`
 * hears the last event and the log's answer for it, the basis of the email's next change.
 */
export const recordAllAndAnnounce =
  (
    emails: EmailLog,
    events: DeliveryEvents,
    onApplied?: (event: DomainEvent, applied: Applied) => void,
  ) =>
  (changes: readonly DomainEvent[], basis?: Applied): TE.TaskEither<StoreUnavailable, Applied> => {
    const applying = emails.applyAll(changes, basis);
    return async () => {
      const applied = await applying();
      if (E.isLeft(applied)) return applied;
      const answers = applied.right;
      const last = answers[answers.length - 1]!;
      onApplied?.(changes[changes.length - 1]!, last);
      for (const [i, answer] of answers.entries()) {
        if (answer.changed) await events.publish(changes[i]!)();
      }
      return E.right(last);
    };
  };
