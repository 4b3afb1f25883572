// The three store contract suites on SQL clients, as the PostgreSQL and PGlite tests run them.
import { SqlDeliveryLedger } from '../../src/adapters/postgres/sql-delivery-ledger.js';
import type { SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { SqlEmailLog } from '../../src/adapters/postgres/sql-email-log.js';
import { SqlIdempotencyStore } from '../../src/adapters/postgres/sql-idempotency-store.js';
import { deliveryLedgerContract } from '../contracts/delivery-ledger.contract.js';
import { emailLogContract } from '../contracts/email-log.contract.js';
import { idempotencyStoreContract } from '../contracts/idempotency-store.contract.js';

/** Empties the stores' tables: a millisecond, against seconds for a new database. */
export const emptyStoreTables = (client: SqlClient): Promise<unknown> =>
  client.query('TRUNCATE emails, idempotency_keys, delivery_ledger');

const keepOpen = async (): Promise<void> => undefined;

/**
 * Registers the EmailLog, IdempotencyStore and DeliveryLedger contracts on `clients()`: each store
 * on `client`, its `peer` (a second process) on `peer`. Called at describe time; the clients are
 * read when a test runs, after the caller's `before` opened them.
 */
export function sqlStoreContracts(
  suffix: string,
  clients: () => { readonly client: SqlClient; readonly peer: SqlClient },
): void {
  const open = async () => {
    const both = clients();
    await emptyStoreTables(both.client);
    return both;
  };
  emailLogContract(`SqlEmailLog${suffix}`, async () => {
    const { client, peer } = await open();
    return { log: new SqlEmailLog(client), peer: new SqlEmailLog(peer), close: keepOpen };
  });
  idempotencyStoreContract(`SqlIdempotencyStore${suffix}`, async () => {
    const { client, peer } = await open();
    return {
      store: new SqlIdempotencyStore(client),
      peer: new SqlIdempotencyStore(peer),
      close: keepOpen,
    };
  });
  deliveryLedgerContract(`SqlDeliveryLedger${suffix}`, async () => {
    const { client, peer } = await open();
    return {
      ledger: new SqlDeliveryLedger(client),
      peer: new SqlDeliveryLedger(peer),
      close: keepOpen,
    };
  });
}
