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
    const result = loadConfig(
      {
        AMQP_URL: 'http://guest:hunter2@localhost',
        SMTP_URL: 'smtp:/u:pa55word@host',
        DATABASE_URL: 'mysql://app:s3cr3tdb@host/email',
        MAIL_TRANSPORT: 'smtp',
      },
      'worker',
    );
    if (E.isRight(result)) expect.fail('accepted');
    const text = describeProblems(result.left);
    expect(text).to.contain('AMQP_URL').and.contain('SMTP_URL').and.contain('DATABASE_URL');
    expect(text).not.to.contain('hunter2');
    expect(text).not.to.contain('pa55word');
    expect(text).not.to.contain('s3cr3tdb');

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
