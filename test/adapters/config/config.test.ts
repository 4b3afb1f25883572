import { expect } from 'chai';
import { inspect } from 'node:util';
import * as E from 'fp-ts/lib/Either.js';
import { Secret, describeProblems, loadConfig } from '../../../src/adapters/config/config.js';

const problemsOf = (env: Record<string, string>, role: Parameters<typeof loadConfig>[1]) => {
  const result = loadConfig(env, role);
  if (E.isRight(result)) expect.fail('accepted a bad configuration');
  return Object.fromEntries(result.left.map((p) => [p.variable, p.message]));
};

const DB = 'postgres://postgres@127.0.0.1:5432/email';

describe('Configuration', () => {
  it('runs `email dev` on the documented defaults, with nothing set', () => {
    const config = loadConfig({}, 'dev');
    if (E.isLeft(config)) expect.fail(describeProblems(config.left));
    expect(config.right).to.deep.include({
      host: '127.0.0.1',
      port: 8080,
      workerPort: 8081,
      queuePrefix: 'email',
      transports: ['outbox'],
      mailFrom: 'Email Example <noreply@localhost>',
      outboxDir: './outbox',
      workerConcurrency: 32,
      sendTimeoutMs: 15000,
      logLevel: 'info',
    });
    expect(config.right.retry).to.deep.equal({
      maxAttempts: 8,
      delaysMs: [1000, 5000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000],
    });
  });

  it('reports every problem at once, each naming its variable', () => {
    const problems = problemsOf(
      {
        PORT: 'eighty',
        MAX_ATTEMPTS: '0',
        RETRY_DELAYS: '1s,soon',
        LOG_LEVEL: 'loud',
        MAIL_FROM: 'nobody',
      },
      'worker',
    );
    expect(Object.keys(problems).sort()).to.deep.equal([
      'AMQP_URL',
      'DATABASE_URL',
      'LOG_LEVEL',
      'MAIL_FROM',
      'MAX_ATTEMPTS',
      'PORT',
      'RETRY_DELAYS',
    ]);
    expect(problems.PORT).to.contain('a port number').and.contain('"eighty"');
    expect(problems.AMQP_URL).to.match(/^is required/);
    expect(problems.DATABASE_URL).to.match(/^is required: set it to a postgres:\/\//);
    expect(problems.MAIL_FROM).to.contain('"nobody"');
  });

  it('asks for what the chosen transports need, only in the roles that send', () => {
    const worker = problemsOf(
      { AMQP_URL: 'amqp://localhost', DATABASE_URL: DB, MAIL_TRANSPORT: 'mailgun,smtp' },
      'worker',
    );
    expect(Object.keys(worker).sort()).to.deep.equal([
      'MAILGUN_API_BASE',
      'MAILGUN_API_KEY',
      'SMTP_URL',
    ]);
    const server = loadConfig(
      { AMQP_URL: 'amqp://localhost', DATABASE_URL: DB, MAIL_TRANSPORT: 'mailgun' },
      'server',
    );
    expect(E.isRight(server)).to.equal(true);
  });

  it('never echoes a secret, valid or not', () => {
    /** What a worker with `env` is told at start, which must be a refusal. */
    const refusal = (env: Record<string, string>): string => {
      const result = loadConfig(env, 'worker');
      if (E.isRight(result)) return expect.fail('accepted');
      return describeProblems(result.left);
    };
    const text = refusal({
      AMQP_URL: 'http://guest:hunter2@localhost',
      SMTP_URL: 'smtp:/u:pa55word@host',
      DATABASE_URL: 'mysql://app:s3cr3tdb@host/email',
      MAIL_TRANSPORT: 'smtp',
    });
    expect(text).to.contain('AMQP_URL').and.contain('SMTP_URL').and.contain('DATABASE_URL');
    expect(text).not.to.contain('hunter2');
    expect(text).not.to.contain('pa55word');
    expect(text).not.to.contain('s3cr3tdb');

    // Not a secret's variable, but a URL that holds one: refused, and not echoed.
    const said = refusal({
      AMQP_URL: 'amqp://localhost',
      DATABASE_URL: DB,
      MAIL_TRANSPORT: 'mailgun',
      MAILGUN_API_KEY: 'key-0123',
      MAILGUN_API_BASE: 'https://api:key-s3cret@api.mailgun.net/v3/mg.example.com',
    });
    expect(said)
      .to.contain('MAILGUN_API_BASE')
      .and.contain('must not hold a user name or password');
    expect(said).not.to.contain('key-s3cret');
    // Nor when the URL is malformed besides (a space at its end, a scheme in capitals).
    for (const base of [
      'https://api:key-s3cret@api.mailgun.net/v3/d ',
      'HTTPS://api:key-s3cret@api.mailgun.net/v3/d',
    ]) {
      const malformed = refusal({
        AMQP_URL: 'amqp://localhost',
        DATABASE_URL: DB,
        MAIL_TRANSPORT: 'mailgun',
        MAILGUN_API_KEY: 'key-0123',
        MAILGUN_API_BASE: base,
      });
      expect(malformed).to.contain('MAILGUN_API_BASE').and.not.contain('key-s3cret');
    }

    const ok = loadConfig(
      {
        AMQP_URL: 'amqp://guest:hunter2@localhost:5672',
        DATABASE_URL: 'postgres://app:s3cr3tdb@localhost:5432/email',
      },
      'server',
    );
    if (E.isLeft(ok)) expect.fail(describeProblems(ok.left));
    for (const shown of [
      JSON.stringify(ok.right),
      inspect(ok.right, { depth: 5 }),
      String(ok.right.amqpUrl),
      String(ok.right.databaseUrl),
    ]) {
      expect(shown).not.to.contain('hunter2');
      expect(shown).not.to.contain('s3cr3tdb');
    }
    expect(ok.right.amqpUrl?.reveal()).to.equal('amqp://guest:hunter2@localhost:5672');
    expect(`${new Secret('x')}`).to.equal('[redacted]');
  });

  it('needs DATABASE_URL in the server and worker roles, and not in dev or migrate', () => {
    expect(E.isRight(loadConfig({}, 'migrate'))).to.equal(true);
    expect(E.isRight(loadConfig({}, 'dead-letters'))).to.equal(true);
    const dataDir = loadConfig({ DATA_DIR: '/var/lib/email' }, 'dev');
    expect(E.isRight(dataDir) && dataDir.right.dataDir).to.equal('/var/lib/email');
    const byDefault = loadConfig({}, 'dev');
    expect(E.isRight(byDefault) && byDefault.right.dataDir).to.equal('./data');
    for (const role of ['server', 'worker'] as const) {
      expect(problemsOf({ AMQP_URL: 'amqp://localhost' }, role), role).to.have.property(
        'DATABASE_URL',
      );
    }
    expect(E.isRight(loadConfig({}, 'dev'))).to.equal(true);
    expect(problemsOf({ DATABASE_URL: 'postgres:/nope' }, 'dev')).to.have.property('DATABASE_URL');
    const dev = loadConfig({ DATABASE_URL: DB, RETENTION_DAYS: '7' }, 'dev');
    if (E.isLeft(dev)) expect.fail(describeProblems(dev.left));
    expect(dev.right.retentionDays).to.equal(7);
    expect(problemsOf({ RETENTION_DAYS: '0' }, 'dev')).to.have.property('RETENTION_DAYS');
  });

  it('treats an empty variable as unset, and 0 as "any free port"', () => {
    const config = loadConfig({ PORT: '0', WORKER_PORT: '', MAIL_TRANSPORT: '' }, 'dev');
    if (E.isLeft(config)) expect.fail(describeProblems(config.left));
    expect(config.right).to.include({ port: 0, workerPort: 8081 });
    expect(config.right.transports).to.deep.equal(['outbox']);
  });

  it('refuses a transport list with an unknown or repeated name', () => {
    expect(problemsOf({ MAIL_TRANSPORT: 'mailgun,pigeon' }, 'dev')).to.have.property(
      'MAIL_TRANSPORT',
    );
    expect(
      problemsOf({ MAIL_TRANSPORT: 'smtp,smtp', SMTP_URL: 'smtp://h' }, 'dev'),
    ).to.have.property('MAIL_TRANSPORT');
  });
});

describe('Configuration of access: SESSION_SECRET, API_KEYS, RATE_LIMIT, TRUST_PROXY', () => {
  const SESSION_SECRET = 'S3ss10n-s3cr3t-0123456789abcdefXY';
  const KEY_A = 'first-env-key-0123456789-SECRET';
  const KEY_B = 'second~env!key#0123456789$SECRET';

  const config = (env: Record<string, string>) => {
    const result = loadConfig(env, 'dev');
    if (E.isLeft(result)) expect.fail(describeProblems(result.left));
    return result.right;
  };

  it('has no session secret and no keys, 600 requests a minute and no trusted proxy by default', () => {
    const c = config({});
    expect(c.sessionSecret).to.equal(undefined);
    expect(c.apiKeys).to.deep.equal([]);
    expect(c.rateLimit).to.deep.equal({ limit: 600, windowMs: 60_000 });
    expect(c.trustProxy).to.equal(false);
  });

  it('reads a session secret, a list of keys, a rate and whether to trust a proxy', () => {
    const c = config({
      SESSION_SECRET,
      API_KEYS: ` ${KEY_A} ,${KEY_B}`,
      RATE_LIMIT: '10/s',
      TRUST_PROXY: 'true',
    });
    expect(c.sessionSecret?.reveal()).to.equal(SESSION_SECRET);
    expect(c.apiKeys.map((k) => k.reveal())).to.deep.equal([KEY_A, KEY_B]);
    expect(c.rateLimit).to.deep.equal({ limit: 10, windowMs: 1000 });
    expect(c.trustProxy).to.equal(true);

    expect(config({ SESSION_SECRET: 'x'.repeat(32) }).sessionSecret?.reveal()).to.have.length(32);
    const edges = config({ API_KEYS: `${'a'.repeat(24)},${'b'.repeat(512)}` }).apiKeys;
    expect(edges.map((k) => k.reveal().length)).to.deep.equal([24, 512]);
    const rates: [string, { limit: number; windowMs: number }][] = [
      ['600/min', { limit: 600, windowMs: 60_000 }],
      ['5000/h', { limit: 5000, windowMs: 3_600_000 }],
      [' 7 / minute ', { limit: 7, windowMs: 60_000 }],
      ['1/s', { limit: 1, windowMs: 1000 }],
      ['1000000/hour', { limit: 1_000_000, windowMs: 3_600_000 }],
    ];
    for (const [raw, rate] of rates)
      expect(config({ RATE_LIMIT: raw }).rateLimit, raw).to.deep.equal(rate);
    for (const [raw, trust] of [
      ['false', false],
      ['FALSE', false],
      ['0', false],
      ['True', true],
      ['1', true],
    ] as const) {
      expect(config({ TRUST_PROXY: raw }).trustProxy, raw).to.equal(trust);
    }
  });

  it('refuses a short session secret, saying how long it must be', () => {
    expect(problemsOf({ SESSION_SECRET: 'x'.repeat(31) }, 'dev')).to.deep.equal({
      SESSION_SECRET: 'must be a random string of at least 32 characters',
    });
  });

  it('refuses API_KEYS with any entry too short, too long, empty, or with a space or other character', () => {
    for (const raw of [
      'a'.repeat(23),
      'b'.repeat(513),
      `${KEY_A},`,
      `${KEY_A},,${KEY_B}`,
      `${KEY_A} ${KEY_B}`,
      `${KEY_A}é`,
      `${KEY_A}\t`.repeat(2),
    ]) {
      const problems = problemsOf({ API_KEYS: raw }, 'dev');
      expect(Object.keys(problems), JSON.stringify(raw)).to.deep.equal(['API_KEYS']);
      expect(problems.API_KEYS).to.match(/24 to 512 visible characters without commas/);
    }
  });

  it('refuses a rate that is not a whole number per second, minute or hour, showing it', () => {
    for (const raw of ['0/min', '600', '600/day', 'fast', '1000001/s', '1.5/s', '-1/s', '/min']) {
      const problems = problemsOf({ RATE_LIMIT: raw }, 'dev');
      expect(problems.RATE_LIMIT, raw).to.equal(
        `must be a rate such as 600/min, 10/s or 5000/h (got "${raw}")`,
      );
    }
  });

  // Needs a fix in src/adapters/config/config.ts: parseRate looks the unit up with RATE_UNITS[unit]
  // on an object literal, so `constructor` finds Object.prototype.constructor (a function) and
  // `600/constructor` is accepted; the start then throws in the rate limiter instead of listing
  // a problem. Object.hasOwn(RATE_UNITS, unit) (or a Map) fixes it.
  it('refuses a unit that is only a name inherited by every object (600/constructor)', () => {
    expect(problemsOf({ RATE_LIMIT: '600/constructor' }, 'dev')).to.have.property('RATE_LIMIT');
  });

  it('refuses TRUST_PROXY other than true or false', () => {
    for (const raw of ['yes', 'on', 'truthy', '2']) {
      expect(problemsOf({ TRUST_PROXY: raw }, 'dev'), raw).to.deep.equal({
        TRUST_PROXY: `must be true or false (got "${raw}")`,
      });
    }
  });

  it('never echoes a session secret or an API key, valid or not', () => {
    const bad = loadConfig(
      {
        SESSION_SECRET: 'sh0rt-S3CRET',
        API_KEYS: `${KEY_A},tiny-S3CRET-key`,
        RATE_LIMIT: 'often',
      },
      'server',
    );
    if (E.isRight(bad)) expect.fail('accepted');
    const text = describeProblems(bad.left);
    expect(text).to.contain('SESSION_SECRET').and.contain('API_KEYS').and.contain('"often"');
    for (const secret of ['sh0rt-S3CRET', KEY_A, 'tiny-S3CRET-key', 'S3CRET']) {
      expect(text).not.to.contain(secret);
    }

    const good = config({ SESSION_SECRET, API_KEYS: `${KEY_A},${KEY_B}` });
    for (const shown of [
      JSON.stringify(good),
      inspect(good, { depth: 5 }),
      String(good.sessionSecret),
      good.apiKeys.join(','),
    ]) {
      for (const secret of [SESSION_SECRET, KEY_A, KEY_B]) expect(shown).not.to.contain(secret);
    }
  });

  it('takes MAX_MESSAGE_BYTES from 64 KiB: below it, no email could pass the size check', () => {
    expect(Object.keys(problemsOf({ MAX_MESSAGE_BYTES: '1024' }, 'dev'))).to.deep.equal([
      'MAX_MESSAGE_BYTES',
    ]);
    const config = loadConfig({ MAX_MESSAGE_BYTES: '65536' }, 'dev');
    expect(E.isRight(config) && config.right.maxMessageBytes).to.equal(65_536);
  });

  it('writes each row before its 202 by default; WRITE_BEHIND_MS takes 0 to 1000 ms', () => {
    const off = loadConfig({ AMQP_URL: 'amqp://127.0.0.1', DATABASE_URL: DB }, 'server');
    expect(E.isRight(off) && off.right.writeBehindMs).to.equal(0);
    const on = loadConfig(
      { AMQP_URL: 'amqp://127.0.0.1', DATABASE_URL: DB, WRITE_BEHIND_MS: '1000' },
      'server',
    );
    expect(E.isRight(on) && on.right.writeBehindMs).to.equal(1000);
    for (const bad of ['1001', '-1', '20ms', '0.5']) {
      expect(problemsOf({ WRITE_BEHIND_MS: bad }, 'dev')).to.deep.equal({
        WRITE_BEHIND_MS: `must be milliseconds, from 0 (write each row before its 202) to 1000 (got "${bad}")`,
      });
    }
  });
});
