// One attempt of one webhook delivery: signed with the real Standard Webhooks signer and checked
// with the reference library, posted through a scripted transport, recorded in the in-memory
// store, and the next attempt queued on the retry schedule until the delivery is delivered or
// given up. A job heard twice posts at most once more and never moves a delivery back.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { Webhook } from 'standardwebhooks';
import {
  InMemoryWebhookDeliveries,
  InMemoryWebhookEndpoints,
} from '../../src/adapters/memory/in-memory-webhook-stores.js';
import { StandardWebhookSigner } from '../../src/adapters/webhooks/standard-webhook-signer.js';
import type {
  DeliverWebhookOptions,
  WebhookAttemptOutcome,
} from '../../src/application/deliver-webhook.js';
import { DeliverWebhook } from '../../src/application/deliver-webhook.js';
import type { QueueUnavailable } from '../../src/application/ports/email-queue.js';
import { queueUnavailable } from '../../src/application/ports/email-queue.js';
import type {
  WebhookDeliveries,
  WebhookDelivery,
} from '../../src/application/ports/webhook-deliveries.js';
import type { WebhookEndpoints } from '../../src/application/ports/webhook-endpoints.js';
import type { WebhookJob, WebhookQueue } from '../../src/application/ports/webhook-queue.js';
import type {
  WebhookRequest,
  WebhookResponse,
  WebhookTransport,
} from '../../src/application/ports/webhook-transport.js';
import { WEBHOOK_TIMEOUT_MS } from '../../src/domain/webhook.js';
import { right } from '../contracts/email-log.contract.js';
import { T0, anId, later } from '../support/builders.js';
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
  /** The jobs queued so far, taken off the queue. */
  take(): Published[] {
    return this.published.splice(0);
  }
}

type Clock = ReturnType<typeof fixedClock>;

interface Posted {
  readonly request: WebhookRequest;
  /** The clock when the request went out: what a receiver's clock reads. */
  readonly sentAt: Date;
}

const answered = (statusCode: number, retryAfterMs?: number): WebhookResponse => ({
  _tag: 'Answered',
  statusCode,
  durationMs: 30,
  ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
});

/**
 * Records each request and answers the next of `answers` (200 once they run out). The request
 * takes the answer's `durationMs` on the clock, as a real one would; `during` runs while it is
 * in flight.
 */
class ScriptedTransport implements WebhookTransport {
  readonly posted: Posted[] = [];
  during: (() => void | Promise<void>) | undefined;
  constructor(
    private readonly clock: Clock,
    private readonly answers: WebhookResponse[] = [],
  ) {}
  answer(...answers: WebhookResponse[]): void {
    this.answers.push(...answers);
  }
  async post(request: WebhookRequest): Promise<WebhookResponse> {
    this.posted.push({ request, sentAt: this.clock.now() });
    await this.during?.();
    const response = this.answers.shift() ?? answered(200);
    this.clock.advance(response.durationMs);
    return response;
  }
}

/**
 * What a receiver does with the reference library: `Webhook(secret).verify(body, headers)`, with
 * its own clock reading `now` (the library checks the timestamp against Date.now, ±5 minutes).
 */
function verify(secret: string, request: WebhookRequest, now: Date): unknown {
  const realNow = Date.now;
  Date.now = () => now.getTime();
  try {
    return new Webhook(secret).verify(request.body, { ...request.headers });
  } finally {
    Date.now = realNow;
  }
}

const SECRET = `whsec_${Buffer.alloc(24, 0x5a).toString('base64')}`;
const OTHER_SECRET = `whsec_${Buffer.alloc(24, 0x17).toString('base64')}`;
const ENDPOINT = 'we_0000000000000001';
const URL = 'https://hooks.example.com/email?tenant=7';

let n = 0;

function setup(options: Omit<DeliverWebhookOptions, 'onAttempt'> = {}) {
  const endpoints = switchable<WebhookEndpoints>(new InMemoryWebhookEndpoints());
  const deliveries = switchable<WebhookDeliveries>(new InMemoryWebhookDeliveries());
  const queue = new RecordingWebhookQueue();
  const clock = fixedClock(T0.toISOString());
  const transport = new ScriptedTransport(clock);
  const log = new RecordingLogger();
  const outcomes: WebhookAttemptOutcome[] = [];
  const useCase = new DeliverWebhook(
    endpoints.store,
    deliveries.store,
    queue,
    transport,
    new StandardWebhookSigner(),
    clock,
    log,
    { ...options, onAttempt: (outcome) => outcomes.push(outcome) },
  );
  /** An endpoint and one pending delivery to it, never tried. */
  const aDelivery = async (): Promise<WebhookDelivery> => {
    await right(
      endpoints.store.add({ id: ENDPOINT, url: URL, events: [], createdAt: T0, secret: SECRET }),
    );
    const emailId = anId();
    const payload = JSON.stringify({
      type: 'email.sent',
      timestamp: T0.toISOString(),
      data: { id: emailId, status: 'sent', to: ['Ada <ada@example.org>'], subject: 'Ünïcödé' },
    });
    const [made] = await right(
      deliveries.store.create([
        {
          id: `msg_${Buffer.alloc(16, (n += 1)).toString('base64url')}`,
          endpointId: ENDPOINT,
          url: URL,
          emailId,
          type: 'email.sent',
          noticeKey: `email.sent ${T0.toISOString()} `,
          payload,
          createdAt: clock.now(),
        },
      ]),
    );
    return made!;
  };
  const stored = async (id: string): Promise<WebhookDelivery> => {
    const found = await right(deliveries.store.get(id));
    if (O.isNone(found)) expect.fail(`delivery ${id} is gone`);
    return found.value;
  };
  /** Records attempts 1 … `count` as failed 500s, as earlier workers would have. */
  const tried = async (id: string, count: number): Promise<void> => {
    for (let attempt = 1; attempt <= count; attempt += 1) {
      const ok = await right(
        deliveries.store.recordAttempt(
          id,
          { attempt, at: clock.now(), durationMs: 30, statusCode: 500 },
          { state: 'pending', nextAttemptAt: later(attempt * 1_000) },
        ),
      );
      expect(ok).to.equal(true);
    }
  };
  return {
    endpoints,
    deliveries,
    queue,
    clock,
    transport,
    log,
    outcomes,
    useCase,
    aDelivery,
    stored,
    tried,
  };
}

const job = (delivery: { readonly id: string }, attempt: number): WebhookJob => ({
  deliveryId: delivery.id,
  attempt,
});

describe('DeliverWebhook', () => {
  it('delivers on a 200: one attempt recorded with its status code and duration, nothing queued', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    fx.transport.answer({ _tag: 'Answered', statusCode: 200, durationMs: 87 });

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');

    expect(fx.transport.posted).to.have.length(1);
    const after = await fx.stored(delivery.id);
    expect(after.state).to.equal('delivered');
    expect(after.attempts).to.deep.equal([{ attempt: 1, at: T0, durationMs: 87, statusCode: 200 }]);
    expect(after).not.to.have.property('nextAttemptAt');
    expect(fx.outcomes).to.deep.equal(['delivered']);
    expect(fx.queue.published).to.deep.equal([]);
  });

  it('puts back, unspent, a job for an endpoint that has enough POSTs in flight', async () => {
    const t = setup({ perEndpoint: 1 });
    const first = await t.aDelivery();
    const [second] = await right(
      t.deliveries.store.create([
        { ...first, id: `${first.id}x`, noticeKey: 'another change', createdAt: t.clock.now() },
      ]),
    );
    // The first POST hangs until the second job has been handled.
    let release = (): void => undefined;
    const hanging = new Promise<void>((resolve) => (release = resolve));
    let entered = (): void => undefined;
    const posting = new Promise<void>((resolve) => (entered = resolve));
    t.transport.during = () => {
      entered();
      return hanging;
    };
    const firstDone = t.useCase.handle(job(first, 1));
    await posting;
    expect(await t.useCase.handle(job(second!, 1))).to.equal('done');
    expect(t.transport.posted).to.have.length(1);
    expect(t.queue.take()).to.deep.equal([{ job: job(second!, 1), delayMs: 5_000 }]);
    expect((await t.stored(second!.id)).attempts).to.deep.equal([]);
    release();
    expect(await firstDone).to.equal('done');
    // Its slot is free again: the job put back goes through.
    t.transport.during = undefined;
    expect(await t.useCase.handle(job(second!, 1))).to.equal('done');
    expect((await t.stored(second!.id)).state).to.equal('delivered');
  });

  it('takes any 2xx as delivered', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    fx.transport.answer(answered(204));
    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');
    expect((await fx.stored(delivery.id)).state).to.equal('delivered');
  });

  it('posts the stored body to the endpoint with the Standard Webhooks headers', async () => {
    const fx = setup({ userAgent: 'queued-email/1.2.3' });
    const delivery = await fx.aDelivery();
    fx.clock.advance(1_999); // A time that is not a whole second: the header truncates it.

    await fx.useCase.handle(job(delivery, 1));

    const [{ request, sentAt }] = fx.transport.posted as [Posted];
    expect(request.url).to.equal(URL);
    expect(request.body).to.equal(delivery.payload);
    expect(request.timeoutMs).to.equal(WEBHOOK_TIMEOUT_MS);
    expect(request.headers).to.deep.include({
      'content-type': 'application/json',
      'user-agent': 'queued-email/1.2.3',
      'webhook-id': delivery.id,
      'webhook-timestamp': String(Math.floor(later(1_999).getTime() / 1000)),
    });
    expect(request.headers['webhook-timestamp']).to.equal(String(T0.getTime() / 1000 + 1));
    expect(request.headers['webhook-signature']).to.match(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(verify(SECRET, request, sentAt)).to.deep.equal(JSON.parse(delivery.payload));
    expect(() => verify(OTHER_SECRET, request, sentAt)).to.throw('No matching signature');
  });

  it('names itself in User-Agent unless told otherwise', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    await fx.useCase.handle(job(delivery, 1));
    expect(fx.transport.posted[0]!.request.headers['user-agent']).to.equal('queued-email-webhooks');
  });

  it('tries again after 5 s and 5 min, with the same id and body and a valid signature each time', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    fx.transport.answer(answered(500), answered(500), answered(200));

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');
    const second = fx.queue.take();
    expect(second).to.deep.equal([{ job: job(delivery, 2), delayMs: 5_000 }]);
    const afterFirst = await fx.stored(delivery.id);
    expect(afterFirst.state).to.equal('pending');
    expect(afterFirst.nextAttemptAt).to.deep.equal(later(30 + 5_000));

    fx.clock.advance(second[0]!.delayMs);
    expect(await fx.useCase.handle(second[0]!.job)).to.equal('done');
    const third = fx.queue.take();
    expect(third).to.deep.equal([{ job: job(delivery, 3), delayMs: 300_000 }]);

    fx.clock.advance(third[0]!.delayMs);
    expect(await fx.useCase.handle(third[0]!.job)).to.equal('done');
    expect(fx.queue.take()).to.deep.equal([]);

    const posted = fx.transport.posted;
    expect(posted).to.have.length(3);
    expect(posted.map((p) => p.request.headers['webhook-id'])).to.deep.equal([
      delivery.id,
      delivery.id,
      delivery.id,
    ]);
    expect(new Set(posted.map((p) => p.request.body))).to.deep.equal(new Set([delivery.payload]));
    for (const { request, sentAt } of posted) {
      expect(request.headers['webhook-timestamp']).to.equal(
        String(Math.floor(sentAt.getTime() / 1000)),
      );
      expect(verify(SECRET, request, sentAt)).to.deep.equal(JSON.parse(delivery.payload));
    }
    expect(new Set(posted.map((p) => p.request.headers['webhook-signature'])).size).to.equal(3);

    const final = await fx.stored(delivery.id);
    expect(final.state).to.equal('delivered');
    expect(final.attempts).to.deep.equal([
      { attempt: 1, at: T0, durationMs: 30, statusCode: 500 },
      { attempt: 2, at: later(5_030), durationMs: 30, statusCode: 500 },
      { attempt: 3, at: later(305_060), durationMs: 30, statusCode: 200 },
    ]);
    expect(final).not.to.have.property('nextAttemptAt');
    expect(fx.outcomes).to.deep.equal(['retrying', 'retrying', 'delivered']);
  });

  it("waits for the first step at least as long as the receiver's Retry-After when that is longer", async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    fx.transport.answer(answered(503, 600_000));

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');

    // 10 minutes asked: the 30-minute step, the first one that long (the queue's own delays).
    expect(fx.queue.published).to.deep.equal([{ job: job(delivery, 2), delayMs: 1_800_000 }]);
    const after = await fx.stored(delivery.id);
    expect(after.attempts).to.deep.equal([{ attempt: 1, at: T0, durationMs: 30, statusCode: 503 }]);
    expect(after.nextAttemptAt).to.deep.equal(later(30 + 1_800_000));
    expect(fx.outcomes).to.deep.equal(['retrying']);
  });

  it('tries again when there was no answer, with the error recorded', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    fx.transport.answer({ _tag: 'NoAnswer', error: 'timed out after 10 s', durationMs: 10_000 });

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');

    const after = await fx.stored(delivery.id);
    expect(after.state).to.equal('pending');
    expect(after.attempts).to.deep.equal([
      { attempt: 1, at: T0, durationMs: 10_000, error: 'timed out after 10 s' },
    ]);
    expect(fx.queue.published).to.deep.equal([{ job: job(delivery, 2), delayMs: 5_000 }]);
    expect(fx.outcomes).to.deep.equal(['retrying']);
  });

  it('gives up when the last attempt fails: failed, nothing queued, a warning', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    await fx.tried(delivery.id, 7);
    fx.transport.answer(answered(500));

    expect(await fx.useCase.handle(job(delivery, 8))).to.equal('done');

    expect(fx.transport.posted).to.have.length(1);
    const after = await fx.stored(delivery.id);
    expect(after.state).to.equal('failed');
    expect(after.attempts).to.have.length(8);
    expect(after.attempts[7]).to.deep.equal({
      attempt: 8,
      at: T0,
      durationMs: 30,
      statusCode: 500,
    });
    expect(after).not.to.have.property('nextAttemptAt');
    expect(fx.queue.published).to.deep.equal([]);
    expect(fx.outcomes).to.deep.equal(['failed']);
    expect(fx.log.lines.map((l) => [l.level, l.message])).to.deep.equal([
      ['warn', 'Gave up a webhook delivery'],
    ]);
  });

  it('follows a retry schedule of its own', async () => {
    const fx = setup({ retryDelaysMs: [1_000, 2_000] });
    const delivery = await fx.aDelivery();
    fx.transport.answer(answered(500), answered(502), {
      _tag: 'NoAnswer',
      error: 'reset',
      durationMs: 3,
    });

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');
    const second = fx.queue.take();
    expect(second).to.deep.equal([{ job: job(delivery, 2), delayMs: 1_000 }]);
    fx.clock.advance(1_000);
    expect(await fx.useCase.handle(job(delivery, 2))).to.equal('done');
    const third = fx.queue.take();
    expect(third).to.deep.equal([{ job: job(delivery, 3), delayMs: 2_000 }]);
    fx.clock.advance(2_000);
    expect(await fx.useCase.handle(job(delivery, 3))).to.equal('done');

    expect(fx.queue.take()).to.deep.equal([]);
    expect(fx.transport.posted).to.have.length(3);
    const after = await fx.stored(delivery.id);
    expect(after.state).to.equal('failed');
    expect(after.attempts.map((a) => a.attempt)).to.deep.equal([1, 2, 3]);
    expect(fx.outcomes).to.deep.equal(['retrying', 'retrying', 'failed']);
  });

  it('posts nothing for a job whose attempt is already recorded, and queues the next one for what is left of its wait', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    fx.transport.answer(answered(500));
    await fx.useCase.handle(job(delivery, 1));
    fx.queue.take();
    fx.clock.advance(1_000);

    // The same job, heard again after another worker handled it.
    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');

    expect(fx.transport.posted).to.have.length(1);
    expect((await fx.stored(delivery.id)).attempts).to.have.length(1);
    expect(fx.queue.published).to.deep.equal([{ job: job(delivery, 2), delayMs: 4_000 }]);
    expect(fx.outcomes).to.deep.equal(['retrying']);
  });

  it('does nothing with a job older than the last attempt, or ahead of the next one', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    await fx.tried(delivery.id, 2);
    const before = await fx.stored(delivery.id);

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');
    expect(await fx.useCase.handle(job(delivery, 5))).to.equal('done');

    expect(fx.transport.posted).to.deep.equal([]);
    expect(fx.queue.published).to.deep.equal([]);
    expect(await fx.stored(delivery.id)).to.deep.equal(before);
    expect(fx.outcomes).to.deep.equal([]);
  });

  it('records nothing and queues nothing when another worker recorded the attempt during the POST', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    fx.transport.answer(answered(500));
    fx.transport.during = async () => {
      await right(
        fx.deliveries.store.recordAttempt(
          delivery.id,
          { attempt: 1, at: T0, durationMs: 12, statusCode: 200 },
          { state: 'delivered' },
        ),
      );
    };

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');

    const after = await fx.stored(delivery.id);
    expect(after.state).to.equal('delivered');
    expect(after.attempts).to.deep.equal([{ attempt: 1, at: T0, durationMs: 12, statusCode: 200 }]);
    expect(fx.queue.published).to.deep.equal([]);
    expect(fx.outcomes).to.deep.equal([]);
  });

  it('does nothing with a job of a delivery already delivered', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    await fx.useCase.handle(job(delivery, 1));
    const before = await fx.stored(delivery.id);
    expect(before.state).to.equal('delivered');
    fx.outcomes.length = 0;

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');
    expect(await fx.useCase.handle(job(delivery, 2))).to.equal('done');

    expect(fx.transport.posted).to.have.length(1);
    expect(fx.queue.published).to.deep.equal([]);
    expect(await fx.stored(delivery.id)).to.deep.equal(before);
    expect(fx.outcomes).to.deep.equal([]);
  });

  it('answers done for a delivery that is gone', async () => {
    const fx = setup();
    expect(await fx.useCase.handle({ deliveryId: 'msg_gone', attempt: 1 })).to.equal('done');
    expect(fx.transport.posted).to.deep.equal([]);
    expect(fx.queue.published).to.deep.equal([]);
  });

  it('fails the delivery without a request once its endpoint is removed', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    expect(await right(fx.endpoints.store.remove(ENDPOINT))).to.equal(true);

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');

    expect(fx.transport.posted).to.deep.equal([]);
    const after = await fx.stored(delivery.id);
    expect(after.state).to.equal('failed');
    expect(after.url).to.equal(URL);
    expect(after.attempts).to.deep.equal([
      { attempt: 1, at: T0, durationMs: 0, error: 'the endpoint was removed' },
    ]);
    expect(fx.queue.published).to.deep.equal([]);
    expect(fx.outcomes).to.deep.equal(['failed']);
  });

  it('answers redeliver without a request while the deliveries or endpoints do not answer', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();

    fx.deliveries.down = true;
    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('redeliver');
    fx.deliveries.down = false;

    fx.endpoints.down = true;
    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('redeliver');
    fx.endpoints.down = false;

    expect(fx.transport.posted).to.deep.equal([]);
    expect(fx.queue.published).to.deep.equal([]);
    expect((await fx.stored(delivery.id)).attempts).to.deep.equal([]);
    expect(fx.outcomes).to.deep.equal([]);
    expect(fx.log.text()).to.include('the database is not reachable (test)');

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');
    expect((await fx.stored(delivery.id)).state).to.equal('delivered');
  });

  it('answers redeliver when the attempt cannot be recorded after the POST, and posts again when heard again', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    fx.transport.answer(answered(500));
    fx.transport.during = () => {
      fx.deliveries.down = true;
    };

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('redeliver');
    fx.deliveries.down = false;
    fx.transport.during = undefined;

    expect(fx.transport.posted).to.have.length(1);
    expect((await fx.stored(delivery.id)).attempts).to.deep.equal([]);
    expect(fx.queue.published).to.deep.equal([]);
    expect(fx.outcomes).to.deep.equal([]);

    // At least once: the receiver dedupes on webhook-id, the same on both.
    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');
    expect(fx.transport.posted.map((p) => p.request.headers['webhook-id'])).to.deep.equal([
      delivery.id,
      delivery.id,
    ]);
    expect((await fx.stored(delivery.id)).state).to.equal('delivered');
  });

  it('answers redeliver when the next job cannot be queued, and queues it without a second POST when heard again', async () => {
    const fx = setup();
    const delivery = await fx.aDelivery();
    fx.transport.answer(answered(500));
    fx.queue.down = true;

    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('redeliver');

    const after = await fx.stored(delivery.id);
    expect(after.attempts).to.deep.equal([{ attempt: 1, at: T0, durationMs: 30, statusCode: 500 }]);
    expect(after.nextAttemptAt).to.deep.equal(later(5_030));
    expect(fx.queue.published).to.deep.equal([]);
    expect(fx.log.text()).to.include('the broker is not reachable (test)');

    fx.queue.down = false;
    expect(await fx.useCase.handle(job(delivery, 1))).to.equal('done');

    expect(fx.transport.posted).to.have.length(1);
    expect(fx.queue.published).to.deep.equal([{ job: job(delivery, 2), delayMs: 5_000 }]);
    expect((await fx.stored(delivery.id)).attempts).to.have.length(1);
    expect(fx.outcomes).to.deep.equal(['retrying']);
  });
});
