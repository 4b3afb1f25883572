import {
  InMemoryApiKeyStore,
  InMemoryOperatorStore,
  InMemorySessionStore,
} from '../../../src/adapters/memory/in-memory-auth-stores.js';
import { InMemoryAttachmentStore } from '../../../src/adapters/memory/in-memory-attachment-store.js';
import { InMemoryScheduledEmails } from '../../../src/adapters/memory/in-memory-scheduled-emails.js';
import { InMemorySuppressionList } from '../../../src/adapters/memory/in-memory-suppression-list.js';
import { InMemoryWebhookTokens } from '../../../src/adapters/memory/in-memory-webhook-tokens.js';
import {
  InMemoryWebhookDeliveries,
  InMemoryWebhookEndpoints,
} from '../../../src/adapters/memory/in-memory-webhook-stores.js';
import {
  InMemoryDeliveryLedger,
  InMemoryEmailLog,
  InMemoryIdempotencyStore,
} from '../../../src/adapters/memory/in-memory-stores.js';
import { memoryRateLimiter } from '../../../src/adapters/ratelimit/flexible-rate-limiter.js';
import { InMemoryTransportPauses } from '../../../src/adapters/memory/in-memory-transport-pauses.js';
import { InMemorySendPacer } from '../../../src/adapters/memory/in-memory-send-pacer.js';
import { transportPausesContract } from '../../contracts/transport-pauses.contract.js';
import { sendPacerContract } from '../../contracts/send-pacer.contract.js';
import { apiKeyStoreContract } from '../../contracts/api-key-store.contract.js';
import { attachmentStoreContract } from '../../contracts/attachment-store.contract.js';
import { deliveryLedgerContract } from '../../contracts/delivery-ledger.contract.js';
import { emailLogContract } from '../../contracts/email-log.contract.js';
import { idempotencyStoreContract } from '../../contracts/idempotency-store.contract.js';
import { operatorStoreContract } from '../../contracts/operator-store.contract.js';
import { rateLimiterContract } from '../../contracts/rate-limiter.contract.js';
import { scheduledEmailsContract } from '../../contracts/scheduled-emails.contract.js';
import { sessionStoreContract } from '../../contracts/session-store.contract.js';
import { suppressionListContract } from '../../contracts/suppression-list.contract.js';
import { webhookTokensContract } from '../../contracts/webhook-tokens.contract.js';
import { webhookEndpointsContract } from '../../contracts/webhook-endpoints.contract.js';
import { webhookDeliveriesContract } from '../../contracts/webhook-deliveries.contract.js';

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

apiKeyStoreContract('InMemoryApiKeyStore', async () => {
  const store = new InMemoryApiKeyStore();
  return { store, peer: store, close: nothingToClose };
});

// The session store is built on the operator store: its foreign key and its cascade.
const operatorsAndSessions = async () => {
  const operators = new InMemoryOperatorStore();
  const sessions = new InMemorySessionStore(operators);
  return { operators, sessions, peer: { operators, sessions }, close: nothingToClose };
};
operatorStoreContract('InMemoryOperatorStore', operatorsAndSessions);
sessionStoreContract('InMemorySessionStore', operatorsAndSessions);

// The attachments ask the email log which emails exist, as the SQL purge asks `emails`.
attachmentStoreContract('InMemoryAttachmentStore', async (clock) => {
  const emails = new InMemoryEmailLog();
  const store = new InMemoryAttachmentStore(emails, clock);
  return { store, peer: store, emails, close: nothingToClose };
});

scheduledEmailsContract('InMemoryScheduledEmails', async () => {
  const schedule = new InMemoryScheduledEmails();
  return { schedule, peer: schedule, close: nothingToClose };
});

suppressionListContract('InMemorySuppressionList', async () => {
  const list = new InMemorySuppressionList();
  return { list, peer: list, close: nothingToClose };
});

webhookTokensContract('InMemoryWebhookTokens', async () => {
  const tokens = new InMemoryWebhookTokens();
  return { tokens, peer: tokens, close: nothingToClose };
});

webhookEndpointsContract('InMemoryWebhookEndpoints', async () => {
  const endpoints = new InMemoryWebhookEndpoints();
  return { endpoints, peer: endpoints, close: nothingToClose };
});

webhookDeliveriesContract('InMemoryWebhookDeliveries', async () => {
  const deliveries = new InMemoryWebhookDeliveries();
  return { deliveries, peer: deliveries, close: nothingToClose };
});

transportPausesContract('InMemoryTransportPauses', async () => {
  const pauses = new InMemoryTransportPauses();
  return { pauses, peer: pauses, close: nothingToClose };
});

sendPacerContract('InMemorySendPacer', async () => ({
  pacers: (rates, peerRates) => {
    const pacer = new InMemorySendPacer(rates);
    return { pacer, peer: peerRates === undefined ? pacer : pacer.withRates(peerRates) };
  },
  close: nothingToClose,
}));

rateLimiterContract('memoryRateLimiter', async () => ({
  limiters: (settings) => {
    const limiter = memoryRateLimiter(settings);
    return { limiter, peer: limiter };
  },
  close: nothingToClose,
}));
