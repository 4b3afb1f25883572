import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { deliveryLedgerContract } from '../../contracts/delivery-ledger.contract.js';
import { emailLogContract } from '../../contracts/email-log.contract.js';
import { idempotencyStoreContract } from '../../contracts/idempotency-store.contract.js';

// One process holds one in-memory store: "another process" is the same object here.
const nothingToClose = async (): Promise<void> => undefined;

emailLogContract('InMemoryEmailLog', async () => {
  const log = new InMemoryEmailLog();
  return { log, peer: log, close: nothingToClose };
});

idempotencyStoreContract('InMemoryIdempotencyStore', async () => {
  const store = new InMemoryIdempotencyStore();
  return { store, peer: store, close: nothingToClose };
});

deliveryLedgerContract('InMemoryDeliveryLedger', async () => {
  const ledger = new InMemoryDeliveryLedger();
  return { ledger, peer: ledger, close: nothingToClose };
});
