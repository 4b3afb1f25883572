// Who may use the service, as an operator and a client see it: keys and users made with the
// `email` command, two `email server` processes on one database and broker that both honour a
// key, its scopes, its revocation and one shared rate limit, the audit lines they write, and
// `email dev`, open on a loopback address and guarded on any other.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { requirePostgres } from '../support/postgres.js';
import { CLI, EmailProcess, runEmail, waitForRecord } from '../support/process.js';
import { requireRabbitMq } from '../support/rabbitmq.js';
import type { CliResult, Started } from '../support/roles.js';
import { Roles } from '../support/roles.js';
import { eventually } from '../support/waiting.js';

const KEY = /^em_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]{43}$/;
const PASSWORD = 'correct horse battery staple';

describe('access control (email api-keys, email users, email server)', function () {
  this.timeout(60_000);
  // Only keys from the database count: API_KEYS (empty counts as unset) is off for every process.
  let roles: Roles;
  /** Every key made here, for the look for leaks at the end. */
  const keys = new Map<string, string>();
  /** Everything the commands printed but the created keys' own stdout, which is the point. */
  const printed: { readonly what: string; readonly text: string }[] = [];
  /** The servers started here, for the same look. */
  const servers: Started[] = [];

  const email = async (args: string[], input?: string): Promise<CliResult> => {
    const result =
      input === undefined
        ? await roles.cli(args, { LOG_LEVEL: 'info' })
        : await withInput(roles, args, input);
    const what = `email ${args.join(' ')}`;
    printed.push({ what: `${what} (stderr)`, text: result.stderr });
    if (!(args[0] === 'api-keys' && args[1] === 'create')) {
      printed.push({ what: `${what} (stdout)`, text: result.stdout });
    }
    return result;
  };

  const createKey = async (name: string, scopes?: string): Promise<string> => {
    const made = await email([
      'api-keys',
      'create',
      '--name',
      name,
      ...(scopes === undefined ? [] : ['--scopes', scopes]),
    ]);
    expect(made.code, made.stderr).to.equal(0);
    const key = made.stdout.trim();
    expect(key).to.match(KEY);
    keys.set(name, key);
    return key;
  };

  before(async () => {
    await Promise.all([requirePostgres(), requireRabbitMq()]);
    roles = new Roles({ API_KEYS: '' });
    await roles.database();
  });

  after(() => roles?.cleanup());

  describe('email api-keys and email users', () => {
    it('prints a new key alone on stdout, once, and lists it without the key', async () => {
      const made = await email(['api-keys', 'create', '--name', 'billing', '--scopes', 'send']);
      expect(made.code, made.stderr).to.equal(0);
      expect(made.stdout).to.match(/^em_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]{43}\n$/);
      const key = made.stdout.trim();
      keys.set('billing', key);
      expect(made.stderr).to.contain('shown once');
      expect(auditLines(made.stderr)).to.deep.include({ audit: 'api-key-created', key: 'billing' });

      const listed = await email(['api-keys', 'list', '--json']);
      expect(listed.code, listed.stderr).to.equal(0);
      const rows = JSON.parse(listed.stdout) as Record<string, unknown>[];
      expect(rows).to.have.length(1);
      expect(rows[0]).to.have.keys('name', 'prefix', 'scopes', 'created_at', 'last_used_at');
      expect(rows[0]).to.deep.include({
        name: 'billing',
        prefix: key.slice(0, 15),
        scopes: ['send'],
        last_used_at: null,
      });
      expect(Date.parse(String(rows[0]?.created_at))).to.be.closeTo(Date.now(), 60_000);

      const dump = JSON.stringify(await tableRows(await roles.database(), 'api_keys'));
      expect(dump).to.contain(key.slice(0, 15));
      expect(dump).not.to.contain(key);
      expect(dump).not.to.contain(key.slice(16));
    });

    it('refuses unknown scopes (exit 2, naming the valid ones), a taken name and an unknown key (exit 1)', async () => {
      const [badScopes, taken, unknown] = await Promise.all([
        email(['api-keys', 'create', '--name', 'x', '--scopes', 'send,root']),
        email(['api-keys', 'create', '--name', 'billing']),
        email(['api-keys', 'revoke', 'no-such-key']),
      ]);
      expect(badScopes.code).to.equal(2);
      expect(badScopes.stdout).to.equal('');
      expect(badScopes.stderr).to.contain('root').and.contain('send, read, admin');

      expect(taken.code).to.equal(1);
      expect(taken.stdout).to.equal('');
      expect(taken.stderr).to.contain('"billing"');

      expect(unknown.code).to.equal(1);
      expect(unknown.stderr).to.contain('"no-such-key"');

      const listed = await email(['api-keys', 'list', '--json']);
      expect(namesIn(listed.stdout)).to.deep.equal(['billing']);
    });

    it('adds a user with a password of 12 characters or more, lists and removes them', async () => {
      const short = await email(['users', 'add', 'ada'], 'too-short\n');
      expect(short.code).to.equal(1);
      expect(short.stderr).to.contain('12 characters');

      const added = await email(['users', 'add', 'ada'], `${PASSWORD}\n`);
      expect(added.code, added.stderr).to.equal(0);
      expect(namesIn((await email(['users', 'list', '--json'])).stdout)).to.deep.equal(['ada']);

      const removed = await email(['users', 'remove', 'ada']);
      expect(removed.code, removed.stderr).to.equal(0);
      expect(namesIn((await email(['users', 'list', '--json'])).stdout)).to.deep.equal([]);
    });
  });

  describe('two servers on one database', () => {
    let pair: Started[];

    before(async () => {
      pair = await Promise.all([roles.start('server'), roles.start('server')]);
      servers.push(...pair);
    });

    it('answer 401 without a key or with a wrong one, 403 without the scope, 202 with it', async () => {
      const [sender, reader] = await Promise.all([
        createKey('sender', 'send'),
        createKey('reader', 'read'),
      ]);
      // Right key id, wrong secret: the look-up finds the key, the digest does not match.
      const wrong = `${sender.slice(0, -1)}${sender.endsWith('A') ? 'B' : 'A'}`;
      for (const { url } of pair) {
        const none = await post(url);
        expect(none.status, `${url} without a key`).to.equal(401);
        expect(none.headers.get('www-authenticate')).to.match(/^Bearer\b/);
        const bad = await post(url, wrong);
        expect(bad.status, `${url} with a wrong key`).to.equal(401);
        expect(bad.headers.get('www-authenticate')).to.match(/^Bearer\b.*error="invalid_token"/);
        expect((await post(url, reader)).status, `${url} with a read-only key`).to.equal(403);
        expect((await post(url, sender)).status, `${url} with a send key`).to.equal(202);
      }
    });

    it('refuse a revoked key within a second of `email api-keys revoke` returning', async () => {
      const sender = keys.get('sender') ?? '';
      // Both servers hold the key in their cache now: the refusal must outrun it.
      for (const { url } of pair) expect((await post(url, sender)).status).to.equal(202);

      const revoked = await email(['api-keys', 'revoke', 'sender']);
      expect(revoked.code, revoked.stderr).to.equal(0);
      expect(auditLines(revoked.stderr)).to.deep.include({
        audit: 'api-key-revoked',
        key: 'sender',
      });
      // From the command's return: `eventually` fails once 1 s has passed without both refusing.
      await eventually(
        async () => {
          const answers = await Promise.all(pair.map(({ url }) => post(url, sender)));
          return answers.every((a) => a.status === 401);
        },
        { timeoutMs: 1000, what: 'both servers to answer 401 for the revoked key' },
      );
    });

    it('send a browser to sign in, and answer /healthz to anyone', async () => {
      for (const { url } of pair) {
        const page = await fetch(`${url}/`, { redirect: 'manual' });
        await page.arrayBuffer();
        expect(page.status).to.equal(303);
        expect(page.headers.get('location')).to.equal('/login?next=%2F');
        const health = await fetch(`${url}/healthz`);
        await health.arrayBuffer();
        expect(health.status).to.equal(200);
      }
    });

    it('log the first use of a key from an address, with its name', async () => {
      const noted = await eventually(
        () =>
          pair
            .flatMap(({ proc }) => proc.records)
            .find((r) => r.audit === 'api-key-new-address' && r.key === 'sender'),
        { what: 'an api-key-new-address line for "sender"' },
      );
      expect(noted.address)
        .to.be.a('string')
        .and.match(/127\.0\.0\.1|::1/);
    });
  });

  describe('a rate limit shared by two servers', () => {
    let limited: Started[];

    before(async () => {
      limited = await Promise.all([
        roles.start('server', { RATE_LIMIT: '6/min' }),
        roles.start('server', { RATE_LIMIT: '6/min' }),
      ]);
      servers.push(...limited);
    });

    it('counts a key on both: the 7th request is 429 on either, another key still passes', async () => {
      const [busy, calm] = await Promise.all([
        createKey('busy', 'send'),
        createKey('calm', 'send'),
      ]);
      const server = (i: number): string => limited[i % 2]?.url ?? '';

      const answers: Answer[] = [];
      for (let i = 0; i < 7; i += 1) answers.push(await post(server(i), busy));
      expect(answers.map((a) => a.status)).to.deep.equal([202, 202, 202, 202, 202, 202, 429]);
      expect(answers.map((a) => a.headers.get('ratelimit-remaining'))).to.deep.equal([
        '5',
        '4',
        '3',
        '2',
        '1',
        '0',
        '0',
      ]);
      const refused = answers[6];
      expect(refused?.headers.get('ratelimit-limit')).to.equal('6');
      expect(seconds(refused?.headers.get('retry-after'))).to.be.within(1, 60);
      expect(seconds(refused?.headers.get('ratelimit-reset'))).to.be.within(1, 60);

      const other = await post(server(7), busy);
      expect(other.status, 'the other server, same key').to.equal(429);
      expect(other.headers.get('retry-after')).to.match(/^\d+$/);
      for (let i = 0; i < 2; i += 1) {
        const fresh = await post(server(i), calm);
        expect(fresh.status, `${server(i)}, another key`).to.equal(202);
        expect(fresh.headers.get('ratelimit-limit')).to.equal('6');
      }
    });
  });

  describe('what the processes printed', () => {
    it('never shows a key or a password, in any line of any process', async () => {
      expect(keys.size).to.be.at.least(5);
      const lines = [...printed];
      for (const { proc, url } of servers)
        lines.push({ what: `server ${url}`, text: proc.output() });
      for (const { what, text } of lines) {
        for (const [name, key] of keys) {
          expect(text, `${what} shows the key "${name}"`).not.to.contain(key);
          expect(text, `${what} shows the secret of "${name}"`).not.to.contain(key.slice(16));
        }
        expect(text, `${what} shows the password`).not.to.contain(PASSWORD);
      }
    });
  });
});

describe('email dev: open on a loopback address, guarded on any other', function () {
  // Two embedded databases start at once: about 3 s each on an idle machine, far more on a busy one.
  this.timeout(60_000);
  const started: EmailProcess[] = [];
  let outbox: string;

  before(async () => {
    outbox = await mkdtemp(join(tmpdir(), 'email-access-'));
  });

  after(async () => {
    await Promise.all(started.map((proc) => proc.stop('SIGKILL')));
    if (outbox) await rm(outbox, { recursive: true, force: true });
  });

  /** Tracked before it listens, so that one slow to start is still stopped. */
  const dev = async (host: string): Promise<{ proc: EmailProcess; port: string }> => {
    const proc = runEmail(['dev'], {
      HOST: host,
      PORT: '0',
      DATA_DIR: 'memory',
      OUTBOX_DIR: outbox,
    });
    started.push(proc);
    const line = await proc.waitForLog(
      (r) => typeof r.url === 'string' && r.msg.startsWith('Listening'),
      45_000,
    );
    return { proc, port: new URL(String(line.url)).port };
  };

  it('accepts POST /emails without a key on 127.0.0.1, and answers 401 on 0.0.0.0', async () => {
    const [loopback, everywhere] = await Promise.all([dev('127.0.0.1'), dev('0.0.0.0')]);

    expect((await post(`http://127.0.0.1:${loopback.port}`)).status).to.equal(202);
    expect(loopback.proc.records.filter((r) => /loopback/.test(r.msg))).to.deep.equal([]);

    await waitForRecord(
      everywhere.proc,
      (r) => r.level === 40 && r.host === '0.0.0.0' && /not a loopback address/.test(r.msg),
      'the warning that HOST is not a loopback address',
    );
    const refused = await post(`http://127.0.0.1:${everywhere.port}`);
    expect(refused.status).to.equal(401);
    expect(refused.headers.get('www-authenticate')).to.match(/^Bearer\b/);
  });
});

interface Answer {
  readonly status: number;
  readonly headers: Headers;
}

let sequence = 0;

/** POST /emails as curl would send it, with `Authorization: Bearer <key>` when a key is given. */
async function post(url: string, key?: string): Promise<Answer> {
  sequence += 1;
  const response = await fetch(`${url}/emails`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
    },
    body: JSON.stringify({ to: 'ada@example.com', subject: `Access ${sequence}`, text: 'Hi' }),
  });
  await response.arrayBuffer();
  return { status: response.status, headers: response.headers };
}

const seconds = (header: string | null | undefined): number =>
  /^\d+$/.test(header ?? '') ? Number(header) : NaN;

/** The `audit` and `key` of each JSON log line of a command's stderr. */
function auditLines(stderr: string): { audit: unknown; key: unknown }[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((r) => r.audit !== undefined)
    .map((r) => ({ audit: r.audit, key: r.key }));
}

/** The names in a `list --json` answer. */
const namesIn = (stdout: string): string[] =>
  (JSON.parse(stdout) as { name: string }[]).map((r) => r.name);

/** Every row of `table`, as `SELECT *` shows it to whoever can read the database. */
async function tableRows(url: string, table: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return (await client.query(`SELECT * FROM ${table}`)).rows;
  } finally {
    await client.end();
  }
}

/**
 * A one-shot command with `input` on its standard input (a piped password), in the fixture's
 * environment; `Roles.cli` gives its commands none.
 */
async function withInput(roles: Roles, args: string[], input: string): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, DATA_DIR: 'memory', ...roles.env({ LOG_LEVEL: 'info' }) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const proc = new EmailProcess(child);
  child.stdin.end(input);
  const { code } = await proc.exited;
  await proc.closed;
  return { code, stdout: proc.stdout.join(''), stderr: proc.stderr.join('') };
}
