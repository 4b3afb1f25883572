// What a sending role says at start about its configuration: a rate set for a transport it
// does not use is valid, and never applied, which the person who set it would not expect.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { Config } from '../../src/adapters/config/config.js';
import { describeProblems, loadConfig } from '../../src/adapters/config/config.js';
import { warnUnusedSendRates } from '../../src/main/senders.js';
import { RecordingLogger } from '../support/fakes.js';

const workerConfig = (env: Record<string, string>): Config => {
  const loaded = loadConfig(
    { AMQP_URL: 'amqp://localhost', DATABASE_URL: 'postgres://localhost/email', ...env },
    'worker',
  );
  if (E.isLeft(loaded)) throw new Error(describeProblems(loaded.left));
  return loaded.right;
};

describe('warnUnusedSendRates', () => {
  it('warns about a rate for a transport MAIL_TRANSPORT does not name, by its variable', () => {
    const log = new RecordingLogger();
    const config = workerConfig({
      MAIL_TRANSPORT: 'smtp',
      SMTP_URL: 'smtp://127.0.0.1:2525',
      SMTP_RATE: '10/s',
      MAILGUN_RATE: '5/s',
    });
    warnUnusedSendRates(config, log);
    expect(log.lines.map((l) => [l.level, l.fields, l.message])).to.deep.equal([
      [
        'warn',
        { variable: 'MAILGUN_RATE', transports: ['smtp'] },
        'MAILGUN_RATE is set, but MAIL_TRANSPORT does not name mailgun: that rate is not applied',
      ],
    ]);
  });

  it('says nothing when every rate set is for a transport in use, or none is set', () => {
    const log = new RecordingLogger();
    warnUnusedSendRates(
      workerConfig({
        MAIL_TRANSPORT: 'outbox,smtp',
        SMTP_URL: 'smtp://127.0.0.1:2525',
        SMTP_RATE: '10/s',
      }),
      log,
    );
    warnUnusedSendRates(workerConfig({ MAIL_TRANSPORT: 'outbox' }), log);
    expect(log.lines).to.deep.equal([]);
  });
});
