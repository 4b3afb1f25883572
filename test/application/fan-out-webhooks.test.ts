// Making webhook deliveries out of domain events: one per subscribed endpoint and change, with a
// payload written once from the email log, the first attempt of each queued, and nothing made
// twice when the same event is heard again. The in-memory stores, a recording queue.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { InMemoryEmailLog } from '../../src/adapters/memory/in-memory-stores.js';
import {
  InMemoryWebhookDeliveries,
  InMemoryWebhookEndpoints,
} from '../../src/adapters/memory/in-memory-webhook-stores.js';
import type { SecretTokens } from '../../src/application/ports/credentials.js';
import type { EmailLog } from '../../src/application/ports/email-log.js';
import type { QueueUnavailable } from '../../src/application/ports/email-queue.js';
import { queueUnavailable } from '../../src/application/ports/email-queue.js';
import type { WebhookDeliveries } from '../../src/application/ports/webhook-deliveries.js';
import type { WebhookEndpoints } from '../../src/application/ports/webhook-endpoints.js';
import type { WebhookJob, WebhookQueue } from '../../src/application/ports/webhook-queue.js';
import { FanOutWebhooks } from '../../src/application/fan-out-webhooks.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import type { WebhookEventType } from '../../src/domain/webhook.js';
import { webhookNotice } from '../../src/domain/webhook.js';
import { right } from '../contracts/email-log.contract.js';
import { T0, aRequest, anEvent, at, later } from '../support/builders.js';
import { RecordingLogger, fixedClock, switchable } from '../support/fakes.js';

interface Published {
  readonly job: WebhookJob;
  readonly delayMs: number;
}

/** Keeps every job it is given; while `down`, answers QueueUnavailable and keeps nothing. */
class RecordingWebhookQueue implements WebhookQueue {
  readonly published: Published[] = [];
  down = false;
  publish(job: WebhookJob, delayMs: number): TE.TaskEither<QueueUnavailable, void> {
    return TE.fromIOEither(() => {
      if (this.down) return E.left(queueUnavailable('the broker is not reachable (test)'));
      this.published.push({ job, delayMs });
      return E.right(undefined);
    });
  }
}

/** Random bytes that are not random: the n-th draw is n repeated, so every id is known. */
class CountingTokens implements SecretTokens {
  drawn = 0;
  random(bytes: number): string {
    this.drawn += 1;
    return Buffer.alloc(bytes, this.drawn).toString('base64url');
  }
  digest(): string {
    throw new Error('not used');
  }
  same(): boolean {
    throw new Error('not used');
  }
}

/** The webhook-id of the n-th draw of CountingTokens. */
const nthId = (n: number): string => `msg_${Buffer.alloc(16, n).toString('base64url')}`;

const ALL = 'we_all00000000000000';
const SENT_ONLY = 'we_sent0000000000000';

function setup() {
  const endpoints = switchable<WebhookEndpoints>(new InMemoryWebhookEndpoints());
  const deliveries = switchable<WebhookDeliveries>(new InMemoryWebhookDeliveries());
  const emails = switchable<EmailLog>(new InMemoryEmailLog());
  const queue = new RecordingWebhookQueue();
  const tokens = new CountingTokens();
  const clock = fixedClock('2026-11-28T10:05:00.000Z');
  const log = new RecordingLogger();
  const useCase = new FanOutWebhooks(
    endpoints.store,
    deliveries.store,
    emails.store,
    queue,
    tokens,
    clock,
    log,
  );
  const addEndpoint = (id: string, events: readonly WebhookEventType[], createdAt: Date) =>
    right(
      endpoints.store.add({
        id,
        url: `https://hooks.example.com/${id}`,
        events,
        createdAt,
        secret: `whsec_${Buffer.alloc(24, id.length).toString('base64')}`,
      }),
    );
  /** The two endpoints: one for every type, one for `email.sent` only. */
  const twoEndpoints = async () => {
    await addEndpoint(ALL, [], T0);
    await addEndpoint(SENT_ONLY, ['email.sent'], later(1_000));
  };
  /** An email the log knows, sent, with tags and metadata from its first event. */
  const sentEmail = async (): Promise<EmailRequest> => {
    const request = aRequest({ to: ['Ada Lovelace <ada@example.org>', 'bob@example.com'] });
    await right(
      emails.store.apply(
        anEvent.requested(request, { tags: ['welcome'], metadata: { user: '42' } }),
      ),
    );
    await right(emails.store.apply(anEvent.sending(request, { at: at(1) })));
    await right(emails.store.apply(anEvent.sent(request, { at: at(2) })));
    return request;
  };
  const stored = (request: EmailRequest) => right(deliveries.store.forEmail(request.id));
  const everything = () => right(deliveries.store.recent(100));
  return {
    endpoints,
    deliveries,
    emails,
    queue,
    tokens,
    clock,
    log,
    useCase,
    addEndpoint,
    twoEndpoints,
    sentEmail,
    stored,
    everything,
  };
}

/** The body every delivery of the `email.sent` change of `request` carries. */
const sentBody = (request: EmailRequest) => ({
  type: 'email.sent',
  timestamp: at(2),
  data: {
    id: request.id,
    status: 'sent',
    to: ['Ada Lovelace <ada@example.org>', 'bob@example.com'],
    subject: request.subject,
    tags: ['welcome'],
    metadata: { user: '42' },
  },
});

describe('FanOutWebhooks', () => {
  it('makes nothing and queues nothing when no endpoint is subscribed', async () => {
    const fx = setup();
    const email = await fx.sentEmail();
    expect(await fx.useCase.handle(anEvent.sent(email, { at: at(2) }))).to.equal('done');
    expect(await fx.everything()).to.deep.equal([]);
    expect(fx.queue.published).to.deep.equal([]);
  });

  it('makes one delivery per subscribed endpoint of a send, and queues the first attempt of each', async () => {
    const fx = setup();
    await fx.twoEndpoints();
    const email = await fx.sentEmail();
    const event = anEvent.sent(email, { at: at(2) });

    expect(await fx.useCase.handle(event)).to.equal('done');

    const made = await fx.stored(email);
    expect(made.map((d) => d.endpointId)).to.have.members([ALL, SENT_ONLY]);
    expect(made.map((d) => d.id)).to.have.members([nthId(1), nthId(2)]);
    for (const delivery of made) {
      expect(delivery.id).to.match(/^msg_[A-Za-z0-9_-]{22}$/);
      expect(delivery).to.deep.include({
        url: `https://hooks.example.com/${delivery.endpointId}`,
        emailId: email.id,
        type: 'email.sent',
        noticeKey: webhookNotice(event)!.key,
        createdAt: fx.clock.now(),
        state: 'pending',
        attempts: [],
      });
      expect(JSON.parse(delivery.payload)).to.deep.equal(sentBody(email));
    }
    // The very same bytes for every endpoint: written once.
    expect(made[0]!.payload).to.equal(made[1]!.payload);
    expect(fx.queue.published).to.have.deep.members(
      made.map((d) => ({ job: { deliveryId: d.id, attempt: 1 }, delayMs: 0 })),
    );
    expect(fx.queue.published).to.have.length(2);
  });

  it('makes a delivery of a change only for the endpoints whose filter takes it', async () => {
    const fx = setup();
    await fx.twoEndpoints();
    const email = await fx.sentEmail();

    expect(await fx.useCase.handle(anEvent.sending(email, { at: at(1) }))).to.equal('done');

    const made = await fx.stored(email);
    expect(made).to.have.length(1);
    expect(made[0]).to.deep.include({ endpointId: ALL, type: 'email.sending' });
    expect(JSON.parse(made[0]!.payload)).to.deep.equal({
      ...sentBody(email),
      type: 'email.sending',
      timestamp: at(1),
    });
    expect(fx.queue.published).to.deep.equal([
      { job: { deliveryId: made[0]!.id, attempt: 1 }, delayMs: 0 },
    ]);
  });

  it('makes nothing of an event that changes no status', async () => {
    const fx = setup();
    await fx.twoEndpoints();
    const email = await fx.sentEmail();
    expect(await fx.useCase.handle(anEvent.failedOver(email, { at: at(1) }))).to.equal('done');
    expect(await fx.everything()).to.deep.equal([]);
    expect(fx.queue.published).to.deep.equal([]);
  });

  it('makes no second delivery of an event heard twice, and queues again only what was never tried', async () => {
    const fx = setup();
    await fx.twoEndpoints();
    const email = await fx.sentEmail();
    const event = anEvent.sent(email, { at: at(2) });
    expect(await fx.useCase.handle(event)).to.equal('done');
    const first = await fx.stored(email);
    const tried = first.find((d) => d.endpointId === ALL)!;
    const untried = first.find((d) => d.endpointId === SENT_ONLY)!;
    // The first attempt of one of them was made meanwhile.
    const recorded = await right(
      fx.deliveries.store.recordAttempt(
        tried.id,
        { attempt: 1, at: later(301_000), durationMs: 40, statusCode: 500 },
        { state: 'pending', nextAttemptAt: later(306_040) },
      ),
    );
    expect(recorded).to.equal(true);
    fx.queue.published.length = 0;

    expect(await fx.useCase.handle({ ...event })).to.equal('done');

    const again = await fx.stored(email);
    expect(again.map((d) => d.id)).to.have.members(first.map((d) => d.id));
    expect(again.find((d) => d.id === tried.id)!.attempts).to.have.length(1);
    expect(fx.queue.published).to.deep.equal([
      { job: { deliveryId: untried.id, attempt: 1 }, delayMs: 0 },
    ]);
  });

  it('queues nothing again for deliveries that are finished or tried', async () => {
    const fx = setup();
    await fx.twoEndpoints();
    const email = await fx.sentEmail();
    const event = anEvent.sent(email, { at: at(2) });
    await fx.useCase.handle(event);
    const [one, two] = await fx.stored(email);
    await right(
      fx.deliveries.store.recordAttempt(
        one!.id,
        { attempt: 1, at: later(301_000), durationMs: 40, statusCode: 200 },
        { state: 'delivered' },
      ),
    );
    await right(
      fx.deliveries.store.recordAttempt(
        two!.id,
        { attempt: 1, at: later(301_000), durationMs: 40, error: 'connection refused' },
        { state: 'pending', nextAttemptAt: later(306_040) },
      ),
    );
    fx.queue.published.length = 0;

    expect(await fx.useCase.handle(event)).to.equal('done');
    expect(await fx.stored(email)).to.have.length(2);
    expect(fx.queue.published).to.deep.equal([]);
  });

  for (const which of ['endpoints', 'emails', 'deliveries'] as const) {
    it(`answers redeliver while the ${which} store does not answer, and makes the deliveries after`, async () => {
      const fx = setup();
      await fx.twoEndpoints();
      const email = await fx.sentEmail();
      const event = anEvent.sent(email, { at: at(2) });

      fx[which].down = true;
      expect(await fx.useCase.handle(event)).to.equal('redeliver');
      fx[which].down = false;
      expect(await fx.everything()).to.deep.equal([]);
      expect(fx.queue.published).to.deep.equal([]);
      expect(fx.log.lines.filter((l) => l.level === 'warn')).to.have.length(1);
      expect(fx.log.text()).to.include('the database is not reachable (test)');

      expect(await fx.useCase.handle(event)).to.equal('done');
      const made = await fx.stored(email);
      expect(made).to.have.length(2);
      expect(fx.queue.published).to.have.deep.members(
        made.map((d) => ({ job: { deliveryId: d.id, attempt: 1 }, delayMs: 0 })),
      );
    });
  }

  it('answers redeliver when the queue does not take a job, and queues it when heard again', async () => {
    const fx = setup();
    await fx.twoEndpoints();
    const email = await fx.sentEmail();
    const event = anEvent.sent(email, { at: at(2) });

    fx.queue.down = true;
    expect(await fx.useCase.handle(event)).to.equal('redeliver');
    const made = await fx.stored(email);
    expect(made).to.have.length(2);
    expect(fx.queue.published).to.deep.equal([]);
    expect(fx.log.text()).to.include('the broker is not reachable (test)');

    fx.queue.down = false;
    expect(await fx.useCase.handle(event)).to.equal('done');
    expect((await fx.stored(email)).map((d) => d.id)).to.have.members(made.map((d) => d.id));
    expect(fx.queue.published).to.have.deep.members(
      made.map((d) => ({ job: { deliveryId: d.id, attempt: 1 }, delayMs: 0 })),
    );
    expect(fx.queue.published).to.have.length(2);
  });

  it('answers done and makes nothing for an email the log does not know', async () => {
    const fx = setup();
    await fx.twoEndpoints();
    const unknown = aRequest();
    expect(await fx.useCase.handle(anEvent.sent(unknown, { at: at(2) }))).to.equal('done');
    expect(await fx.everything()).to.deep.equal([]);
    expect(fx.queue.published).to.deep.equal([]);
  });
});
