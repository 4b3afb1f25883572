// Pacing to the provider, as production runs it: `email server` and two `email worker`s on
// RabbitMQ and PostgreSQL, sending to the Mailgun stand-in. The bounds are the issue's ("As fast
// as the bare stack, and paced to the provider"): MAILGUN_RATE holds across every worker, as the
// stand-in counts arrivals; a provider's 429 with Retry-After spends no attempt.
import { expect } from 'chai';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { requirePostgres } from '../support/postgres.js';
import { AMQP_URL, deleteTopology, requireRabbitMq } from '../support/rabbitmq.js';
import type { Roles, Started } from '../support/roles.js';
import {
  mapLimit,
  postEmail,
  queueDepth,
  startMailgunRoles,
  stopMailgunRoles,
  tally,
  waitForStatus,
} from '../support/roles.js';
import { eventually } from '../support/waiting.js';

const RETRY_STEPS = '1s,5s';
const RETRY_STEPS_MS = [1000, 5000];

/** The most arrivals within any one second, the window starting at each arrival in turn. */
function busiestSecond(arrivalsMs: readonly number[]): number {
  const times = [...arrivalsMs].sort((a, b) => a - b);
  let busiest = 0;
  let end = 0;
  for (let start = 0; start < times.length; start += 1) {
    while (end < times.length && (times[end] ?? Infinity) < (times[start] ?? 0) + 1000) end += 1;
    busiest = Math.max(busiest, end - start);
  }
  return busiest;
}

/** Posts `count` emails and returns their ids, every one accepted. */
async function postMany(server: Started, count: number, label: string): Promise<string[]> {
  const posted = await mapLimit(Array.from({ length: count }), 20, (_, i) =>
    postEmail(server.url, { to: `user${i}@example.com`, subject: `${label} ${i}` }),
  );
  const refused = posted.filter((p) => p.status !== 202);
  expect(refused, JSON.stringify(refused.slice(0, 3))).to.deep.equal([]);
  return posted.map((p) => String(p.body.id));
}

/** The stand-in's accepted messages, once there are `count` of them. */
const accepted = (mailgun: MailgunStandIn, count: number, timeoutMs: number) =>
  eventually(() => (mailgun.messages.length >= count ? [...mailgun.messages] : undefined), {
    timeoutMs,
    what: `${count} messages at the Mailgun stand-in`,
  });

/** Each worker's count of sends in its log (its "Time to send" lines with outcome Sent). */
const sendsBy = (workers: readonly Started[]): number[] =>
  workers.map(
    (w) =>
      w.proc.records.filter((r) => r.outcome === 'Sent' && r.msg.startsWith('Time to send')).length,
  );

describe('pacing to the provider (email server + two workers, Mailgun stand-in)', function () {
  before(async () => {
    await requireRabbitMq();
    await requirePostgres();
  });

  describe('MAILGUN_RATE=20/s', function () {
    this.timeout(120_000);
    const COUNT = 200;
    let roles: Roles;
    let mailgun: MailgunStandIn;

    // The production schedule's first steps rather than the fixture's 200ms,400ms: a task that
    // must wait seconds for its slot goes round the queue as it would in production.
    before(
      async () =>
        ({ roles, mailgun } = await startMailgunRoles({
          MAILGUN_RATE: '20/s',
          RETRY_DELAYS: RETRY_STEPS,
        })),
    );
    after(async () => {
      await stopMailgunRoles(roles, mailgun);
      if (roles) await deleteTopology(AMQP_URL, roles.prefix, RETRY_STEPS_MS);
    });

    it(`spreads ${COUNT} emails over at least 9.5 s, never more than 20 in one second`, async () => {
      const server = await roles.startReady('server');
      // Queued first: the stand-in runs in this process, and 200 requests being posted from it
      // would delay its own clock readings of the arrivals, not the workers' sends.
      const ids = await postMany(server, COUNT, 'Paced');
      const workers = await Promise.all([roles.startReady('worker'), roles.startReady('worker')]);

      const messages = await accepted(mailgun, COUNT, 90_000);
      // Each email once: pacing hands tasks back to the queue, it must never send one twice.
      const sent = tally(messages.map((m) => String(m.variables['email-id'])));
      expect([...sent.keys()].sort()).to.deep.equal([...ids].sort());
      expect(
        [...sent.values()].every((n) => n === 1),
        'one send per id',
      ).to.equal(true);

      const arrivals = messages.map((m) => m.arrivedAtMs);
      const spanMs = Math.max(...arrivals) - Math.min(...arrivals);
      const busiest = busiestSecond(arrivals);
      if (process.env.PACING_FIGURES) {
        console.log(
          `      ${COUNT} sends in ${spanMs} ms (${((COUNT - 1) / (spanMs / 1000)).toFixed(2)}/s), ` +
            `at most ${busiest} in one second; by worker ${sendsBy(workers).join(' + ')}`,
        );
      }
      expect(spanMs, 'first send to last send at the stand-in').to.be.at.least(9500);
      expect(busiest, 'sends in the busiest second').to.be.at.most(20);

      // The limit is shared, not per worker: both sent, together within it.
      await eventually(() => sendsBy(workers).reduce((a, b) => a + b) >= COUNT, {
        what: "every send in the workers' logs",
      });
      expect(
        sendsBy(workers).every((n) => n > 0),
        'both workers sent',
      ).to.equal(true);
      const metrics = await Promise.all(
        workers.map(async (w) => (await fetch(`${w.url}/metrics`)).text()),
      );
      expect(metrics.join('\n')).to.match(/email_pacing_waits_total\{[^}]*transport="mailgun"/);
      expect(metrics.join('\n')).to.match(/email_pacing_tokens\{[^}]*transport="mailgun"/);
    });
  });

  describe('MAX_ATTEMPTS=2, and a provider that answers 429 with Retry-After: 1 five times', function () {
    this.timeout(60_000);
    const COUNT = 30;
    let roles: Roles;
    let mailgun: MailgunStandIn;

    before(async () => ({ roles, mailgun } = await startMailgunRoles({ MAX_ATTEMPTS: '2' })));
    after(() => stopMailgunRoles(roles, mailgun));

    it('sends every email, fails none, and spends no attempt on the throttles', async () => {
      const server = await roles.startReady('server');
      const workers = [await roles.startReady('worker'), await roles.startReady('worker')];
      mailgun.script(...Array.from({ length: 5 }, () => ({ status: 429, retryAfterSeconds: 1 })));
      const ids = await postMany(server, COUNT, 'Throttled');

      await accepted(mailgun, COUNT, 45_000);
      const views = await mapLimit(ids, 10, (id) => waitForStatus(server.url, id, 'sent'));
      // Every email went out on its first attempt: the throttles did not count.
      for (const view of views) {
        expect(
          view.attempts.filter((a) => a.outcome === 'sent').map((a) => a.attempt),
        ).to.deep.equal([1]);
      }
      const throttles = views.flatMap((v) =>
        v.attempts.filter((a) => /^throttled:/.test(a.detail)),
      );
      expect(throttles.map((a) => [a.attempt, a.outcome])).to.deep.equal(
        Array.from({ length: 5 }, () => [1, 'transient']),
      );
      expect(throttles.every((a) => /Mailgun 429/.test(a.detail))).to.equal(true);
      expect((await queueDepth(roles.prefix, 'dead')).messageCount).to.equal(0);
      const metrics = await Promise.all(
        workers.map(async (w) => (await fetch(`${w.url}/metrics`)).text()),
      );
      const counted = metrics
        .flatMap((m) => m.split('\n'))
        .filter((l) => l.startsWith('email_throttled_total{'))
        .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
      expect(counted).to.equal(5);
    });
  });
});
