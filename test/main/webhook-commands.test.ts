import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import { parseWebhooksArgs } from '../../src/main/webhook-commands.js';

describe('email webhooks: reading the arguments', () => {
  it('adds up the names of --events given more than once, in the order of the statuses', () => {
    expect(
      parseWebhooksArgs(['add', 'https://example.com/', '--events', 'bounced', '--events', 'sent']),
    ).to.deep.equal(
      E.right({
        kind: 'add',
        url: 'https://example.com/',
        events: ['email.sent', 'email.bounced'],
      }),
    );
  });

  it('names an unknown event whichever --events carried it', () => {
    const parsed = parseWebhooksArgs([
      'add',
      'https://example.com/',
      '--events',
      'sent',
      '--events',
      'opened',
    ]);
    expect(E.isLeft(parsed) && parsed.left).to.match(/"opened"/);
  });
});
