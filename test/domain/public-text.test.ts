import { expect } from 'chai';
import { permanent, publicText, sent, transient, uncertain } from '../../src/domain/delivery.js';

describe('publicText: what a public reason may show', () => {
  const hidden: [string, string, string][] = [
    ['a URL', 'refused at https://api.mailgun.net/v3/x/messages.', 'refused at [hidden]'],
    [
      'an IPv4 address and port',
      'connect ECONNREFUSED 127.0.0.1:2525',
      'connect ECONNREFUSED [hidden]',
    ],
    ['an IPv6 address and port', 'connect ECONNREFUSED ::1:2525', 'connect ECONNREFUSED [hidden]'],
    ['an IPv6 address in brackets', 'from [2001:db8::7]:465 refused', 'from [hidden] refused'],
    ['a host and port', 'upstream edge-7.internal:8443 down', 'upstream [hidden] down'],
    ['a one-label host and port', 'connect to localhost:25 failed', 'connect to [hidden] failed'],
    ['a host name', '421 4.7.0 mx.relay.example.net busy', '421 4.7.0 [hidden] busy'],
    ['an absolute path', "EACCES: open '/var/outbox/x.eml'", "EACCES: open '[hidden]'"],
    ['a relative path', 'see ./data/.lock now', 'see [hidden] now'],
    ['a Windows path', 'EPERM C:\\outbox\\x.eml', 'EPERM [hidden]'],
  ];
  for (const [what, text, shown] of hidden) {
    it(`hides ${what}`, () => expect(publicText(text)).to.equal(shown));
  }

  const kept = [
    '550 5.1.1 <x@example.com>: Recipient address rejected: User unknown',
    'Mailbox first.last@example.org unavailable',
    'Domain is not allowed to send: try again after Sat, 28 Nov 2026 11:00:00 UTC',
    'Message size exceeds 25MB',
    'content type text/plain and/or text/html only, 24/7',
    '<20261128103000.42.1f2e3d4c@mg.example.org>',
    "'to' parameter is not a valid address. please check documentation",
  ];
  for (const text of kept) {
    it(`keeps ${JSON.stringify(text)}`, () => expect(publicText(text)).to.equal(text));
  }

  it('hides our own configuration where it stands as a word, not inside other words', () => {
    expect(
      publicText('relay refused; the relay:25 is busy; relays and mail@relay stay', ['relay']),
    ).to.equal('[hidden] refused; the [hidden] is busy; relays and mail@relay stay');
  });
});

describe('outcome constructors and hints', () => {
  it('add a hint only when there is one, so outcomes without compare as before', () => {
    expect(permanent('x')).to.deep.equal({ _tag: 'Permanent', reason: 'x' });
    expect(permanent('x', 'check X')).to.deep.equal({
      _tag: 'Permanent',
      reason: 'x',
      hint: 'check X',
    });
    expect(transient('x', undefined, 'h')).to.deep.equal({
      _tag: 'Transient',
      reason: 'x',
      hint: 'h',
    });
    expect(uncertain('x', 5, 'h')).to.deep.equal({
      _tag: 'Transient',
      reason: 'x',
      retryAfterMs: 5,
      uncertain: true,
      hint: 'h',
    });
    expect(sent('<id@x>', '')).to.deep.equal({ _tag: 'Sent', providerId: '<id@x>' });
  });
});
