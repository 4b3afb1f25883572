// `email dead-letters list | replay | purge` against what a real `email worker` dead-lettered.
import { expect } from 'chai';
import type { MailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../src/stand-ins/mailgun-stand-in.js';
import { requirePostgres } from '../support/postgres.js';
import { requireRabbitMq } from '../support/rabbitmq.js';
import type { Started } from '../support/roles.js';
import { MAILGUN_KEY, Roles, queueDepth, queueEmail, waitForStatus } from '../support/roles.js';
import { eventually } from '../support/waiting.js';

interface ListedLetter {
  id: string;
  to: string[];
  subject: string;
  reason: string;
  attempts: number;
  failedAt: string;
}

describe('email dead-letters on what the worker could not deliver', function () {
  this.timeout(60_000);
  let mailgun: MailgunStandIn;
  let roles: Roles;
  let server: Started;
  let id: string;

  before(async () => {
    await requireRabbitMq();
    await requirePostgres();
    mailgun = await startMailgunStandIn({ domain: 'mg.example.com', apiKey: MAILGUN_KEY });
    roles = new Roles({
      MAIL_TRANSPORT: 'mailgun',
      MAILGUN_API_BASE: mailgun.baseUrl,
      MAILGUN_API_KEY: MAILGUN_KEY,
    });
    server = await roles.start('server');
    await roles.start('worker');
  });
  after(async () => {
    await roles?.cleanup();
    await mailgun?.close();
  });

  /** An email Mailgun refuses with a 400: dead-lettered at once, as a permanent failure. */
  async function deadLetter(subject: string): Promise<string> {
    mailgun.script({ status: 400 });
    const before = (await queueDepth(roles.prefix, 'dead')).messageCount;
    const emailId = await queueEmail(server.url, {
      to: ['Ada <ada@example.com>', 'bob@example.org'],
      subject,
      text: 'This one will not go through the first time.',
    });
    await waitForStatus(server.url, emailId, 'failed');
    // The failed event goes out just before the dead letter is confirmed: wait for the letter.
    await eventually(
      async () =>
        (await queueDepth(roles.prefix, 'dead')).messageCount > before ? true : undefined,
      { timeoutMs: 10_000, what: 'the dead letter in the dead queue' },
    );
    return emailId;
  }

  it('list shows a permanent failure as a table, and leaves it in place', async () => {
    id = await deadLetter('Refused by Mailgun');
    const first = await roles.cli(['dead-letters', 'list']);
    expect(first.code, first.stderr).to.equal(0);
    const lines = first.stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(/^ID\s+RECIPIENTS\s+SUBJECT\s+REASON\s+ATTEMPTS\s+FAILED AT$/);
    expect(lines).to.have.length(3);
    const row = lines[1] ?? '';
    expect(row.startsWith(id)).to.equal(true);
    expect(row).to.contain('Ada <ada@example.com>, bob@example.org');
    expect(row).to.contain('Refused by Mailgun');
    expect(row).to.match(/permanent: .*\s+1\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(lines[2]).to.equal('1 dead letter.');
    console.log(`      ${first.stdout.trimEnd().split('\n').join('\n      ')}`);

    const second = await roles.cli(['dead-letters', 'list']);
    expect(second.code).to.equal(0);
    expect(second.stdout, 'listing again shows the same').to.equal(first.stdout);
    expect((await queueDepth(roles.prefix, 'dead')).messageCount).to.equal(1);
  });

  it('list --json prints the same letter as JSON', async () => {
    const listed = await roles.cli(['dead-letters', 'list', '--json']);
    expect(listed.code, listed.stderr).to.equal(0);
    const letters = JSON.parse(listed.stdout) as ListedLetter[];
    expect(letters).to.have.length(1);
    const [letter] = letters;
    expect(letter).to.include({ id, subject: 'Refused by Mailgun', attempts: 1 });
    expect(letter?.to).to.deep.equal(['Ada <ada@example.com>', 'bob@example.org']);
    expect(letter?.reason).to.match(/^permanent: /);
    expect(Number.isNaN(Date.parse(letter?.failedAt ?? ''))).to.equal(false);
  });

  it('replay --id puts it back; the worker sends it and the status says sent', async () => {
    // The 400 was scripted once: Mailgun accepts from now on.
    const replayed = await roles.cli(['dead-letters', 'replay', '--id', id]);
    expect(replayed.code, replayed.stderr).to.equal(0);
    expect(replayed.stdout).to.equal('Replayed 1 dead letter.\n');
    const message = await eventually(
      async () => mailgun.messages.find((m) => m.variables['email-id'] === id),
      { timeoutMs: 10_000, what: 'the replayed email at the stand-in' },
    );
    const view = await waitForStatus(server.url, id, 'sent');
    expect(view.provider_id).to.equal(message.id);
    expect(view.attempts.map((a) => a.outcome)).to.deep.equal(['permanent', 'sent']);
    expect(view.events.map((e) => e.status)).to.deep.equal([
      'queued',
      'sending',
      'failed',
      'sending',
      'sent',
    ]);

    const listed = await roles.cli(['dead-letters', 'list']);
    expect(listed.stdout).to.equal('No dead letters.\n');
  });

  it('purge deletes every dead letter', async () => {
    await deadLetter('Purge me');
    await deadLetter('Purge me too');
    const purged = await roles.cli(['dead-letters', 'purge']);
    expect(purged.code, purged.stderr).to.equal(0);
    expect(purged.stdout).to.equal('Purged 2 dead letters.\n');
    const listed = await roles.cli(['dead-letters', 'list']);
    expect(listed.stdout).to.equal('No dead letters.\n');
  });

  it('with the broker unreachable, a command exits 1 and says so (never a silent success)', async () => {
    const purged = await roles.cli(['dead-letters', 'purge'], {
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:1',
    });
    expect(purged.code, `exit code; stderr: ${purged.stderr}`).to.equal(1);
    expect(purged.stdout).to.equal('');
    expect(purged.stderr).to.contain('RabbitMQ is not reachable at amqp://guest:***@127.0.0.1:1');
  });

  it('replay --id of an id that is not there exits 1 and says so', async () => {
    const replayed = await roles.cli(['dead-letters', 'replay', '--id', 'unknown']);
    expect(replayed.code).to.equal(1);
    expect(replayed.stderr).to.contain('No dead letter has the id unknown.');
  });
});
