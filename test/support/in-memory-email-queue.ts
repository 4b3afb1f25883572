// The in-memory queue with what only tests need of it, kept out of the class `email dev` runs.
import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import { InMemoryEmailQueue } from '../../src/adapters/memory/in-memory-email-queue.js';
import type { Headers } from '../../src/adapters/messaging/task-message.js';
import type { DeadLetter, ReplaySelector } from '../../src/application/ports/dead-letter-box.js';
import type { QueueUnavailable } from '../../src/application/ports/email-queue.js';
import { queueUnavailable } from '../../src/application/ports/email-queue.js';
import type { EmailRequest } from '../../src/domain/email-request.js';

export class TestInMemoryEmailQueue extends InMemoryEmailQueue {
  private unavailable: string | undefined;

  /** Bytes a broken or foreign publisher might have sent. */
  publishRaw(body: Buffer, headers: Headers = {}, messageId?: string): Promise<void> {
    this.enqueue({ body: Buffer.from(body), headers, messageId });
    return Promise.resolve();
  }

  /** Makes every operation answer QueueUnavailable, as a broker outage would, until undefined. */
  setUnavailable(reason: string | undefined): void {
    this.unavailable = reason;
  }

  /** Tasks waiting for a consumer (not those in flight or waiting out a retry delay). */
  depth(): number {
    return this.ready.length;
  }

  override publish(request: EmailRequest): TE.TaskEither<QueueUnavailable, void> {
    return this.unlessUnavailable(super.publish(request));
  }

  override list(): TE.TaskEither<QueueUnavailable, readonly DeadLetter[]> {
    return this.unlessUnavailable(super.list());
  }

  override replay(selector: ReplaySelector): TE.TaskEither<QueueUnavailable, number> {
    return this.unlessUnavailable(super.replay(selector));
  }

  override purge(): TE.TaskEither<QueueUnavailable, number> {
    return this.unlessUnavailable(super.purge());
  }

  // Decided when the operation runs, not when it is built, as with a broker.
  private unlessUnavailable<A>(
    operation: TE.TaskEither<QueueUnavailable, A>,
  ): TE.TaskEither<QueueUnavailable, A> {
    return () =>
      this.unavailable === undefined
        ? operation()
        : Promise.resolve(E.left(queueUnavailable(this.unavailable)));
  }
}
