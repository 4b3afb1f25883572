// The SQL queue with what only tests need of it, and the contract fixture built on any SqlClient
// (node-postgres here; the embedded engine's tests reuse it).
import type { Headers } from '../../src/adapters/messaging/task-message.js';
import type { SqlClient } from '../../src/adapters/postgres/sql-client.js';
import type { SqlEmailQueueOptions } from '../../src/adapters/postgres/sql-email-queue.js';
import { SqlEmailQueue } from '../../src/adapters/postgres/sql-email-queue.js';
import type { QueueFixture } from '../contracts/email-queue.contract.js';
import { CONTRACT_CONCURRENCY } from '../contracts/email-queue.contract.js';

export class TestSqlEmailQueue extends SqlEmailQueue {
  /** Bytes a broken or foreign publisher might have stored. */
  publishRaw(body: Buffer, headers: Headers = {}, messageId?: string): Promise<void> {
    return this.store({ body: Buffer.from(body), headers, messageId });
  }
}

/** Empties both queue tables: the contract's cases each start from an empty queue. */
export const emptyQueueTables = (client: SqlClient): Promise<unknown> =>
  client.query('TRUNCATE email_tasks, email_dead_letters');

/**
 * A contract fixture on `client` (a migrated database): the tables are emptied first, and the
 * queue is polled fast so that the suite does not wait on the poll interval. `close` stops the
 * consumer; the client stays open (it belongs to the caller).
 */
export async function sqlQueueFixture(
  client: SqlClient,
  options: Partial<SqlEmailQueueOptions> = {},
): Promise<QueueFixture & { readonly queue: TestSqlEmailQueue }> {
  await emptyQueueTables(client);
  const queue = new TestSqlEmailQueue(client, {
    concurrency: CONTRACT_CONCURRENCY,
    pollIntervalMs: 100,
    ...options,
  });
  return {
    queue,
    source: queue,
    dead: queue,
    publishRaw: (body, headers) => queue.publishRaw(body, headers),
    close: () => queue.stop(0),
  };
}
