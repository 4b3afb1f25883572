// `email webhooks …` as an operator runs it: on a fresh PostgreSQL database (DATABASE_URL, which
// the command migrates itself), and on the embedded database in DATA_DIR without it. The secret
// is printed once, works with the standardwebhooks library, and is never listed; `email dev` on
// the same database serves what the command added.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import type { TestDatabase } from '../support/postgres.js';
import { freshDatabase, requirePostgres } from '../support/postgres.js';
import type { EmailProcess } from '../support/process.js';
import { runEmail, startListening } from '../support/process.js';

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

interface Listed {
  readonly id: string;
  readonly url: string;
  readonly events: string[];
  readonly created_at: string;
}

const SECRET = /^whsec_[A-Za-z0-9+/]+=*$/;
const ID = /^we_[A-Za-z0-9_-]{16}$/;

/** Runs `email webhooks …` to its end, with its whole output. */
async function webhooks(args: string[], env: Record<string, string>): Promise<CliResult> {
  const proc = runEmail(['webhooks', ...args], { LOG_LEVEL: 'info', ...env });
  const { code } = await proc.exited;
  await proc.closed;
  return { code, stdout: proc.stdout.join(''), stderr: proc.stderr.join('') };
}

describe('email webhooks (DATABASE_URL)', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  /** Everything printed but the stdout of `add`, where the secret belongs. */
  const printed: string[] = [];

  before(async () => {
    await requirePostgres();
    db = await freshDatabase('webhook_commands');
  });
  after(async () => db?.drop());

  const email = async (...args: string[]): Promise<CliResult> => {
    const result = await webhooks(args, { DATABASE_URL: db.url });
    printed.push(result.stderr);
    if (args[0] !== 'add') printed.push(result.stdout);
    return result;
  };
  const listed = async (): Promise<Listed[]> => {
    const result = await email('list', '--json');
    expect(result.code, result.stderr).to.equal(0);
    return JSON.parse(result.stdout) as Listed[];
  };

  it('adds an endpoint, printing its id and its secret once, lists it without the secret, and removes it', async () => {
    expect((await email('list')).stdout).to.equal('No webhook endpoints.\n');
    const added = await email('add', 'https://example.com/hooks', '--events', 'sent,Email.Bounced');
    expect(added.code, added.stderr).to.equal(0);
    const lines = added.stdout.trimEnd().split('\n');
    expect(lines).to.have.length(2);
    const [id = '', secret = ''] = lines;
    expect(id).to.match(ID);
    expect(secret).to.match(SECRET);
    expect(added.stderr).to.contain('shown this once').and.contain(id);
    expect(added.stderr).not.to.contain(secret);
    // The audit line names the endpoint, never its secret.
    expect(added.stderr).to.contain('webhook-endpoint-added');

    const hook = new Webhook(secret);
    const body = '{"type":"email.sent"}';
    const at = new Date();
    expect(
      hook.verify(body, {
        'webhook-id': 'msg_1',
        'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
        'webhook-signature': hook.sign('msg_1', at, body),
      }),
    ).to.deep.equal({ type: 'email.sent' });

    const all = await email('add', 'http://127.0.0.1:9/all');
    expect(all.code, all.stderr).to.equal(0);
    const allId = all.stdout.split('\n')[0] ?? '';
    const allSecret = all.stdout.split('\n')[1] ?? '';
    expect(allSecret).to.match(SECRET).and.not.equal(secret);

    const rows = await listed();
    expect(rows.map(({ created_at: _at, ...rest }) => rest)).to.deep.equal([
      { id, url: 'https://example.com/hooks', events: ['email.sent', 'email.bounced'] },
      { id: allId, url: 'http://127.0.0.1:9/all', events: [] },
    ]);
    expect(Date.parse(rows[0]?.created_at ?? '')).to.be.closeTo(Date.now(), 60_000);
    const table = await email('list');
    expect(table.code, table.stderr).to.equal(0);
    expect(table.stdout).to.match(/^ID\s+URL\s+EVENTS\s+CREATED\n/);
    expect(table.stdout).to.match(
      new RegExp(
        `\\n${id}\\s+https://example\\.com/hooks\\s+email\\.sent,email\\.bounced\\s+\\d{4}-`,
      ),
    );
    expect(table.stdout).to.match(
      new RegExp(`\\n${allId}\\s+http://127\\.0\\.0\\.1:9/all\\s+all\\s+\\d{4}-`),
    );

    const removed = await email('remove', id);
    expect(removed.code, removed.stderr).to.equal(0);
    expect(removed.stdout).to.contain(id);
    expect((await listed()).map((e) => e.id)).to.deep.equal([allId]);

    // Printed once: nothing else the commands wrote has either secret.
    for (const text of printed) {
      expect(text).not.to.contain(secret.slice('whsec_'.length));
      expect(text).not.to.contain(allSecret.slice('whsec_'.length));
      expect(text).not.to.contain('whsec_');
    }
    expect((await email('remove', allId)).code).to.equal(0);
  });

  it('exits 1 for an id that names no endpoint, and for a URL that cannot be one', async () => {
    const unknown = await email('remove', `we_${'A'.repeat(16)}`);
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr)
      .to.contain('no webhook endpoint has the id')
      .and.contain('email webhooks list');
    const other = await email('remove', 'mailgun');
    expect(other.code).to.equal(1);
    const ftp = await email('add', 'ftp://example.com/in');
    expect(ftp.code).to.equal(1);
    expect(ftp.stderr).to.contain('https://').and.contain('not ftp:');
    expect(ftp.stdout).to.equal('');
    const password = await email('add', 'https://ada:hunter2@example.com/hooks');
    expect(password.code).to.equal(1);
    expect(password.stderr).to.contain('user name or password').and.not.contain('hunter2');
    expect(await listed()).to.deep.equal([]);
  });

  it('refuses bad arguments with the usage on standard error, exit 2, and changes nothing', async () => {
    const cases = [
      [],
      ['forget'],
      ['add'],
      ['add', '--events', 'sent'],
      ['add', 'https://example.com/', '--events'],
      ['add', 'https://example.com/', '--events', ''],
      ['add', 'https://example.com/', '--colour', 'red'],
      ['list', '--yaml'],
      ['remove'],
      ['remove', 'a', 'b'],
    ];
    const results = await Promise.all(cases.map((args) => email(...args)));
    for (const [i, result] of results.entries()) {
      const args = cases[i]?.join(' ');
      expect(result.code, args).to.equal(2);
      expect(result.stderr, args).to.contain('Usage:').and.contain('email webhooks add URL');
      expect(result.stdout, args).to.equal('');
    }
    const event = await email('add', 'https://example.com/', '--events', 'sent,opened');
    expect(event.code).to.equal(2);
    expect(event.stderr).to.contain('"opened"').and.contain('delivered').and.contain('Usage:');
    expect(await listed()).to.deep.equal([]);
  });

  describe('and email dev on the same database', () => {
    let proc: EmailProcess;
    let url: string;
    let outbox: string;

    before(async () => {
      outbox = await mkdtemp(join(tmpdir(), 'email-webhook-commands-'));
      ({ proc, url } = await startListening(['dev'], { DATABASE_URL: db.url, OUTBOX_DIR: outbox }));
    });
    after(async () => {
      await proc?.stop();
      if (outbox) await rm(outbox, { recursive: true, force: true });
    });

    it('serves at /webhooks what the command added, and the command sees what the API added', async () => {
      const added = await email('add', 'https://example.com/from-cli', '--events', 'failed');
      expect(added.code, added.stderr).to.equal(0);
      const id = added.stdout.split('\n')[0] ?? '';
      const res = await fetch(`${url}/webhooks`);
      expect(res.status).to.equal(200);
      const text = await res.text();
      expect(text).not.to.contain('whsec_');
      expect((JSON.parse(text) as { data: Listed[] }).data.map((e) => e.id)).to.deep.equal([id]);

      const posted = await fetch(`${url}/webhooks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'https://example.com/from-api' }),
      });
      expect(posted.status).to.equal(201);
      const created = (await posted.json()) as Listed & { secret: string };
      expect(created.secret).to.match(SECRET);
      expect((await listed()).map((e) => e.id)).to.deep.equal([id, created.id]);

      expect((await fetch(`${url}/webhooks/${id}`, { method: 'DELETE' })).status).to.equal(204);
      expect((await email('remove', created.id)).code).to.equal(0);
      expect(await listed()).to.deep.equal([]);
    });
  });
});

describe('email webhooks (the embedded database in DATA_DIR)', function () {
  this.timeout(60_000);
  let dataDir: string;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'email-webhook-commands-data-'));
  });
  after(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps what it adds in DATA_DIR, for the next command to list and remove', async () => {
    const env = { DATA_DIR: dataDir };
    const added = await webhooks(['add', 'https://example.com/embedded'], env);
    expect(added.code, added.stderr).to.equal(0);
    const [id = '', secret = ''] = added.stdout.trimEnd().split('\n');
    expect(secret).to.match(SECRET);
    const listed = await webhooks(['list', '--json'], env);
    expect(listed.code, listed.stderr).to.equal(0);
    expect(listed.stdout).not.to.contain('whsec_');
    expect((JSON.parse(listed.stdout) as Listed[]).map((e) => [e.id, e.url])).to.deep.equal([
      [id, 'https://example.com/embedded'],
    ]);
    expect((await webhooks(['remove', id], env)).code).to.equal(0);
    expect((await webhooks(['list'], env)).stdout).to.equal('No webhook endpoints.\n');
  });
});
