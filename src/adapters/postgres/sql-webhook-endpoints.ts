import * as O from 'fp-ts/lib/Option.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type {
  SigningWebhookEndpoint,
  WebhookEndpoint,
  WebhookEndpoints,
} from '../../application/ports/webhook-endpoints.js';
import type { WebhookEventType } from '../../domain/webhook.js';
import { WEBHOOK_EVENT_TYPES } from '../../domain/webhook.js';
import type { SqlClient } from './sql-client.js';
import { StoreFault, attempt } from './sql-client.js';
import { Batcher } from './batcher.js';

interface EndpointRow {
  readonly id: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly created_at: Date;
}

interface SigningEndpointRow extends EndpointRow {
  readonly secret: string;
}

const isEventType = (s: string): s is WebhookEventType =>
  WEBHOOK_EVENT_TYPES.some((type) => type === s);

function toEndpoint(row: EndpointRow): WebhookEndpoint {
  const events = [...row.events];
  if (!events.every(isEventType)) {
    throw new StoreFault('a stored webhook endpoint has an unknown event type');
  }
  return { id: row.id, url: row.url, events, createdAt: new Date(row.created_at) };
}

const toSigningEndpoint = (row: SigningEndpointRow): SigningWebhookEndpoint => ({
  ...toEndpoint(row),
  secret: row.secret,
});

/** Oldest first, ties by id (its bytes: the column is "C"), as the in-memory store orders them. */
const OLDEST_FIRST = 'ORDER BY created_at, id';

/**
 * The webhook endpoints in `webhook_endpoints`, one row per endpoint, its event filter a text
 * array (empty for every type). Each call is one statement. The secret is read only by the calls
 * that answer it (`subscribedTo`, `get`): `list` never selects it.
 */
export class SqlWebhookEndpoints implements WebhookEndpoints {
  /**
   * The fan-out's lookups of one event-loop turn in one statement (`Batcher`, `concurrent`): a worker hears
   * events in bursts, and each asks which endpoints want its type. Each caller is answered the
   * rows its own type selects, in the same order.
   */
  private readonly subscriptions: Batcher<WebhookEventType, readonly SigningEndpointRow[]>;

  constructor(private readonly sql: SqlClient) {
    this.subscriptions = new Batcher<WebhookEventType, readonly SigningEndpointRow[]>({
      write: async (types) => {
        const rows = await this.sql.query<SigningEndpointRow>(
          `SELECT id, url, events, secret, created_at FROM webhook_endpoints
            WHERE cardinality(events) = 0 OR events && $1::text[]
            ${OLDEST_FIRST}`,
          [[...new Set(types)]],
        );
        return types.map((type) =>
          rows.filter((row) => row.events.length === 0 || row.events.includes(type)),
        );
      },
      concurrent: true,
      maxBatch: 100,
    });
  }

  /** A taken id is StoreUnavailable (a bug in whoever drew it); the first endpoint stays. */
  add(endpoint: SigningWebhookEndpoint): TE.TaskEither<StoreUnavailable, void> {
    return attempt(async () => {
      const rows = await this.sql.query(
        `INSERT INTO webhook_endpoints (id, url, events, secret, created_at)
         VALUES ($1, $2, $3::text[], $4, $5::timestamptz)
         ON CONFLICT (id) DO NOTHING RETURNING id`,
        [
          endpoint.id,
          endpoint.url,
          [...endpoint.events],
          endpoint.secret,
          endpoint.createdAt.toISOString(),
        ],
      );
      if (rows.length === 0) throw new StoreFault('a webhook endpoint with this id exists');
    });
  }

  remove(id: string): TE.TaskEither<StoreUnavailable, boolean> {
    return attempt(async () => {
      const rows = await this.sql.query(
        'DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id',
        [id],
      );
      return rows.length > 0;
    });
  }

  list(): TE.TaskEither<StoreUnavailable, readonly WebhookEndpoint[]> {
    return attempt(async () => {
      const rows = await this.sql.query<EndpointRow>(
        `SELECT id, url, events, created_at FROM webhook_endpoints ${OLDEST_FIRST}`,
      );
      return rows.map(toEndpoint);
    });
  }

  subscribedTo(
    type: WebhookEventType,
  ): TE.TaskEither<StoreUnavailable, readonly SigningWebhookEndpoint[]> {
    return attempt(async () => (await this.subscriptions.run(type)).map(toSigningEndpoint));
  }

  get(id: string): TE.TaskEither<StoreUnavailable, O.Option<SigningWebhookEndpoint>> {
    return attempt(async () => {
      const rows = await this.sql.query<SigningEndpointRow>(
        'SELECT id, url, events, secret, created_at FROM webhook_endpoints WHERE id = $1',
        [id],
      );
      const row = rows[0];
      return row === undefined ? O.none : O.some(toSigningEndpoint(row));
    });
  }
}
