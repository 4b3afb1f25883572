// The suppression list as an operator and a client meet it: `email suppressions …` on the
// database of `email server` and `email worker`, which refuse and drop what it lists, at accept
// time and again at send time; and `email dev`, where the list is open on loopback.
import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import type { EmailProcess } from '../support/process.js';
import { startListening } from '../support/process.js';
import { requirePostgres } from '../support/postgres.js';
import { requireRabbitMq } from '../support/rabbitmq.js';
import type { Roles, Started } from '../support/roles.js';
import {
  metricValue,
  postEmail,
  startOutboxRoles,
  statusOf,
  stopOutboxRoles,
  waitForStatus,
} from '../support/roles.js';
import { eventually } from '../support/waiting.js';

interface Listed {
  readonly address: string;
  readonly reason: string;
  readonly detail: string | null;
  readonly created_at: string;
}

/** The .eml the outbox wrote for `id`, once it is there: its octets, and parsed. */
const emlFor = async (outbox: string, id: string) => {
  const raw = await eventually(
    async () =>
      (await readdir(outbox)).includes(`${id}.eml`)
        ? readFile(join(outbox, `${id}.eml`))
        : undefined,
    { what: `${id}.eml in the outbox` },
  );
  return { raw: raw.toString('utf8'), mail: await simpleParser(raw) };
};

const toAddresses = (mail: Awaited<ReturnType<typeof simpleParser>>): string[] =>
  (Array.isArray(mail.to) ? mail.to.flatMap((a) => a.value) : (mail.to?.value ?? [])).map(
    (a) => a.address ?? '',
  );

describe('email suppressions, and the server and worker that honour the list', function () {
  this.timeout(60_000);
  let roles: Roles;
  let outbox: string;

  before(async () => {
    await Promise.all([requirePostgres(), requireRabbitMq()]);
    ({ roles, outbox } = await startOutboxRoles());
    await roles.database();
  });
  after(() => stopOutboxRoles(roles, outbox));

  const email = (...args: string[]) => roles.cli(['suppressions', ...args]);
  const listed = async (): Promise<Listed[]> => {
    const result = await email('list', '--json');
    expect(result.code, result.stderr).to.equal(0);
    return JSON.parse(result.stdout) as Listed[];
  };

  it('adds an address once as its mailbox key, lists it, and removes it by either form', async () => {
    const added = await email('add', 'Info Desk <info@BÜCHER.de>', '--reason', 'bounce');
    expect(added.code, added.stderr).to.equal(0);
    expect(added.stdout).to.contain('info@xn--bcher-kva.de');
    const again = await email('add', 'info@xn--bcher-kva.de', '--detail', 'by hand');
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout).to.contain('already');

    const rows = await listed();
    expect(rows).to.have.length(1);
    expect(rows[0]).to.deep.include({
      address: 'info@xn--bcher-kva.de',
      reason: 'bounce',
      detail: null,
    });
    expect(Date.parse(rows[0]?.created_at ?? '')).to.be.closeTo(Date.now(), 60_000);
    const table = await email('list');
    expect(table.stdout).to.match(/^ADDRESS\s+REASON\s+CREATED\s+DETAIL\n/);
    expect(table.stdout).to.match(/\ninfo@xn--bcher-kva\.de\s+bounce\s+\d{4}-/);

    const removed = await email('remove', 'info@bücher.de');
    expect(removed.code, removed.stderr).to.equal(0);
    const twice = await email('remove', 'info@bücher.de');
    expect(twice.code).to.equal(1);
    expect(twice.stderr).to.contain('not on the suppression list');
    expect(await listed()).to.deep.equal([]);
    expect((await email('list')).stdout).to.equal('No suppressed addresses.\n');
  });

  it('refuses bad arguments (exit 2, with the usage) and a bad address (exit 1)', async () => {
    const [reason, verb, address] = await Promise.all([
      email('add', 'ada@example.com', '--reason', 'spite'),
      email('forget', 'ada@example.com'),
      email('add', 'not an address'),
    ]);
    expect(reason.code).to.equal(2);
    expect(reason.stderr).to.contain('bounce, complaint, unsubscribe, manual');
    expect(reason.stderr).to.contain('Usage:');
    expect(verb.code).to.equal(2);
    expect(address.code).to.equal(1);
    expect(address.stderr).to.contain('not a valid address');
    expect(await listed()).to.deep.equal([]);
  });

  describe('with a server and a worker on the same database', () => {
    let server: Started;
    let worker: Started | undefined;

    before(async () => {
      server = await roles.startReady('server');
    });
    after(async () => {
      const added = ['bob', 'carol', 'dan', 'erin', 'frank'].map((name) => `${name}@example.com`);
      for (const address of added) {
        await email('remove', address);
      }
    });

    it('refuses at accept time what the command listed, and drops at send time what it listed since', async () => {
      expect((await email('add', 'bob@example.com')).code).to.equal(0);
      const refused = await postEmail(server.url, { to: 'bob@example.com' });
      expect(refused.status).to.equal(422);
      expect(refused.body.error?.code).to.equal('all_recipients_suppressed');

      // Accepted while nobody is listed, and waiting on the queue: no worker runs yet.
      const both = await postEmail(server.url, { to: ['ada@example.com', 'carol@example.com'] });
      const alone = await postEmail(server.url, { to: 'dan@example.com' });
      expect([both.status, alone.status]).to.deep.equal([202, 202]);
      expect(both.body).not.to.have.property('suppressed');
      expect((await email('add', 'carol@example.com', '--reason', 'complaint')).code).to.equal(0);
      expect((await email('add', 'dan@example.com', '--reason', 'unsubscribe')).code).to.equal(0);
      // The server heard each of the command's adds: its copy in memory holds the three.
      await eventually(
        async () =>
          (await metricValue(server.url, 'email_suppression_list_cached_addresses')) === 3,
        {
          what: 'email_suppression_list_cached_addresses at 3 on the server',
        },
      );

      worker = await roles.startReady('worker');
      // It keeps no copy of the list: each send asks PostgreSQL, which has every committed add
      // (a copy hears another process's add only when its notification arrives).
      expect(await metricValue(worker.url, 'email_suppression_list_cached_addresses')).to.equal(
        undefined,
      );
      const bothId = String(both.body.id);
      const aloneId = String(alone.body.id);
      const { raw, mail } = await emlFor(outbox, bothId);
      expect(toAddresses(mail)).to.deep.equal(['ada@example.com']);
      expect(raw).not.to.contain('carol');
      await waitForStatus(server.url, bothId, 'sent');

      const settled = await waitForStatus(server.url, aloneId, 'suppressed');
      expect(settled.attempts).to.deep.equal([]);
      expect(settled.recipients).to.deep.equal([
        { address: 'dan@example.com', status: 'suppressed' },
      ]);
      expect((await readdir(outbox)).includes(`${aloneId}.eml`)).to.equal(false);
      expect((await statusOf(server.url, aloneId))?.events.map((e) => e.status)).to.deep.equal([
        'queued',
        'suppressed',
      ]);
    });

    it('drops at send time an address listed while the email waited and the worker ran', async () => {
      worker ??= await roles.startReady('worker');
      // Held until then by the scheduler, with the worker running all along.
      const sendAt = new Date(Date.now() + 6000).toISOString();
      const posted = await postEmail(server.url, {
        to: ['ada@example.com', 'erin@example.com'],
        send_at: sendAt,
      });
      expect(posted.status).to.equal(202);
      // Once the command has returned, no send may go to the address.
      expect((await email('add', 'erin@example.com')).code).to.equal(0);
      const id = String(posted.body.id);
      const { raw, mail } = await emlFor(outbox, id);
      expect(toAddresses(mail)).to.deep.equal(['ada@example.com']);
      expect(raw).not.to.contain('erin');
      expect(Date.now()).to.be.at.least(Date.parse(sendAt));
    });

    it('never sends to an address whose add returned before the email was posted', async () => {
      worker ??= await roles.startReady('worker');
      expect((await email('add', 'frank@example.com')).code).to.equal(0);
      // At once: the server's copy has most likely heard the add by now (the command takes a
      // second) and drops frank at accept; if not, the worker's look-up before the send does.
      // What a user sees either way: frank gets nothing. (That the worker keeps no copy of its
      // own is checked above, on its /metrics.)
      const posted = await postEmail(server.url, { to: ['ada@example.com', 'frank@example.com'] });
      expect(posted.status).to.equal(202);
      const { raw, mail } = await emlFor(outbox, String(posted.body.id));
      expect(toAddresses(mail)).to.deep.equal(['ada@example.com']);
      expect(raw).not.to.contain('frank');
    });
  });
});

describe('email dev: the suppression list, open on loopback', function () {
  this.timeout(60_000);
  let proc: EmailProcess;
  let url: string;
  let outbox: string;

  before(async () => {
    outbox = await mkdtemp(join(tmpdir(), 'email-dev-suppressions-'));
    ({ proc, url } = await startListening(['dev'], {
      OUTBOX_DIR: outbox,
      MAIL_FROM: 'Email Example <noreply@example.com>',
    }));
  });
  after(async () => {
    await proc?.stop();
    if (outbox) await rm(outbox, { recursive: true, force: true });
  });

  const post = (path: string, body: unknown) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const send = (to: string | string[]) => post('/emails', { to, subject: 'Hi', text: 'Hello' });

  it('drops a suppressed recipient from what it sends, and refuses an email to nobody else', async () => {
    expect((await post('/suppressions', { address: 'bob@example.com' })).status).to.equal(201);

    const accepted = await send(['bob@example.com', 'ada@example.com']);
    expect(accepted.status).to.equal(202);
    const body = (await accepted.json()) as { id: string; suppressed?: string[] };
    expect(body.suppressed).to.deep.equal(['bob@example.com']);
    const { raw, mail } = await emlFor(outbox, body.id);
    expect(toAddresses(mail)).to.deep.equal(['ada@example.com']);
    expect(raw).not.to.contain('bob@');

    const refused = await send('bob@example.com');
    expect(refused.status).to.equal(422);
    expect(((await refused.json()) as { error: { code: string } }).error.code).to.equal(
      'all_recipients_suppressed',
    );
  });

  it('takes an internationalised domain in either form, in any case, as one address', async () => {
    expect((await post('/suppressions', { address: 'info@bücher.de' })).status).to.equal(201);
    for (const to of ['info@xn--bcher-kva.de', 'info@XN--BCHER-KVA.DE', 'Info <info@BÜCHER.de>']) {
      const refused = await send(to);
      expect(refused.status, to).to.equal(422);
    }
    const listed = (await (await fetch(`${url}/suppressions`)).json()) as {
      data: { address: string }[];
    };
    expect(listed.data.map((e) => e.address)).to.include('info@xn--bcher-kva.de');
  });
});
