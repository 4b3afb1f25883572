import type * as E from 'fp-ts/lib/Either.js';
import type { Task } from 'fp-ts/lib/Task.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { pipe } from 'fp-ts/lib/function.js';
import type { WebhookEventType } from '../domain/webhook.js';
import { wantedWebhookTypes } from '../domain/webhook.js';
import type { StoreUnavailable } from './ports/email-log.js';
import type { QueueUnavailable } from './ports/email-queue.js';
import type { WebhookEndpoints } from './ports/webhook-endpoints.js';
import type { WebhookEventRouting } from './ports/webhook-queue.js';

type Routed = E.Either<StoreUnavailable | QueueUnavailable, readonly WebhookEventType[]>;

/**
 * Has the webhook queue hear the changes the endpoints want, and only those (see
 * WebhookEventRouting): read from the endpoints store and applied whole, so any process may run
 * it at any time, and a run corrects whatever an earlier one left (a run that failed, one made
 * from an older read, an endpoint removed by a command that has no broker).
 */
export class RouteWebhookEvents {
  private running: Promise<Routed> | undefined;
  private next: Promise<Routed> | undefined;
  private lastRead: readonly WebhookEventType[] | undefined;

  constructor(
    private readonly endpoints: Pick<WebhookEndpoints, 'list'>,
    private readonly routing: WebhookEventRouting,
  ) {}

  /**
   * The types the endpoints wanted at the last read of the store (undefined before the first):
   * what a publisher may leave unannounced when no endpoint wants it.
   */
  get wanted(): readonly WebhookEventType[] | undefined {
    return this.lastRead;
  }

  /**
   * Routes as the store stands now; answers the types now heard. Runs of one instance never
   * overlap, or an older read applied last would undo a newer one: a call made during a run
   * waits for the next run, which starts after it and serves every call made meanwhile.
   */
  execute(): Task<Routed> {
    return () => {
      if (this.running === undefined) return this.start();
      this.next ??= this.running.then(() => {
        this.next = undefined;
        return this.start();
      });
      return this.next;
    };
  }

  private start(): Promise<Routed> {
    const run = this.once()().finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }

  private once(): TE.TaskEither<StoreUnavailable | QueueUnavailable, readonly WebhookEventType[]> {
    return pipe(
      this.endpoints.list(),
      TE.map((endpoints) => {
        this.lastRead = wantedWebhookTypes(endpoints.map((endpoint) => endpoint.events));
        return this.lastRead;
      }),
      TE.flatMap((types) =>
        pipe(
          this.routing.hearOnly(types),
          TE.map(() => types),
        ),
      ),
    );
  }
}
