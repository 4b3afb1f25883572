// A server's live pages on RabbitMQ: a server hears the workers' events only while one of its
// pages is open. With none open, no event is routed to it (the broker keeps no queue of it); a
// page opened later still follows its email live, and misses nothing from before the binding.
import { expect } from 'chai';
import { requirePostgres } from '../support/postgres.js';
import { boundKeys, eventQueues, requireRabbitMq } from '../support/rabbitmq.js';
import type { Roles, Started } from '../support/roles.js';
import {
  AUTHORIZED,
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
