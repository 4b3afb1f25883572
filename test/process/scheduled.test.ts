// Scheduled sends (`send_at`) end to end: held by us, released within a second of their time,
// cancelled before it, and kept through restarts of every role, in `email dev` and in
// `email server` + `email worker` on RabbitMQ and PostgreSQL.
import { expect } from 'chai';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EmailProcess } from '../support/process.js';
import { startListening } from '../support/process.js';
import { requirePostgres } from '../support/postgres.js';
import { requireRabbitMq } from '../support/rabbitmq.js';
import type { Roles } from '../support/roles.js';
import {
  AUTHORIZED,
  postEmail,
  startOutboxRoles,
  statusOf,
  stopOutboxRoles,
  waitForStatus,
} from '../support/roles.js';
import { eventually } from '../support/waiting.js';

/** An email is released within a second of its time; the file may take a little longer. */
const WRITTEN_WITHIN_MS = 1_500;

const inMs = (ms: number): string => new Date(Date.now() + ms).toISOString();

const cancel = async (url: string, id: string): Promise<{ status: number; body: unknown }> => {
  const response = await fetch(`${url}/emails/${id}`, { method: 'DELETE', headers: AUTHORIZED });
  return { status: response.status, body: await response.json() };
};

/** Schedules an email; answers its id and its send time in milliseconds. */
async function schedule(url: string, aheadMs: number): Promise<{ id: string; sendAtMs: number }> {
  const sendAt = inMs(aheadMs);
  const posted = await postEmail(url, { send_at: sendAt });
  expect(posted.status, JSON.stringify(posted.body)).to.equal(202);
  expect(posted.body.status).to.equal('scheduled');
  return { id: String(posted.body.id), sendAtMs: Date.parse(sendAt) };
}

/**
 * Watches the outbox for `id`.eml from now on, and answers when it was first seen. Every look
 * before `sendAtMs` must find nothing: the file may not exist before its time.
 */
async function appearance(outbox: string, id: string, sendAtMs: number): Promise<number> {
  return eventually(
    async () => {
      const files = await readdir(outbox);
      const seenAt = Date.now();
      if (!files.includes(`${id}.eml`)) return undefined;
      return seenAt;
    },
    { timeoutMs: Math.max(0, sendAtMs - Date.now()) + 10_000, what: `${id}.eml in the outbox` },
  ).then((seenAt) => {
    expect(seenAt, `${id}.eml was written before its send_at`).to.be.at.least(sendAtMs);
    return seenAt;
  });
}

describe('scheduled sends in email dev (one process, outbox)', function () {
  this.timeout(30_000);
  let outbox: string;
  let proc: EmailProcess | undefined;
  let url: string;

  before(async function () {
    // The embedded database opens in seconds, but in many more on a loaded machine.
    this.timeout(60_000);
    outbox = await mkdtemp(join(tmpdir(), 'email-scheduled-'));
    ({ proc, url } = await startListening(['dev'], {
      HOST: '127.0.0.1',
      DATA_DIR: 'memory',
      MAIL_TRANSPORT: 'outbox',
      OUTBOX_DIR: outbox,
      MAIL_FROM: 'Example <noreply@example.com>',
    }));
  });

  after(async () => {
    await proc?.stop();
    if (outbox) await rm(outbox, { recursive: true, force: true });
  });

  it('sends at send_at (not before, within a second and a half), and never what was cancelled', async () => {
    const due = await schedule(url, 2_000);
    const cancelled = await schedule(url, 3_000);
    // Due after the cancelled one: once it is written, the cancelled one's time has passed too.
    const sentinel = await schedule(url, 3_200);

    const view = await statusOf(url, due.id);
    expect(view).to.deep.include({
      status: 'scheduled',
      send_at: new Date(due.sendAtMs).toISOString(),
    });

    expect(await cancel(url, cancelled.id)).to.deep.equal({
      status: 200,
      body: { id: cancelled.id, status: 'cancelled' },
    });
    expect(await cancel(url, cancelled.id)).to.deep.equal({
      status: 200,
      body: { id: cancelled.id, status: 'cancelled' },
    });

    const seenAt = await appearance(outbox, due.id, due.sendAtMs);
    expect(seenAt - due.sendAtMs).to.be.at.most(WRITTEN_WITHIN_MS);
    const sent = await waitForStatus(url, due.id, 'sent');
    expect(Date.parse(sent.sent_at ?? '')).to.be.at.least(due.sendAtMs);
    expect(sent.events.map((e) => e.status)).to.deep.equal([
      'scheduled',
      'queued',
      'sending',
      'sent',
    ]);

    await appearance(outbox, sentinel.id, sentinel.sendAtMs);
    expect(await readdir(outbox)).not.to.include(`${cancelled.id}.eml`);
    expect((await statusOf(url, cancelled.id))?.status).to.equal('cancelled');

    const late = await cancel(url, due.id);
    expect(late.status).to.equal(409);
    expect(late.body).to.have.nested.property('error.code', 'not_cancellable');
  });
});

describe('scheduled sends in email server + email worker (RabbitMQ, PostgreSQL)', function () {
  this.timeout(60_000);
  let roles: Roles | undefined;
  let outbox: string | undefined;

  before(async () => {
    await requireRabbitMq();
    await requirePostgres();
    ({ roles, outbox } = await startOutboxRoles());
  });
  after(async () => stopOutboxRoles(roles, outbox));

  it('refuses a send_at in the past or more than 30 days ahead', async () => {
    const server = await roles!.startReady('server');
    for (const sendAt of [inMs(-60_000), inMs(31 * 24 * 60 * 60 * 1000)]) {
      const posted = await postEmail(server.url, { send_at: sendAt });
      expect(posted.status, sendAt).to.equal(400);
      expect(posted.body.error?.code).to.equal('invalid_request');
    }
    await server.proc.stop();
  });

  it('sends a scheduled email at its time after both roles were restarted', async () => {
    const fx = roles!;
    const startedAt = Date.now();
    const first = await fx.startReady('server');
    const worker = await fx.startReady('worker');
    // Due once both are back: a restart takes about as long as the first start, longer when
    // the machine is busy.
    const email = await schedule(
      first.url,
      Math.max(4_000, 1.5 * (Date.now() - startedAt) + 2_000),
    );

    await Promise.all([worker.proc.stop('SIGTERM'), first.proc.stop('SIGTERM')]);
    expect(worker.proc.child.exitCode).to.equal(0);
    expect(first.proc.child.exitCode).to.equal(0);
    const [server] = await Promise.all([fx.startReady('server'), fx.startReady('worker')]);
    expect(Date.now(), 'the roles took too long to restart').to.be.below(email.sendAtMs);
    expect((await statusOf(server.url, email.id))?.status).to.equal('scheduled');

    const seenAt = await appearance(outbox!, email.id, email.sendAtMs);
    expect(seenAt - email.sendAtMs).to.be.at.most(WRITTEN_WITHIN_MS);
    const sent = await waitForStatus(server.url, email.id, 'sent');
    expect(Date.parse(sent.sent_at ?? '')).to.be.at.least(email.sendAtMs);
  });
});
