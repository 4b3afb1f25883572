// The senders' side of pacing: which answers are a throttle (Mailgun's 429, an SMTP 421/451/452
// about a rate), and how the failover chain moves past a throttled or paused transport.
import { expect } from 'chai';
import { FailoverEmailSender } from '../../../src/adapters/failover/failover-email-sender.js';
import { MAX_RETRY_AFTER_MS, outcomeOf } from '../../../src/adapters/mailgun/mailgun-response.js';
import type { SmtpFailure } from '../../../src/adapters/smtp/smtp-outcome.js';
import { isThrottleReply, outcomeOfError } from '../../../src/adapters/smtp/smtp-outcome.js';
import type { EmailSender } from '../../../src/application/ports/email-sender.js';
import type { DeliveryOutcome } from '../../../src/domain/delivery.js';
import { isThrottled, sent, throttled, transient } from '../../../src/domain/delivery.js';
import { aRequest } from '../../support/builders.js';
import { recordingLogger } from '../../support/fakes.js';
import { mailgunPair } from './support.js';

describe('Mailgun 429', () => {
  const NOW = Date.parse('2026-11-28T10:00:00Z');
  const reply = { status: 429, body: '{"message": "Too many requests"}' };

  it('is throttled, with its Retry-After in delta-seconds or as an HTTP date', () => {
    expect(outcomeOf({ ...reply, retryAfter: '3' }, NOW)).to.deep.equal({
      _tag: 'Transient',
      reason: 'Mailgun 429: Too many requests',
      retryAfterMs: 3000,
      throttled: true,
    });
    const dated = outcomeOf({ ...reply, retryAfter: 'Sat, 28 Nov 2026 10:00:05 GMT' }, NOW);
    expect(dated).to.include({ _tag: 'Transient', retryAfterMs: 5000, throttled: true });
  });

  it('is throttled without a Retry-After too, leaving the pause to the core', () => {
    const outcome = outcomeOf(reply, NOW);
    expect(isThrottled(outcome)).to.equal(true);
    expect(outcome).not.to.have.property('retryAfterMs');
  });

  it('leaves 503 and 408 transient, not throttled', () => {
    for (const status of [503, 408]) {
      const outcome = outcomeOf({ status, body: '{"message": "busy"}' }, NOW);
      expect(outcome._tag, String(status)).to.equal('Transient');
      expect(isThrottled(outcome), String(status)).to.equal(false);
    }
  });

  it('reads an absurd Retry-After as at most a week (MAX_RETRY_AFTER_MS)', () => {
    for (const retryAfter of [
      '99999999999999999999',
      '9'.repeat(400),
      'Fri, 31 Dec 9999 23:59:59 GMT',
    ]) {
      expect(outcomeOf({ ...reply, retryAfter }, NOW), retryAfter.slice(0, 30)).to.include({
        retryAfterMs: MAX_RETRY_AFTER_MS,
        throttled: true,
      });
    }
  });

  it('comes back from the stand-in as throttled, Retry-After honoured', async () => {
    const { standIn, sender } = await mailgunPair(recordingLogger());
    try {
      standIn.script({ status: 429, retryAfterSeconds: 1 });
      const outcome = await sender.send(aRequest())();
      expect(outcome).to.include({ _tag: 'Transient', retryAfterMs: 1000, throttled: true });
      expect(standIn.messages).to.have.length(0);
    } finally {
      sender.close();
      await standIn.close();
    }
  });
});

describe('Mailgun 420', () => {
  // Mailgun's per-domain sending limit (mailgun/mailgun-java#50): its time is in the text.
  it('"limit exceeded, try again after …" is a throttle, paused until that time', () => {
    const now = Date.parse('2026-11-30T21:00:00Z');
    const outcome = outcomeOf(
      {
        status: 420,
        body: JSON.stringify({
          message:
            'Domain mg.example.com is not allowed to send: recipient limit exceeded, try again after Mon, 30 Nov 2026 21:10:00 UTC',
        }),
      },
      now,
    );
    expect(outcome).to.include({ _tag: 'Transient', retryAfterMs: 600_000, throttled: true });
  });

  it('is a throttle without a time too, and its Retry-After header comes first', () => {
    const now = Date.parse('2026-11-30T21:00:00Z');
    const bare = outcomeOf({ status: 420, body: '{"message": "busy"}' }, now);
    expect(isThrottled(bare)).to.equal(true);
    expect(bare).not.to.have.property('retryAfterMs');
    const body = JSON.stringify({
      message: 'limit exceeded, try again after Mon, 30 Nov 2026 22:00:00 UTC',
    });
    expect(outcomeOf({ status: 420, body, retryAfter: '30' }, now)).to.include({
      retryAfterMs: 30_000,
      throttled: true,
    });
  });
});

describe('SMTP replies about a rate', () => {
  // Real servers' words: Gmail (support.google.com/a/answer/3726730), Outlook, Postfix.
  const table: [string, number, string, boolean][] = [
    [
      'Gmail 421-4.7.28',
      421,
      '421-4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. - gsmtp',
      true,
    ],
    [
      'Postfix: too many connections',
      421,
      '421 4.7.0 mx1.example.net Error: too many connections from 192.0.2.1',
      true,
    ],
    [
      'Outlook 451 4.7.650',
      451,
      '451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.',
      true,
    ],
    ['a relay that throttles', 451, '451 4.7.1 Throttled: try again in a few minutes', true],
    ['a relay over its limit', 452, '452 4.3.1 Hourly sending limit exceeded', true],
    ['a relay asking to slow down', 421, '421 4.7.0 Slow down, please', true],
    ['Gmail 421 4.7.0 (DoS at HELO)', 421, '421 4.7.0 Try again later, closing connection.', false],
    ['Gmail 451 4.3.0', 451, '451 4.3.0 Mail server temporarily rejected message.', false],
    [
      'Postfix 451 local problem',
      451,
      '451 4.3.0 Temporary local problem - please try later',
      false,
    ],
    // A limit of one message, not of our pace: another try of the same message meets it again.
    [
      'Gmail 452-4.5.3',
      452,
      "452-4.5.3 Your message has too many recipients. For more information regarding Google's sending limits, visit https://support.google.com/mail/?p=TooManyRecipientsError - gsmtp",
      false,
    ],
    [
      'Gmail 452 4.2.2',
      452,
      '452 4.2.2 The email account that you tried to reach is over quota.',
      false,
    ],
    // 450 is about one recipient's mailbox (Gmail 4.2.1), not our transport: no pause for all.
    [
      'Gmail 450 4.2.1',
      450,
      '450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered.',
      false,
    ],
    ['a 5xx about a rate', 550, '550 5.7.1 Daily sending rate limit exceeded', false],
    // A full mailbox or a message too big: the limit is the mailbox's or the message's, whatever
    // the words, and above all when the enhanced status code (RFC 3463) says so.
    ['Postfix 452 4.2.2 (mailbox full)', 452, '452 4.2.2 Mailbox size limit exceeded', false],
    ['Exim 451 (message size)', 451, '451 4.3.0 Message size exceeds fixed limit', false],
    [
      'a 452 of a mailbox over its limit, without a code',
      452,
      '452 Requested action not taken: mailbox over limit',
      false,
    ],
    [
      'a 421 of a sender over its hourly count, naming its mailbox',
      421,
      '421 4.7.0 Too many messages sent from this mailbox over the last hour, slow down',
      true,
    ],
    ['452 4.3.4 (message too big, by its code)', 452, '452 4.3.4 Limit exceeded', false],
    [
      '452-4.2.2 (mailbox full, by its code)',
      452,
      '452-4.2.2 Rate limit of this mailbox reached',
      false,
    ],
    ['a relay over its hourly count', 452, '452 4.3.1 Too many messages this hour', true],
  ];
  for (const [what, code, response, expected] of table) {
    it(`reads ${what} as ${expected ? 'throttled' : 'not throttled'}`, () => {
      expect(isThrottleReply(code, response)).to.equal(expected);
      const failure: SmtpFailure = { code: 'EENVELOPE', responseCode: code, response };
      const outcome = outcomeOfError(failure);
      expect(isThrottled(outcome)).to.equal(expected);
      expect(outcome._tag).to.equal(code >= 500 ? 'Permanent' : 'Transient');
    });
  }

  it('keeps the reply public as before: addresses and hosts hidden, the words kept', () => {
    const outcome = outcomeOfError({
      code: 'EPROTOCOL',
      responseCode: 421,
      command: 'CONN',
      response: '421 4.7.0 mx1.relay.example.net Error: too many connections from 10.1.2.3',
    });
    expect(outcome).to.deep.include({
      _tag: 'Transient',
      throttled: true,
      reason: 'SMTP 421 on CONN: 421 4.7.0 [hidden] Error: too many connections from [hidden]',
    });
    expect(outcome).not.to.have.property('retryAfterMs');
  });
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

describe('FailoverEmailSender and throttles', () => {
  const moves: [string, string, string][] = [];
  const chain = (...senders: EmailSender[]) =>
    new FailoverEmailSender({
      senders,
      log: recordingLogger(),
      onFailover: (_r, from, to, reason) => moves.push([from, to, reason]),
    });
  beforeEach(() => (moves.length = 0));

  it('names its transports in order, for the core to pace and pause', () => {
    expect(chain(scripted('mailgun'), scripted('smtp')).transports).to.deep.equal([
      'mailgun',
      'smtp',
    ]);
  });

  it('moves past a throttled transport, and lists the throttle with the email taken', async () => {
    const mailgun = scripted('mailgun', throttled('Mailgun 429: Too many requests', 2000));
    const smtp = scripted('smtp');
    const answer = await chain(mailgun, smtp).sendNamed(aRequest())();
    expect(answer).to.deep.equal({
      outcome: sent('smtp-id'),
      transport: 'smtp',
      throttled: [{ transport: 'mailgun', retryAfterMs: 2000 }],
    });
    expect(moves).to.deep.equal([['mailgun', 'smtp', 'Mailgun 429: Too many requests']]);
  });

  it('passes over a paused transport without asking it, and says so', async () => {
    const mailgun = scripted('mailgun');
    const smtp = scripted('smtp');
    const answer = await chain(mailgun, smtp).sendNamed(aRequest(), {
      skip: new Map([['mailgun', 2500]]),
    })();
    expect(answer.transport).to.equal('smtp');
    expect(mailgun.calls).to.equal(0);
    expect(moves).to.deep.equal([['mailgun', 'smtp', 'paused after a throttle (3s left)']]);
  });

  it('is throttled when every transport throttled or was paused, with the soonest end', async () => {
    const answer = await chain(
      scripted('mailgun'),
      scripted('smtp', throttled('SMTP 421: too many messages', 4000)),
    ).sendNamed(aRequest(), { skip: new Map([['mailgun', 1500]]) })();
    expect(answer.outcome).to.include({ _tag: 'Transient', throttled: true, retryAfterMs: 1500 });
    expect(answer.throttled).to.deep.equal([{ transport: 'smtp', retryAfterMs: 4000 }]);
  });

  it('is a plain transient failure when one transport failed for another reason', async () => {
    const answer = await chain(
      scripted('mailgun', throttled('Mailgun 429', 1000)),
      scripted('smtp', transient('SMTP 451: 451 4.3.0 local problem')),
    ).sendNamed(aRequest())();
    expect(answer.outcome._tag).to.equal('Transient');
    expect(isThrottled(answer.outcome)).to.equal(false);
    expect(answer.throttled).to.deep.equal([{ transport: 'mailgun', retryAfterMs: 1000 }]);
  });

  it('does not open the circuit of a transport that only throttles: it is up', async () => {
    const mailgun = scripted('mailgun', throttled('Mailgun 429', 1000));
    const failover = chain(mailgun, scripted('smtp'));
    for (let i = 0; i < 8; i += 1) await failover.sendNamed(aRequest())();
    expect(failover.states()).to.deep.equal({ mailgun: 'closed', smtp: 'closed' });
    expect(mailgun.calls).to.equal(8);
  });
});
