import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { TestDatabase } from '../support/postgres.js';
import { freshDatabase, requirePostgres } from '../support/postgres.js';
import { runEmail } from '../support/process.js';

describe('the email command', () => {
  it('prints usage for --help and exits 0', async () => {
    const proc = runEmail(['--help'], {});
    const { code } = await proc.exited;
    await proc.closed; // and its last output read
    expect(code).to.equal(0);
    expect(proc.output()).to.contain('Usage: email <command>').and.contain('dead-letters');
  });

  it('names PORT when the port is taken, in one line, and exits 1', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const proc = runEmail(['dev'], { PORT: String(port), HOST: '127.0.0.1' });
      const { code } = await proc.exited;
      await proc.closed;
      expect(code).to.equal(1);
      expect(proc.stderr.join('')).to.equal(
        `email: 127.0.0.1:${port} is already in use: stop what listens there, or set PORT to another port (0 picks a free one)\n`,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('prints usage for an unknown command and exits 2', async () => {
    const proc = runEmail(['frobnicate'], {});
    const { code } = await proc.exited;
    await proc.closed; // and its last output read
    expect(code).to.equal(2);
    expect(proc.stderr.join('')).to.contain('unknown command "frobnicate"').and.contain('Usage:');
  });

  it('reports every configuration problem at once, exits 2, and never prints a secret', async () => {
    const proc = runEmail(['worker'], {
      MAIL_TRANSPORT: 'mailgun,carrier-pigeon',
      MAILGUN_API_KEY: 'key-supersecret-123',
      PORT: 'eighty',
      RETRY_DELAYS: '1s,soon',
      AMQP_URL: 'http://guest:hunter2@localhost',
    });
    const { code } = await proc.exited;
    await proc.closed; // and its last output read
    const err = proc.stderr.join('');
    expect(code).to.equal(2);
    for (const variable of ['MAIL_TRANSPORT', 'PORT', 'RETRY_DELAYS', 'AMQP_URL', 'DATABASE_URL'])
      expect(err).to.contain(variable);
    expect(err).not.to.contain('supersecret');
    expect(err).not.to.contain('hunter2');
  });

  it('says what a transport needs when it is missing', async () => {
    const proc = runEmail(['dev'], { MAIL_TRANSPORT: 'smtp' });
    const { code } = await proc.exited;
    await proc.closed; // and its last output read
    expect(code).to.equal(2);
    expect(proc.stderr.join('')).to.match(/SMTP_URL is required/);
  });

  for (const role of ['server', 'worker']) {
    it(`email ${role} without DATABASE_URL exits 2 and names it`, async () => {
      const proc = runEmail([role], { AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672' });
      const { code } = await proc.exited;
      await proc.closed; // and its last output read
      expect(code).to.equal(2);
      expect(proc.stderr.join('')).to.match(/DATABASE_URL is required/);
    });
  }

  describe('email migrate', function () {
    this.timeout(30_000);
    let db: TestDatabase | undefined;

    before(async () => {
      await requirePostgres();
      db = await freshDatabase('cli_migrate');
    });
    after(() => db?.drop());

    const migrate = async () => {
      const proc = runEmail(['migrate'], { DATABASE_URL: db?.url, LOG_LEVEL: 'warn' });
      const { code } = await proc.exited;
      await proc.closed; // and its last output read
      return { code, stdout: proc.stdout.join(''), stderr: proc.stderr.join('') };
    };

    it('applies the migrations to an empty database and says which', async () => {
      const first = await migrate();
      expect(first.code, first.stderr).to.equal(0);
      expect(first.stdout).to.match(/^Applied \d+ migrations?: \S.*\n$/);
    });

    it('says the database is up to date the second time', async () => {
      const second = await migrate();
      expect(second.code, second.stderr).to.equal(0);
      expect(second.stdout).to.equal('The database is up to date.\n');
    });

    it('without DATABASE_URL migrates the embedded database in DATA_DIR', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'email-cli-'));
      try {
        const dataDir = join(dir, 'data');
        const run = async () => {
          const proc = runEmail(['migrate'], { DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
          const { code } = await proc.exited;
          await proc.closed;
          return { code, stdout: proc.stdout.join(''), stderr: proc.stderr.join('') };
        };
        const first = await run();
        expect(first.code, first.stderr).to.equal(0);
        expect(first.stdout).to.match(/^Applied \d+ migrations?: \S.*\n$/);
        const second = await run();
        expect(second.stdout).to.equal('The database is up to date.\n');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('names DATA_DIR and exits 2 when the folder cannot be used', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'email-cli-'));
      try {
        // A folder under a regular file cannot be created, even by root.
        await writeFile(join(dir, 'a-file'), 'not a folder');
        const proc = runEmail(['migrate'], { DATA_DIR: join(dir, 'a-file', 'data') });
        const { code } = await proc.exited;
        await proc.closed;
        expect(code).to.equal(2);
        expect(proc.stderr.join('')).to.contain('DATA_DIR=');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
