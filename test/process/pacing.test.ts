// Pacing to the provider, as production runs it: `email server` and two `email worker`s on
// RabbitMQ and PostgreSQL, sending to the Mailgun stand-in. The bounds are the issue's ("As fast
// as the bare stack, and paced to the provider"): MAILGUN_RATE holds across every worker, as the
// stand-in counts arrivals; a provider's 429 with Retry-After spends no attempt.
import { expect } from 'chai';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { Worker } from 'node:worker_threads';
import { SMTPServer } from 'smtp-server';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { requirePostgres } from '../support/postgres.js';
import type { Hit, MailgunAnswer } from '../support/recording-mailgun.js';
import { recordingMailgun } from '../support/recording-mailgun.js';
import { AMQP_URL, deleteTopology, requireRabbitMq } from '../support/rabbitmq.js';
import type { Started, StatusView } from '../support/roles.js';
import {
  Roles,
  mapLimit,
  postEmail,
  queueDepth,
  statusOf,
  startMailgunRoles,
  stopMailgunRoles,
  tally,
  waitForStatus,
} from '../support/roles.js';
import { eventually, sleep } from '../support/waiting.js';

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

// At the edges of pacing, against a fake Mailgun that records every request, refused ones
// included, and answers any Retry-After text.
const KEY = 'key-review-test-0123456789';

/** A Mailgun that answers `answer(n)` (n: 0-based request number) and records every request. */
async function fakeMailgun(
  port: number,
  answer: MailgunAnswer,
): Promise<{ url: string; hits: Hit[]; close: () => Promise<void> }> {
  const hits: Hit[] = [];
  const server: Server = createServer(recordingMailgun(answer, (hit) => hits.push(hit)));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}/v3/mg.example.com`,
    hits,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * `fakeMailgun` answering every send 200, in a thread of its own: the arrival times are taken on
 * an event loop that nothing else shares, so a pause of the test runner's (a collection of its
 * large heap, late in a full run) cannot hold arrivals back and stamp them together.
 */
async function threadedMailgun(
  port: number,
): Promise<{ url: string; hits: Hit[]; close: () => Promise<void> }> {
  const hits: Hit[] = [];
  const thread = new Worker(new URL('../support/recording-mailgun-thread.js', import.meta.url), {
    workerData: { port },
  });
  await new Promise<void>((resolve, reject) => {
    thread.once('error', reject);
    thread.on('message', (m: Hit | 'listening') => (m === 'listening' ? resolve() : hits.push(m)));
  });
  return {
    url: `http://127.0.0.1:${port}/v3/mg.example.com`,
    hits,
    close: async () => void (await thread.terminate()),
  };
}

async function post(server: Started, count: number, label: string): Promise<string[]> {
  const posted = await mapLimit(Array.from({ length: count }), 10, (_, i) =>
    postEmail(server.url, { to: `user${i}@example.com`, subject: `${label} ${i}` }),
  );
  expect(posted.every((p) => p.status === 202)).to.equal(true);
  return posted.map((p) => String(p.body.id));
}

async function views(server: Started, ids: readonly string[]): Promise<StatusView[]> {
  return (await mapLimit(ids, 10, (id) => statusOf(server.url, id))).filter(
    (v): v is StatusView => v !== undefined,
  );
}

const metric = async (w: Started, name: string): Promise<string[]> =>
  (await (await fetch(`${w.url}/metrics`)).text()).split('\n').filter((l) => l.startsWith(name));

describe('pacing at its edges (email server and workers, a recording fake Mailgun)', function () {
  this.timeout(300_000);
  before(async () => {
    await requireRabbitMq();
    await requirePostgres();
  });

  // The fastest rate accepted (MAX_SEND_RATE_PER_S): its slots (1.1 ms) are shorter than a
  // worker can time, so each send leaves within MIN_GRACE_MS of its slot rather than one slot.
  it('MAILGUN_RATE=1000/s, the fastest accepted, sends 20 emails within 20 s', async () => {
    const mg = await fakeMailgun(18121, () => ({ status: 200 }));
    const roles = new Roles({
      MAIL_TRANSPORT: 'mailgun',
      MAILGUN_API_BASE: mg.url,
      MAILGUN_API_KEY: KEY,
      MAILGUN_RATE: '1000/s',
      RETRY_DELAYS: '1s,5s',
    });
    try {
      const server = await roles.startReady('server', { PORT: '18102' });
      const worker = await roles.startReady('worker', { WORKER_PORT: '18113' });
      const ids = await post(server, 20, 'Fast');
      await eventually(
        async () => {
          const vs = await views(server, ids);
          return vs.filter((v) => v.status === 'sent').length === ids.length ? true : undefined;
        },
        { timeoutMs: 20_000, what: 'every email sent' },
      );
      console.log(`      requests: ${mg.hits.length}`);
      console.log('      ', (await metric(worker, 'email_pacing_waits_total')).join(' '));
      expect(new Set(mg.hits.map((h) => h.emailId)).size).to.equal(ids.length);
    } finally {
      await roles.cleanup();
      await deleteTopology(AMQP_URL, roles.prefix, [1000, 5000]);
      await mg.close();
    }
  });

  // The first send of each worker process books COLD_SEND_SLOTS (2) slots, the extra one at most
  // MAX_EXTRA_ROOM_MS: at 6/min (one slot each 11 s) the second email leaves 11.1 s after the
  // first, not a whole slot later (22 s; at 1/h, two hours).
  it('MAILGUN_RATE=6/min sends the second email one slot (11 s) after the first', async () => {
    const mg = await fakeMailgun(18122, () => ({ status: 200 }));
    const roles = new Roles({
      MAIL_TRANSPORT: 'mailgun',
      MAILGUN_API_BASE: mg.url,
      MAILGUN_API_KEY: KEY,
      MAILGUN_RATE: '6/min',
      RETRY_DELAYS: '1s,5s',
    });
    try {
      const server = await roles.startReady('server', { PORT: '18103' });
      const worker = await roles.startReady('worker', { WORKER_PORT: '18114' });
      const ids = await post(server, 3, 'Slow');
      await eventually(() => (mg.hits.length >= 3 ? true : undefined), {
        timeoutMs: 60_000,
        what: 'three sends',
      });
      const gaps = mg.hits.slice(1).map((h, i) => h.atMs - (mg.hits[i]?.atMs ?? 0));
      console.log(`      gaps between sends (ms): ${JSON.stringify(gaps)}`);
      const vs = await views(server, ids);
      console.log(
        `      'sending' events per email: ${JSON.stringify(vs.map((v) => v.events.filter((e) => e.status === 'sending').length))}`,
      );
      for (const name of [
        'email_pacing_waits_total',
        'email_pacing_wait_seconds_sum',
        'email_pacing_wait_seconds_count',
        'email_pacing_tokens',
      ]) {
        console.log('      ', (await metric(worker, name)).join(' '));
      }
      expect(gaps[0]).to.be.below(15_000);
    } finally {
      await roles.cleanup();
      await deleteTopology(AMQP_URL, roles.prefix, [1000, 5000]);
      await mg.close();
    }
  });

  it('MAILGUN_RATE=20/s holds across three workers: 200 emails, at most 20 in any second', async () => {
    const mg = await threadedMailgun(18123);
    const roles = new Roles({
      MAIL_TRANSPORT: 'mailgun',
      MAILGUN_API_BASE: mg.url,
      MAILGUN_API_KEY: KEY,
      MAILGUN_RATE: '20/s',
      RETRY_DELAYS: '1s,5s',
    });
    try {
      const server = await roles.startReady('server', { PORT: '18104' });
      const ids = await post(server, 200, 'Three');
      await Promise.all(
        ['18116', '18117', '18118'].map((p) => roles.startReady('worker', { WORKER_PORT: p })),
      );
      await eventually(() => (mg.hits.length >= 200 ? true : undefined), {
        timeoutMs: 90_000,
        what: '200 sends',
      });
      const times = mg.hits.map((h) => h.atMs).sort((a, b) => a - b);
      const busiest = busiestSecond(times);
      const span = (times.at(-1) ?? 0) - (times[0] ?? 0);
      console.log(
        `      span ${span} ms, busiest second ${busiest}, distinct ids ${new Set(mg.hits.map((h) => h.emailId)).size}`,
      );
      expect(new Set(mg.hits.map((h) => h.emailId)).size).to.equal(ids.length);
      expect(mg.hits.length).to.equal(200);
      expect(span).to.be.at.least(9500);
      expect(busiest).to.be.at.most(20);
    } finally {
      await roles.cleanup();
      await deleteTopology(AMQP_URL, roles.prefix, [1000, 5000]);
      await mg.close();
    }
  });

  it('loses nothing and sends once when the database drops every connection during pacing', async () => {
    const mg = await fakeMailgun(18124, () => ({ status: 200 }));
    const roles = new Roles({
      MAIL_TRANSPORT: 'mailgun',
      MAILGUN_API_BASE: mg.url,
      MAILGUN_API_KEY: KEY,
      MAILGUN_RATE: '10/s',
      RETRY_DELAYS: '1s,5s',
    });
    try {
      const dbUrl = await roles.database();
      const dbName = new URL(dbUrl).pathname.slice(1);
      const server = await roles.startReady('server', { PORT: '18105' });
      const ids = await post(server, 60, 'Drops');
      await roles.startReady('worker', { WORKER_PORT: '18119' });
      await roles.startReady('worker', { WORKER_PORT: '18126' });
      const { default: pg } = await import('pg');
      const admin = new pg.Client({ connectionString: dbUrl.replace(/\/[^/]*$/, '/postgres') });
      await admin.connect();
      try {
        for (let i = 0; i < 8; i += 1) {
          await sleep(500);
          await admin.query(
            'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
            [dbName],
          );
        }
      } finally {
        await admin.end();
      }
      await eventually(
        async () => {
          const vs = await views(server, ids);
          return vs.length === ids.length && vs.every((v) => v.status === 'sent')
            ? true
            : undefined;
        },
        { timeoutMs: 60_000, what: 'every email sent' },
      );
      const counts = new Map<string, number>();
      for (const h of mg.hits) counts.set(h.emailId, (counts.get(h.emailId) ?? 0) + 1);
      console.log(`      requests ${mg.hits.length} for ${ids.length} emails`);
      expect([...counts.values()].filter((n) => n > 1)).to.deep.equal([]);
    } finally {
      await roles.cleanup();
      await deleteTopology(AMQP_URL, roles.prefix, [1000, 5000]);
      await mg.close();
    }
  });

  // SMTP 421 with a rate text is throttled (no attempt spent); without one, transient.
  it('SMTP 421 "too many messages, slow down" spends no attempt; a plain 421 does', async () => {
    let n = 0;
    const received: string[] = [];
    const server421 = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, session, callback) {
        stream.on('data', () => undefined);
        stream.on('end', () => {
          n += 1;
          const subject = session.envelope.rcptTo.map((r) => r.address).join(',');
          if (n <= 3) {
            return callback(
              Object.assign(new Error('4.7.0 Too many messages, slow down'), { responseCode: 421 }),
            );
          }
          if (n === 4) {
            return callback(
              Object.assign(new Error('4.3.2 Service shutting down'), { responseCode: 421 }),
            );
          }
          received.push(subject);
          callback(null, 'Queued');
        });
      },
    });
    await new Promise<void>((r) => server421.listen(18129, '127.0.0.1', () => r()));
    const roles = new Roles({
      MAIL_TRANSPORT: 'smtp',
      SMTP_URL: 'smtp://127.0.0.1:18129',
      MAX_ATTEMPTS: '3',
      RETRY_DELAYS: '1s,5s',
    });
    try {
      const server = await roles.startReady('server', { PORT: '18107' });
      await roles.startReady('worker', { WORKER_PORT: '18132' });
      const ids = await post(server, 1, 'Smtp421');
      await eventually(
        async () => ((await views(server, ids))[0]?.status === 'sent' ? true : undefined),
        { timeoutMs: 60_000, what: 'sent' },
      );
      const [v] = await views(server, ids);
      console.log(
        `      ${JSON.stringify(v?.attempts.map((a) => [a.attempt, a.outcome, a.detail]))}`,
      );
      expect(v?.attempts.map((a) => a.attempt)).to.deep.equal([1, 1, 1, 1, 2]);
    } finally {
      await roles.cleanup();
      await deleteTopology(AMQP_URL, roles.prefix, [1000, 5000]);
      await new Promise<void>((r) => server421.close(() => r()));
    }
  });

  // send_pacing keeps the next free slot as a time, booked at the rate of the worker that booked
  // it: a rate set too low by mistake (1/h) and then corrected must not hold every send back until
  // the slots booked at the old rate run out (SendPacer.acquire takes them as stale).
  it('a corrected MAILGUN_RATE takes effect at the restart (1/h, then 20/s)', async () => {
    const mg = await fakeMailgun(18139, () => ({ status: 200 }));
    const roles = new Roles({
      MAIL_TRANSPORT: 'mailgun',
      MAILGUN_API_BASE: mg.url,
      MAILGUN_API_KEY: KEY,
      RETRY_DELAYS: '1s,5s',
    });
    try {
      const server = await roles.startReady('server', { PORT: '18140' });
      const slow = await roles.startReady('worker', { WORKER_PORT: '18141', MAILGUN_RATE: '1/h' });
      await post(server, 1, 'Before');
      await eventually(() => (mg.hits.length >= 1 ? true : undefined), { what: 'first send' });
      await slow.proc.stop('SIGTERM');
      await roles.startReady('worker', { WORKER_PORT: '18142', MAILGUN_RATE: '20/s' });
      const ids = await post(server, 5, 'After');
      await eventually(
        async () => {
          const vs = await views(server, ids);
          return vs.filter((v) => v.status === 'sent').length === ids.length ? true : undefined;
        },
        { timeoutMs: 15_000, what: 'the five emails sent at the corrected rate' },
      );
    } finally {
      await roles.cleanup();
      await deleteTopology(AMQP_URL, roles.prefix, [1000, 5000]);
      await mg.close();
    }
  });
});
