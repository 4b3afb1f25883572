import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { TestDatabase } from '../support/postgres.js';
import pg from 'pg';
import { POSTGRES_URL, freshDatabase, requirePostgres } from '../support/postgres.js';
import { runEmail, startListening, waitForRecord } from '../support/process.js';
import { eventually, sleep } from '../support/waiting.js';

/** One statement as the test server's superuser (roles are the server's, not a database's). */
async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

describe('the email command', () => {
  it('prints usage for --help and exits 0', async () => {
    const proc = runEmail(['--help'], {});
    const { code } = await proc.exited;
    await proc.closed; // and its last output read
    expect(code).to.equal(0);
    expect(proc.output())
      .to.contain('Usage: email <command>')
      .and.contain('dead-letters')
      .and.contain('webhooks add URL');
  });

  it('names PORT when the port is taken, in one line, exits 1, and creates no DATA_DIR', async function () {
    this.timeout(60_000);
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    const dataDir = join(tmpdir(), `email-taken-port-${randomBytes(4).toString('hex')}`);
    try {
      const proc = runEmail(['dev'], { PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir });
      const { code } = await proc.exited;
      await proc.closed;
      expect(code).to.equal(1);
      expect(proc.stderr.join('')).to.equal(
        `email: 127.0.0.1:${port} is already in use: stop what listens there, or set PORT to another port (0 picks a free one)\n`,
      );
      // Said before the embedded database was opened: nothing was created for it.
      expect(existsSync(dataDir)).to.equal(false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
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

  it('refuses a MAILGUN_RATE too fast to pace, exits 2, and names the variable and the limit', async () => {
    const proc = runEmail(['dev'], { MAIL_TRANSPORT: 'mailgun', MAILGUN_RATE: '1000000/s' });
    const { code } = await proc.exited;
    await proc.closed; // and its last output read
    expect(code).to.equal(2);
    expect(proc.stderr.join('')).to.contain(
      'MAILGUN_RATE must be at most 1000/s (or 60000/min): sends cannot be paced any faster (got "1000000/s")',
    );
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

/** A stand-in PostgreSQL server that asks for SCRAM authentication, as a server with passwords does. */
async function scramOnlyServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    let startup = true;
    socket.on('data', () => {
      if (startup) {
        startup = false;
        // AuthenticationSASL: 'R', length, 10, the mechanisms, an empty name to end the list.
        const mechanisms = Buffer.from('SCRAM-SHA-256\0\0');
        const message = Buffer.alloc(9);
        message.write('R');
        message.writeInt32BE(8 + mechanisms.length, 1);
        message.writeInt32BE(10, 5);
        socket.write(Buffer.concat([message, mechanisms]));
        return;
      }
      // The client's first SCRAM message: AuthenticationSASLContinue, where pg wants a password.
      const data = Buffer.from('r=abc,s=c2FsdA==,i=4096');
      const message = Buffer.alloc(9);
      message.write('R');
      message.writeInt32BE(8 + data.length, 1);
      message.writeInt32BE(11, 5);
      socket.write(Buffer.concat([message, data]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `postgres://app@127.0.0.1:${port}/email`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Runs a one-shot command to its end: exit code, stdout and stderr. */
async function runToEnd(args: string[], env: Record<string, string | undefined>) {
  const proc = runEmail(args, { LOG_LEVEL: 'warn', ...env });
  const { code } = await proc.exited;
  await proc.closed;
  return { code, stdout: proc.stdout.join(''), stderr: proc.stderr.join('') };
}

describe('email migrate and dead-letters when the database refuses', function () {
  this.timeout(30_000);
  let db: TestDatabase | undefined;
  const role = `email_test_noperm_${process.pid}`;
  const password = 'pw-Sup3r-s3cret';

  before(async () => {
    await requirePostgres();
    db = await freshDatabase('cli_refused');
    await adminQuery(`DROP ROLE IF EXISTS ${role}`);
    await adminQuery(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
  });
  after(async () => {
    await db?.drop();
    await adminQuery(`DROP ROLE IF EXISTS ${role}`);
  });

  /** The test database's URL, as the role that may not create tables there (PostgreSQL 15). */
  const asUnprivileged = (): string => {
    const url = new URL(db!.url);
    url.username = role;
    url.password = password;
    return url.toString();
  };

  for (const command of [['migrate'], ['dead-letters', 'list']]) {
    it(`email ${command.join(' ')} says "permission denied" in one line, exits 1, no password`, async () => {
      const { code, stdout, stderr } = await runToEnd(command, { DATABASE_URL: asUnprivileged() });
      expect(code).to.equal(1);
      expect(stdout).to.equal('');
      expect(stderr).to.match(
        new RegExp(
          `^email ${command[0]}: \\w+ postgres://${role}:\\*\\*\\*@127\\.0\\.0\\.1:\\d+/\\w+ failed: the database user may not create what the migrations need \\(permission denied, SQLSTATE 42501\\): [^\\n]+\\n$`,
        ),
      );
      expect(stderr).not.to.contain(password);
      expect(stderr).not.to.match(/CREATE TABLE|\n\s+at /);
    });

    it(`email ${command.join(' ')} says a password is missing in one line, exits 1`, async () => {
      const scram = await scramOnlyServer();
      try {
        const { code, stderr } = await runToEnd(command, { DATABASE_URL: scram.url });
        expect(code).to.equal(1);
        expect(stderr).to.match(
          new RegExp(
            `^email ${command[0]}: \\w+ postgres://app@127\\.0\\.0\\.1:\\d+/email failed: the database asks for a password and DATABASE_URL gives none: [^\\n]+\\n$`,
          ),
        );
        expect(stderr).not.to.contain('SASL');
      } finally {
        await scram.close();
      }
    });
  }
});

describe('email dev stopping', function () {
  this.timeout(30_000);

  it('stops within a second or two with a live status page open, ending its stream', async () => {
    const { proc, url } = await startListening(['dev'], {
      // Nothing listens on port 1: the email waits, retrying, and its page stays live.
      MAIL_TRANSPORT: 'smtp',
      SMTP_URL: 'smtp://127.0.0.1:1',
      RETRY_DELAYS: '1h',
      SHUTDOWN_GRACE_MS: '10000',
    });
    try {
      const accepted = await fetch(`${url}/emails`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ to: 'ada@example.com', subject: 'Live', text: 'Hi' }),
      });
      const { id } = (await accepted.json()) as { id: string };
      await eventually(async () => {
        const res = await fetch(`${url}/emails/${id}`, { headers: { accept: 'application/json' } });
        return ((await res.json()) as { status: string }).status === 'retrying';
      });
      const streams = await Promise.all([1, 2].map(() => fetch(`${url}/emails/${id}/events`)));
      const ended = streams.map((res) =>
        res.text().then(
          () => true,
          () => false,
        ),
      );
      await sleep(200);
      const started = Date.now();
      proc.child.kill('SIGTERM');
      const { code } = await proc.exited;
      const took = Date.now() - started;
      expect(code).to.equal(0);
      expect(took).to.be.below(2_500);
      // Ended by the server, not cut: the browser reconnects by itself.
      expect(await Promise.all(ended)).to.deep.equal([true, true]);
      await waitForRecord(proc, (r) => r.msg === 'Stopped cleanly');
    } finally {
      await proc.stop('SIGKILL');
    }
  });

  it('takes two signals in a moment (timeout -s INT signals the group too) as one graceful stop', async () => {
    const { proc } = await startListening(['dev'], {});
    try {
      proc.child.kill('SIGINT');
      proc.child.kill('SIGINT');
      const { code } = await proc.exited;
      await proc.closed;
      expect(code).to.equal(0);
      expect(proc.records.map((r) => r.msg)).to.include('Stopped cleanly');
      expect(proc.records.map((r) => r.msg)).not.to.include('Second signal: exiting now');
    } finally {
      await proc.stop('SIGKILL');
    }
  });
});
