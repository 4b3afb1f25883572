import { expect } from 'chai';
import { runEmail } from '../support/process.js';

describe('the email command', () => {
  it('prints usage for --help and exits 0', async () => {
    const proc = runEmail(['--help'], {});
    const { code } = await proc.exited;
    expect(code).to.equal(0);
    expect(proc.output()).to.contain('Usage: email <command>').and.contain('dead-letters');
  });

  it('prints usage for an unknown command and exits 2', async () => {
    const proc = runEmail(['frobnicate'], {});
    const { code } = await proc.exited;
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
    const err = proc.stderr.join('');
    expect(code).to.equal(2);
    for (const variable of ['MAIL_TRANSPORT', 'PORT', 'RETRY_DELAYS', 'AMQP_URL'])
      expect(err).to.contain(variable);
    expect(err).not.to.contain('supersecret');
    expect(err).not.to.contain('hunter2');
  });

  it('says what a transport needs when it is missing', async () => {
    const proc = runEmail(['dev'], { MAIL_TRANSPORT: 'smtp' });
    const { code } = await proc.exited;
    expect(code).to.equal(2);
    expect(proc.stderr.join('')).to.match(/SMTP_URL is required/);
  });
});
