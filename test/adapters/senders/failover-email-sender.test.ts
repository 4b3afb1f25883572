import { expect } from 'chai';
import { FailoverEmailSender } from '../../../src/adapters/failover/failover-email-sender.js';
import { SmtpEmailSender } from '../../../src/adapters/smtp/smtp-email-sender.js';
import type { EmailSender } from '../../../src/application/ports/email-sender.js';
import type { DeliveryOutcome } from '../../../src/domain/delivery.js';
import { notStarted, permanent, sent, transient } from '../../../src/domain/delivery.js';
import { emailSenderContract } from '../../contracts/email-sender.contract.js';
import { aRequest } from '../../support/builders.js';
import { recordingLogger } from '../../support/fakes.js';
import { asReceived, startSmtpReceiver } from '../../support/mail-receivers.js';
import { FROM, mailgunPair } from './support.js';

emailSenderContract('FailoverEmailSender (Mailgun stand-in down, SMTP up)', async () => {
  const log = recordingLogger();
  const { standIn, sender: mailgun } = await mailgunPair(log, 400);
  standIn.scriptDefault({ status: 503 });
  const receiver = await startSmtpReceiver();
  const smtp = new SmtpEmailSender({
    url: receiver.url(),
    from: FROM,
    timeoutMs: 600,
    log,
    ignoreTLS: true,
  });
  return {
    sender: new FailoverEmailSender({ senders: [mailgun, smtp], log }),
    from: FROM,
    timeoutMs: 400 + 600,
    failNext: async (kind) => receiver.failNext(kind === 'timeout' ? 'hang' : kind),
    stopReceiver: async () => {
      await standIn.close();
      await receiver.close();
    },
    received: async () => [...standIn.messages.map(asReceived), ...(await receiver.received())],
    close: async () => {
      mailgun.close();
      smtp.close();
      await standIn.close();
      await receiver.close();
    },
  };
});

/** A sender that answers from a script (the last answer repeats) and counts its calls. */
function scripted(name: string, ...answers: DeliveryOutcome[]): EmailSender & { calls: number } {
  const fake = {
    name,
    calls: 0,
    send: () => async () =>
      answers[Math.min(fake.calls++, answers.length - 1)] ?? sent(`${name}-id`),
  };
  return fake;
}

describe('FailoverEmailSender', () => {
  let now = 0;
  const clock = { monotonicMs: () => now };
  let log: ReturnType<typeof recordingLogger>;
  let failovers: [string, string, string][];
  beforeEach(() => {
    now = 0;
    log = recordingLogger();
    failovers = [];
  });
  const failover = (...senders: EmailSender[]) =>
    new FailoverEmailSender({
      senders,
      log,
      clock,
      breaker: { failureThreshold: 3, coolDownMs: 10_000 },
      onFailover: (_request, from, to, reason) => failovers.push([from, to, reason]),
    });
  const send = (s: EmailSender) => s.send(aRequest())();

  it('is named after its senders and uses the first while it works', async () => {
    const a = scripted('mailgun', sent('a-id'));
    const b = scripted('smtp', sent('b-id'));
    const f = failover(a, b);
    expect(f.name).to.equal('failover(mailgun,smtp)');
    expect(await send(f)).to.deep.equal(sent('a-id'));
    expect([a.calls, b.calls, failovers.length]).to.deep.equal([1, 0, 0]);
  });

  it('moves to the next sender on transient, logging a warning and calling onFailover', async () => {
    const f = failover(scripted('a', transient('503 from a')), scripted('b', sent('b-id')));
    expect(await send(f)).to.deep.equal(sent('b-id'));
    expect(failovers).to.deep.equal([['a', 'b', '503 from a']]);
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.message)).to.deep.equal([
      'Failing over from a to b: 503 from a',
    ]);
  });

  it('never fails over on permanent', async () => {
    const b = scripted('b', sent('b-id'));
    const f = failover(scripted('a', permanent('400 bad address')), b);
    expect(await send(f)).to.deep.equal(permanent('400 bad address'));
    expect([b.calls, failovers.length]).to.deep.equal([0, 0]);
  });

  it('tells every sender to stop starting, and moves on to none when one did not start', async () => {
    const stopped: string[] = [];
    const stopping = (s: ReturnType<typeof scripted>) =>
      Object.assign(s, { stopStarting: () => stopped.push(s.name) });
    const a = stopping(scripted('smtp', notStarted('the worker is stopping; not sent')));
    const b = stopping(scripted('mailgun', sent('b-id')));
    const f = failover(a, b);
    f.stopStarting();
    expect(stopped).to.deep.equal(['smtp', 'mailgun']);
    expect(await send(f)).to.deep.equal(notStarted('the worker is stopping; not sent'));
    expect([a.calls, b.calls, failovers.length]).to.deep.equal([1, 0, 0]);
    // No news of the sender either way: its circuit stays closed, with no failure counted.
    expect(f.states()).to.deep.equal({ smtp: 'closed', mailgun: 'closed' });
  });

  it('answers what an earlier sender said when a later one did not start: that one had it', async () => {
    const stopping = notStarted('the worker is stopping; not sent');
    const f = failover(
      scripted('mailgun', transient('timed out after 15000ms')),
      scripted('smtp', stopping),
    );
    f.stopStarting();
    const outcome = await send(f);
    // Mailgun may have taken it: the attempt counts, as after any failure of the chain.
    expect(outcome._tag).to.equal('Transient');
    expect(outcome).not.to.have.property('notStarted');
    expect(outcome).to.include({ reason: 'all senders failed: mailgun: timed out after 15000ms' });
  });

  it('opens the circuit after N consecutive transients and skips the sender while open', async () => {
    const a = scripted('a', transient('down'));
    const f = failover(a, scripted('b', sent('b-id')));
    for (let i = 0; i < 3; i++) await send(f);
    expect(f.states()).to.deep.equal({ a: 'open', b: 'closed' });
    expect(await send(f)).to.deep.equal(sent('b-id'));
    expect(a.calls).to.equal(3);
    expect(failovers.at(-1)?.[2]).to.match(/circuit open/);
    expect(log.lines.some((l) => l.message.startsWith('Circuit opened: skipping a'))).to.equal(
      true,
    );
  });

  it('lets one probe through after the cool-down; its success closes the circuit', async () => {
    const a = scripted('a', transient('down'), transient('down'), transient('down'), sent('a-id'));
    const f = failover(a, scripted('b', sent('b-id')));
    for (let i = 0; i < 3; i++) await send(f);
    now += 10_000;
    expect(f.states().a).to.equal('half-open');
    expect(await send(f)).to.deep.equal(sent('a-id'));
    expect([a.calls, f.states().a]).to.deep.equal([4, 'closed']);
  });

  it('re-opens the circuit when the probe fails, and allows only one probe at a time', async () => {
    let release: (o: DeliveryOutcome) => void = () => undefined;
    const a = scripted('a', transient('down'));
    const slowA: EmailSender = {
      name: 'a',
      send: (r) => {
        if (a.calls < 3) return a.send(r);
        a.calls += 1;
        return () => new Promise((done) => (release = done));
      },
    };
    const b = scripted('b', sent('b-id'));
    const f = failover(slowA, b);
    for (let i = 0; i < 3; i++) await send(f);
    now += 10_000;
    const probe = send(f);
    expect(await send(f)).to.deep.equal(sent('b-id')); // the probe is in flight: skip a
    release(transient('still down'));
    expect(await probe).to.deep.equal(sent('b-id'));
    expect([a.calls, f.states().a]).to.deep.equal([4, 'open']);
  });

  it('answers transient when all fail, with the smallest Retry-After or none', async () => {
    const both = failover(scripted('a', transient('x', 5000)), scripted('b', transient('y', 2000)));
    const outcome = await send(both);
    expect(outcome).to.deep.equal(transient('all senders failed: a: x; b: y', 2000));
    const oneWithout = failover(scripted('a', transient('x', 5000)), scripted('b', transient('y')));
    expect(await send(oneWithout)).to.deep.equal(transient('all senders failed: a: x; b: y'));
  });

  it('keeps hints out of the reasons it reports and logs them with each move', async () => {
    const a = scripted('a', transient('a is down', undefined, 'a: check A_URL'));
    const b = scripted('b', transient('b is down', 1000, 'b: check B_URL'));
    const outcome = await send(failover(a, b));
    expect(outcome).to.deep.equal(
      transient(
        'all senders failed: a: a is down; b: b is down',
        undefined,
        'a: a: check A_URL; b: b: check B_URL',
      ),
    );
    // The page shows the move with the public reason; the log has the hint too.
    expect(failovers).to.deep.equal([['a', 'b', 'a is down']]);
    const move = log.lines.find((l) => l.message.startsWith('Failing over'));
    expect(move?.fields).to.deep.include({ reason: 'a is down', hint: 'a: check A_URL' });
  });

  it('hands on the hint of the sender whose answer it returns', async () => {
    const refused = permanent('the SMTP server refused our credentials (535)', 'check SMTP_URL');
    const f = failover(
      scripted('a', transient('down', undefined, 'a hint')),
      scripted('b', refused),
    );
    expect(await send(f)).to.deep.equal(refused);
  });

  it('answers transient when every circuit is open, retrying when the first cools down', async () => {
    const f = failover(scripted('a', transient('x')), scripted('b', transient('y')));
    for (let i = 0; i < 3; i++) await send(f);
    now += 4000;
    const outcome = await send(f);
    expect(outcome._tag === 'Transient' && outcome.retryAfterMs).to.equal(6000);
    expect(f.states()).to.deep.equal({ a: 'open', b: 'open' });
  });

  it('keeps one breaker per sender even when two share a name', async () => {
    const f = failover(scripted('smtp', sent('1')), scripted('smtp', sent('2')));
    expect(f.name).to.equal('failover(smtp,smtp#2)');
    expect(f.states()).to.deep.equal({ smtp: 'closed', 'smtp#2': 'closed' });
  });

  it('names the sender that answered, for the watchdog to know who may report back', async () => {
    const named = (f: FailoverEmailSender) => f.sendNamed(aRequest())();
    expect(
      await named(failover(scripted('mailgun', sent('m-id')), scripted('smtp', sent('s-id')))),
    ).to.deep.equal({ outcome: sent('m-id'), transport: 'mailgun' });
    expect(
      await named(failover(scripted('mailgun', transient('503')), scripted('smtp', sent('s-id')))),
    ).to.deep.equal({ outcome: sent('s-id'), transport: 'smtp' });
    // A refusal is the refusing sender's; a second sender of one kind keeps its kind's name.
    expect(
      await named(failover(scripted('smtp', transient('421')), scripted('smtp', permanent('550')))),
    ).to.deep.equal({ outcome: permanent('550'), transport: 'smtp' });
    // Nobody took it: the chain answered.
    const none = await named(
      failover(scripted('a', transient('x')), scripted('b', transient('y'))),
    );
    expect(none.transport).to.equal('failover(a,b)');
    expect(none.outcome._tag).to.equal('Transient');
  });
});
