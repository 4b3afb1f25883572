// The store contract suites on SQL clients, as the PostgreSQL and PGlite tests run them, and
// what the SQL stores promise beyond their ports.
import { expect } from 'chai';
import { sqlRateLimiter } from '../../src/adapters/ratelimit/flexible-rate-limiter.js';
import { SqlApiKeyStore } from '../../src/adapters/postgres/sql-api-key-store.js';
import { SqlAttachmentStore } from '../../src/adapters/postgres/sql-attachment-store.js';
import { SqlDeliveryLedger } from '../../src/adapters/postgres/sql-delivery-ledger.js';
import type { QueryOptions, SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { SqlEmailLog } from '../../src/adapters/postgres/sql-email-log.js';
import { WriteBehindEmailLog } from '../../src/adapters/postgres/write-behind-email-log.js';
import { SqlIdempotencyStore } from '../../src/adapters/postgres/sql-idempotency-store.js';
import { SqlOperatorStore } from '../../src/adapters/postgres/sql-operator-store.js';
import { SqlScheduledEmails } from '../../src/adapters/postgres/sql-scheduled-emails.js';
import { SqlSessionStore } from '../../src/adapters/postgres/sql-session-store.js';
import { SqlSuppressionList } from '../../src/adapters/postgres/sql-suppression-list.js';
import { SqlWebhookDeliveries } from '../../src/adapters/postgres/sql-webhook-deliveries.js';
import { SqlWebhookEndpoints } from '../../src/adapters/postgres/sql-webhook-endpoints.js';
import { SqlWebhookTokens } from '../../src/adapters/postgres/sql-webhook-tokens.js';
import { SqlTransportPauses } from '../../src/adapters/postgres/sql-transport-pauses.js';
import { SqlSendPacer } from '../../src/adapters/postgres/sql-send-pacer.js';
import type { SendRate } from '../../src/application/ports/send-pacer.js';
import { slotMs } from '../../src/application/ports/send-pacer.js';
import { transportPausesContract } from '../contracts/transport-pauses.contract.js';
import { sendPacerContract } from '../contracts/send-pacer.contract.js';
import { apiKeyStoreContract } from '../contracts/api-key-store.contract.js';
import { attachmentStoreContract } from '../contracts/attachment-store.contract.js';
import { deliveryLedgerContract } from '../contracts/delivery-ledger.contract.js';
import { emailLogContract } from '../contracts/email-log.contract.js';
import { idempotencyStoreContract } from '../contracts/idempotency-store.contract.js';
import { operatorStoreContract } from '../contracts/operator-store.contract.js';
import { rateLimiterContract } from '../contracts/rate-limiter.contract.js';
import { scheduledEmailsContract } from '../contracts/scheduled-emails.contract.js';
import { sessionStoreContract } from '../contracts/session-store.contract.js';
import { suppressionListContract } from '../contracts/suppression-list.contract.js';
import { webhookDeliveriesContract } from '../contracts/webhook-deliveries.contract.js';
import { webhookEndpointsContract } from '../contracts/webhook-endpoints.contract.js';
import { webhookTokensContract } from '../contracts/webhook-tokens.contract.js';
import { right } from '../contracts/email-log.contract.js';
import { recordingLogger } from './fakes.js';
import { sleep } from './waiting.js';

/** Empties the stores' tables: a millisecond, against seconds for a new database. */
export const emptyStoreTables = (client: SqlClient): Promise<unknown> =>
  client.query(
    `TRUNCATE emails, idempotency_keys, delivery_ledger,
              api_keys, api_key_addresses, operators, sessions, rate_limits,
              attachments, email_attachments, scheduled_emails, suppressions,
              webhook_tokens, webhook_endpoints, webhook_deliveries, webhook_jobs,
              transport_pauses, send_pacing`,
  );

const keepOpen = async (): Promise<void> => undefined;

/**
 * Registers every SQL store's contract (and the rate limiter's) on `clients()`: each store on
 * `client`, its `peer` (a second process) on `peer`. Called at describe time; the clients are
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
  // The server's log with WRITE_BEHIND_MS: it reads its own writes, so the same contract holds.
  emailLogContract(`WriteBehindEmailLog over SqlEmailLog${suffix}`, async () => {
    const { client, peer } = await open();
    const log = new WriteBehindEmailLog(new SqlEmailLog(client), {
      delayMs: 20,
      logger: recordingLogger(),
    });
    return {
      log,
      peer: new SqlEmailLog(peer),
      close: async () => void (await log.close()),
    };
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
  apiKeyStoreContract(`SqlApiKeyStore${suffix}`, async () => {
    const { client, peer } = await open();
    return { store: new SqlApiKeyStore(client), peer: new SqlApiKeyStore(peer), close: keepOpen };
  });
  const operatorsAndSessions = async () => {
    const { client, peer } = await open();
    return {
      operators: new SqlOperatorStore(client),
      sessions: new SqlSessionStore(client),
      peer: { operators: new SqlOperatorStore(peer), sessions: new SqlSessionStore(peer) },
      close: keepOpen,
    };
  };
  operatorStoreContract(`SqlOperatorStore${suffix}`, operatorsAndSessions);
  sessionStoreContract(`SqlSessionStore${suffix}`, operatorsAndSessions);
  attachmentStoreContract(`SqlAttachmentStore${suffix}`, async (clock) => {
    const { client, peer } = await open();
    // Purge batches of two: the suite's purges then take several statements.
    return {
      store: new SqlAttachmentStore(client, clock, 2),
      peer: new SqlAttachmentStore(peer, clock, 2),
      emails: new SqlEmailLog(client),
      close: keepOpen,
    };
  });
  scheduledEmailsContract(`SqlScheduledEmails${suffix}`, async () => {
    const { client, peer } = await open();
    return {
      schedule: new SqlScheduledEmails(client),
      peer: new SqlScheduledEmails(peer),
      close: keepOpen,
    };
  });
  suppressionListContract(`SqlSuppressionList${suffix}`, async () => {
    const { client, peer } = await open();
    return {
      list: new SqlSuppressionList(client),
      peer: new SqlSuppressionList(peer),
      close: keepOpen,
    };
  });
  webhookTokensContract(`SqlWebhookTokens${suffix}`, async () => {
    const { client, peer } = await open();
    return {
      tokens: new SqlWebhookTokens(client),
      peer: new SqlWebhookTokens(peer),
      close: keepOpen,
    };
  });
  webhookEndpointsContract(`SqlWebhookEndpoints${suffix}`, async () => {
    const { client, peer } = await open();
    return {
      endpoints: new SqlWebhookEndpoints(client),
      peer: new SqlWebhookEndpoints(peer),
      close: keepOpen,
    };
  });
  webhookDeliveriesContract(`SqlWebhookDeliveries${suffix}`, async () => {
    const { client, peer } = await open();
    return {
      deliveries: new SqlWebhookDeliveries(client),
      peer: new SqlWebhookDeliveries(peer),
      close: keepOpen,
    };
  });
  transportPausesContract(`SqlTransportPauses${suffix}`, async () => {
    const { client, peer } = await open();
    return {
      pauses: new SqlTransportPauses(client),
      peer: new SqlTransportPauses(peer),
      close: keepOpen,
    };
  });
  sendPacerContract(`SqlSendPacer${suffix}`, async () => {
    const { client, peer } = await open();
    return {
      pacers: (rates, peerRates) => ({
        pacer: new SqlSendPacer(client, rates),
        peer: new SqlSendPacer(peer, peerRates ?? rates),
      }),
      close: keepOpen,
    };
  });
  sqlSendPacerClock(suffix, open);
  rateLimiterContract(`sqlRateLimiter${suffix}`, async () => {
    const { client, peer } = await open();
    return {
      limiters: (settings) => ({
        limiter: sqlRateLimiter(client, settings),
        peer: sqlRateLimiter(peer, settings),
      }),
      close: keepOpen,
    };
  });
}

/**
 * SqlSendPacer's own promise, beyond the port's: its slots are in the database's time, and a
 * booking whose answer is read late is not sent that much late.
 */
function sqlSendPacerClock(
  suffix: string,
  open: () => Promise<{ readonly client: SqlClient }>,
): void {
  describe(`SqlSendPacer${suffix} on this process's clock`, function () {
    this.timeout(20_000);

    /**
     * A client on `client` whose statements are held `hold.before` ms before they reach the
     * database (a wait for a pool connection) and whose answers are held `hold.ms` after it gave
     * them (a busy event loop).
     */
    const slowed = (client: SqlClient) => {
      const hold = { ms: 0, before: 0 };
      const slow: SqlClient = {
        query: async <Row>(text: string, params?: readonly unknown[], options?: QueryOptions) => {
          if (hold.before > 0) await sleep(hold.before);
          const rows = await client.query<Row>(text, params, options);
          if (hold.ms > 0) await sleep(hold.ms);
          return rows;
        },
        transaction: (work) => client.transaction(work),
      };
      return { slow, hold };
    };
    const rate = { limit: 1, windowMs: 1000 }; // a slot every 1100 ms

    /**
     * A pacer on `client` whose clock readings (`performance.now()`) are kept: when its slot is
     * here and how long its exchange took are computed from the readings it took itself, not from
     * the test's own, which a busy machine (a collection, another test file on the other core)
     * can put milliseconds after them.
     */
    const pacerOn = (client: SqlClient, rates: Readonly<Record<string, SendRate>>) => {
      const readings: number[] = [];
      const pacer = new SqlSendPacer(client, rates, {
        monotonicMs: () => {
          const t = performance.now();
          readings.push(t);
          return t;
        },
      });
      return { pacer, readings };
    };

    /**
     * Acquires, and says when the slot is here and how long the exchange took (monotonic ms, from
     * the two readings the pacer takes per booking: before its statement and once it answered).
     */
    const book = async ({ pacer, readings }: ReturnType<typeof pacerOn>, transport = 'mailgun') => {
      const before = readings.length;
      const slot = await right(pacer.acquire(transport, 5000));
      const returned = performance.now();
      expect(readings, 'two clock readings per booking').to.have.length(before + 2);
      const [sent, answered] = readings.slice(-2) as [number, number];
      // The wait counts from the pacer's last reading: a pacer that read its clock and then did
      // more (another statement) would send that much late, where the caller reads its clock
      // after the call. A busy machine puts a few milliseconds here, not a hundred.
      expect(returned - answered, 'from the last reading to the answer').to.be.below(100);
      expect(slot.booked).to.equal(true);
      return { slot, goesAt: answered + slot.waitMs, tookMs: answered - sent };
    };

    it('waits as much less as its answer was read late: a slot is where the database put it', async () => {
      const { client } = await open();
      const { slow, hold } = slowed(client);
      const pacer = pacerOn(slow, { mailgun: rate });
      const first = await book(pacer);
      hold.ms = 400;
      const second = await book(pacer);
      // The database put the second slot 1100 ms after the first. The first was placed here
      // within its prompt exchange; the second, read 400 ms late, is placed by the first's clock
      // reading, not 400 ms later (two milliseconds more either way: PGlite's clock reads whole
      // milliseconds).
      const apart = second.goesAt - first.goesAt;
      expect(apart).to.be.at.most(slotMs(rate) + 2);
      expect(apart).to.be.at.least(slotMs(rate) - first.tookMs - 2);
    });

    it('never places a slot early: a statement that waited before reaching the database', async () => {
      const { client } = await open();
      const first = await book(pacerOn(client, { mailgun: rate }));
      // Another worker's pacer, whose only exchange waited 400 ms for a connection: the database
      // read its clock at the end of that exchange, not the start, as far as this worker knows.
      const { slow, hold } = slowed(client);
      hold.before = 400;
      const second = await book(pacerOn(slow, { mailgun: rate }));
      // The second slot is 1100 ms after the first at the database; the first was placed at
      // most its prompt exchange's time late, the second is never placed before its slot.
      expect(second.goesAt - first.goesAt).to.be.at.least(slotMs(rate) - first.tookMs - 2);
    });

    it('counts the part of a slot that had gone by when its answer was read', async () => {
      const { client } = await open();
      const { slow, hold } = slowed(client);
      const pacer = pacerOn(slow, { mailgun: rate, smtp: rate });
      const prompt = await book(pacer);
      hold.ms = 100;
      // Nothing booked on smtp: its slot begins when the database books it, and its answer is
      // read 100 ms later. It cannot be waited for; that it began earlier is reported instead.
      const late = await book(pacer, 'smtp');
      expect(late.slot.waitMs).to.equal(0);
      const earlier = late.slot.earlierByMs?.() ?? 0;
      expect(earlier).to.be.at.least(100 - prompt.tookMs - 1);
      expect(earlier).to.be.at.most(late.tookMs + 1);
    });

    it('places a slot booked on a late answer earlier once a prompt exchange shows the clocks', async () => {
      const { client } = await open();
      const { slow, hold } = slowed(client);
      const pacer = pacerOn(slow, { mailgun: rate });
      hold.ms = 400;
      const late = await book(pacer);
      const before = late.slot.earlierByMs?.() ?? 0;
      hold.ms = 0;
      const prompt = await book(pacer);
      // By itself, the late answer looks on time, or nearly (the database's time from booking to
      // reading its clock again): its exchange is all the pacer knows of the clocks. Its slot
      // may be up to that whole exchange earlier than placed; the prompt exchange shows it is
      // at least the 400 ms hold earlier, less that exchange's own time.
      expect(before).to.be.below(50);
      const earlier = late.slot.earlierByMs?.() ?? 0;
      expect(earlier).to.be.at.least(400 - prompt.tookMs - 1);
      expect(earlier).to.be.at.most(late.tookMs + 1);
    });
  });
}
