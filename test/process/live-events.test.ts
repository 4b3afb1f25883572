// A server's live pages on RabbitMQ: a server hears the workers' events only while one of its
// pages is open. With none open, no event is routed to it (the broker keeps no queue of it), and
// workers do not even publish the events only pages follow; a page opened later still follows
// its email live, and misses nothing from before the binding.
import { connect } from 'amqplib';
import { expect } from 'chai';
import { topologyNames } from '../../src/adapters/rabbitmq/topology.js';
import { requirePostgres } from '../support/postgres.js';
import { AMQP_URL, boundKeys, eventQueues, requireRabbitMq } from '../support/rabbitmq.js';
import type { Roles, Started } from '../support/roles.js';
import {
  AUTHORIZED,
  metricValue,
  queueEmail,
  startOutboxRoles,
  stopOutboxRoles,
  waitForStatus,
} from '../support/roles.js';
import { eventually } from '../support/waiting.js';

/** The `status` events of an open event stream, as they arrive. */
function statusesOf(res: Response): string[] {
  const seen: string[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  void (async () => {
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (block.startsWith('event: status') && data !== undefined) {
          seen.push((JSON.parse(data) as { status: string }).status);
        }
      }
    }
  })();
  return seen;
}

describe('live pages of email server on RabbitMQ: events heard only while a page is open', function () {
  this.timeout(90_000);
  let roles: Roles;
  let outbox: string;
  let server: Started;

  before(async function () {
    await requireRabbitMq();
    await requirePostgres();
    ({ roles, outbox } = await startOutboxRoles());
    server = await roles.startReady('server');
  });
  after(async () => {
    await stopOutboxRoles(roles, outbox);
  });

  it('keeps no events queue while no page is open, and follows an email live once one is', async () => {
    // Accepted while no worker runs: it waits, queued, for the page to open.
    const id = await queueEmail(server.url, { to: 'live@example.org' });
    expect(await eventQueues(roles.prefix), 'a queue with no page open').to.deep.equal([]);

    const stream = new AbortController();
    const res = await fetch(`${server.url}/emails/${id}/events`, {
      headers: AUTHORIZED,
      signal: stream.signal,
    });
    expect(res.status).to.equal(200);
    const statuses = statusesOf(res);
    try {
      await eventually(() => statuses.includes('queued'), { what: 'the status as it is' });
      const [queue] = await eventually(
        async () => {
          const queues = await eventQueues(roles.prefix);
          return queues.length === 1 ? queues : undefined;
        },
        { intervalMs: 200, what: 'the server to bind its events queue' },
      );
      expect(await boundKeys(roles.prefix, queue)).to.include.members(['sending', 'sent']);

      await roles.startReady('worker');
      await waitForStatus(server.url, id, 'sent');
      await eventually(() => statuses.includes('sent'), { what: 'sent, live on the page' });
    } finally {
      stream.abort();
    }
  });
});

describe("email worker on RabbitMQ: the live pages' events published only while a page is open", function () {
  this.timeout(90_000);
  let roles: Roles;
  let outbox: string;
  let server: Started;
  let worker: Started;

  before(async function () {
    await requireRabbitMq();
    await requirePostgres();
    ({ roles, outbox } = await startOutboxRoles());
    [server, worker] = await Promise.all([roles.startReady('server'), roles.startReady('worker')]);
  });
  after(async () => {
    await stopOutboxRoles(roles, outbox);
  });

  /** Servers with a live page open as the worker last checked (`email_live_page_watchers`). */
  async function watchersSeenByWorker(): Promise<number | undefined> {
    return metricValue(worker.url, 'email_live_page_watchers');
  }

  it('publishes no sending or sent while no page is open, and both once one is', async () => {
    // A queue of the test's own hears what is published under those keys. It is no watcher: the
    // worker knows of pages by the consumers of the watchers queue only.
    const model = await connect(AMQP_URL);
    const stream = new AbortController();
    try {
      const ch = await model.createChannel();
      const { queue } = await ch.assertQueue('', { exclusive: true });
      const exchange = topologyNames(roles.prefix).eventsExchange;
      for (const key of ['sending', 'sent']) await ch.bindQueue(queue, exchange, key);
      const heard: string[] = [];
      await ch.consume(
        queue,
        (msg) => {
          if (msg === null) return;
          const { id } = JSON.parse(msg.content.toString('utf8')) as { id: string };
          heard.push(`${msg.fields.routingKey} ${id}`);
        },
        { noAck: true },
      );

      // Before its first answer the worker publishes everything; it read its (no) webhook
      // endpoints as it connected, a second before that answer.
      await eventually(async () => (await watchersSeenByWorker()) === 0, {
        intervalMs: 100,
        what: 'the worker to see no page open',
      });
      const unwatched = await queueEmail(server.url, { to: 'unwatched@example.org' });
      await waitForStatus(server.url, unwatched, 'sent');

      const res = await fetch(`${server.url}/emails/${unwatched}/events`, {
        headers: AUTHORIZED,
        signal: stream.signal,
      });
      expect(res.status).to.equal(200);
      await eventually(async () => (await watchersSeenByWorker()) === 1, {
        intervalMs: 100,
        what: 'the worker to see the page open',
      });
      const watched = await queueEmail(server.url, { to: 'watched@example.org' });
      await eventually(() => heard.includes(`sent ${watched}`), { what: 'the watched email sent' });
      // The worker publishes on one channel, in order: the first email's events, had they been
      // published, would have come first.
      expect(heard).to.deep.equal([`sending ${watched}`, `sent ${watched}`]);
    } finally {
      stream.abort();
      await model.close();
    }
  });
});
