// Outgoing webhooks in the domain: the event filter an operator types, which changes make a
// webhook and under which key, the body each delivery carries, and the retry schedule.
import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import type { EmailStatus } from '../../src/domain/email-status.js';
import { STATUS_NAMES, evolveStatus } from '../../src/domain/email-status.js';
import type {
  DomainEvent,
  EmailCancelled,
  EmailScheduled,
  EmailSuppressed,
  EmailUnconfirmed,
  ProviderReported,
} from '../../src/domain/events.js';
import { eventKey } from '../../src/domain/events.js';
import type { WebhookNotice } from '../../src/domain/webhook.js';
import {
  WEBHOOK_EVENT_TYPES,
  WEBHOOK_RETRY_DELAYS_MS,
  WEBHOOK_TYPE_EVENT_KEYS,
  parseWebhookEventTypes,
  subscribes,
  wantedWebhookTypes,
  webhookEventKeys,
  webhookNotice,
  webhookPayload,
  webhookRetryDelayMs,
} from '../../src/domain/webhook.js';
import { aRequest, anAddress, anEvent, at } from '../support/builders.js';

const email = aRequest({ to: ['Ada Lovelace <ada@example.org>', 'bob@example.com'] });
const [ada, bob] = email.to as [EmailRequest['to'][number], EmailRequest['to'][number]];

const about = { id: email.id, to: email.to, subject: email.subject };

const scheduled: EmailScheduled = {
  type: 'EmailScheduled',
  ...about,
  at: at(0),
  sendAt: at(3600),
};
const cancelled: EmailCancelled = { type: 'EmailCancelled', ...about, at: at(5) };
const suppressed: EmailSuppressed = {
  type: 'EmailSuppressed',
  ...about,
  at: at(6),
  suppressed: [ada, bob],
};
const unconfirmed: EmailUnconfirmed = {
  type: 'EmailUnconfirmed',
  ...about,
  at: at(7200),
  transport: 'mailgun',
  deadlineMs: 3_600_000,
};

let n = 0;
/** A provider's report about `recipient`, ten seconds after the send unless told otherwise. */
const report = (
  recipient: string,
  kind: ProviderReported['kind'],
  o: Partial<ProviderReported> = {},
): ProviderReported => ({
  type: 'ProviderReported',
  ...about,
  at: at(10),
  recipient: anAddress(recipient),
  kind,
  source: 'mailgun',
  providerEventId: `event-${(n += 1)}`,
  ...o,
});

const noticeOf = (event: DomainEvent): WebhookNotice => {
  const notice = webhookNotice(event);
  if (notice === undefined) expect.fail(`${event.type} made no notice`);
  return notice;
};

const fold = (events: readonly DomainEvent[]): EmailStatus =>
  events.reduce<EmailStatus | undefined>((s, e) => evolveStatus(s, e), undefined)!;

describe('Outgoing webhooks', () => {
  describe('parseWebhookEventTypes', () => {
    it('takes a status with or without "email.", in any case', () => {
      expect(parseWebhookEventTypes(['bounced'])).to.deep.equal(E.right(['email.bounced']));
      expect(parseWebhookEventTypes(['email.bounced'])).to.deep.equal(E.right(['email.bounced']));
      expect(parseWebhookEventTypes(['Email.BOUNCED', ' Sent '])).to.deep.equal(
        E.right(['email.sent', 'email.bounced']),
      );
    });

    it('merges duplicates and answers in the order of the statuses', () => {
      expect(
        parseWebhookEventTypes(['complained', 'sent', 'email.sent', 'SENT', 'queued']),
      ).to.deep.equal(E.right(['email.queued', 'email.sent', 'email.complained']));
    });

    it('reads an empty list, or only blanks, as every type: []', () => {
      expect(parseWebhookEventTypes([])).to.deep.equal(E.right([]));
      expect(parseWebhookEventTypes(['', '  '])).to.deep.equal(E.right([]));
    });

    it('names the unknown names and lists the known ones', () => {
      expect(parseWebhookEventTypes(['opened'])).to.deep.equal(
        E.left(
          `Unknown webhook event "opened": use any of ${STATUS_NAMES.join(', ')} (with or without "email.").`,
        ),
      );
      const several = parseWebhookEventTypes(['sent', ' Opened ', 'email.clicked', 'email.']);
      if (E.isRight(several)) expect.fail('unknown names were taken');
      expect(several.left).to.match(
        /^Unknown webhook events "Opened", "email\.clicked", "email\."/,
      );
      for (const status of STATUS_NAMES) expect(several.left).to.include(status);
      expect(several.left).not.to.include('"sent"');
    });

    it('knows one type per status, in the order of the statuses', () => {
      expect(WEBHOOK_EVENT_TYPES).to.deep.equal(STATUS_NAMES.map((s) => `email.${s}`));
      for (const type of WEBHOOK_EVENT_TYPES) {
        expect(parseWebhookEventTypes([type])).to.deep.equal(E.right([type]));
      }
    });
  });

  describe('subscribes', () => {
    it('takes every type for an empty filter, and only the listed ones otherwise', () => {
      for (const type of WEBHOOK_EVENT_TYPES) expect(subscribes([], type)).to.equal(true);
      expect(subscribes(['email.sent'], 'email.sent')).to.equal(true);
      expect(subscribes(['email.sent'], 'email.bounced')).to.equal(false);
      expect(subscribes(['email.sent', 'email.bounced'], 'email.bounced')).to.equal(true);
    });
  });

  describe('webhookNotice', () => {
    it('makes a notice of every change of status, at the time of the event', () => {
      const cases: [DomainEvent, Omit<WebhookNotice, 'key'>][] = [
        [anEvent.requested(email), { type: 'email.queued', at: email.requestedAt }],
        [scheduled, { type: 'email.scheduled', at: at(0) }],
        [cancelled, { type: 'email.cancelled', at: at(5) }],
        [
          suppressed,
          {
            type: 'email.suppressed',
            at: at(6),
            reason: 'not sent: every To recipient is suppressed (ada@example.org, bob@example.com)',
          },
        ],
        [anEvent.sending(email, { at: at(1) }), { type: 'email.sending', at: at(1) }],
        [anEvent.sent(email, { at: at(2) }), { type: 'email.sent', at: at(2) }],
        [
          anEvent.retried(email, { at: at(3), reason: 'a 503 from the provider' }),
          { type: 'email.retrying', at: at(3), reason: 'a 503 from the provider' },
        ],
        [
          anEvent.failed(email, { at: at(4), reason: '550 no such user' }),
          { type: 'email.failed', at: at(4), reason: '550 no such user' },
        ],
      ];
      for (const [event, expected] of cases) {
        const { key: _key, ...notice } = noticeOf(event);
        expect(notice, event.type).to.deep.equal(expected);
      }
    });

    it('makes one of each report that gives a recipient a state, with the recipient and reason', () => {
      const cases: [ProviderReported, Omit<WebhookNotice, 'key'>][] = [
        [report(ada, 'delivered'), { type: 'email.delivered', at: at(10), recipient: ada }],
        [
          report('bob@example.com', 'bounced', { reason: '550 5.1.1 no such user' }),
          {
            type: 'email.bounced',
            at: at(10),
            recipient: bob,
            reason: '550 5.1.1 no such user',
          },
        ],
        [report(ada, 'complained'), { type: 'email.complained', at: at(10), recipient: ada }],
      ];
      for (const [event, expected] of cases) {
        const { key: _key, ...notice } = noticeOf(event);
        expect(notice, event.kind).to.deep.equal(expected);
      }
    });

    it('makes none of what changes no status: failover, deferred, unsubscribed, unconfirmed', () => {
      expect(webhookNotice(anEvent.failedOver(email, { at: at(1) }))).to.equal(undefined);
      expect(webhookNotice(report(ada, 'deferred', { reason: '421 try later' }))).to.equal(
        undefined,
      );
      expect(webhookNotice(report(ada, 'unsubscribed'))).to.equal(undefined);
      expect(webhookNotice(unconfirmed)).to.equal(undefined);
    });

    it('keys a report by type and recipient: the same news heard twice, or again later, has one key', () => {
      const bounce = report(ada, 'bounced', { reason: '550' });
      const key = noticeOf(bounce).key;
      // Heard again, as a copy and even under another provider event id.
      expect(noticeOf({ ...bounce }).key).to.equal(key);
      expect(noticeOf({ ...bounce, providerEventId: 'another-id' }).key).to.equal(key);
      // Another recipient, another kind: another change.
      const others = [
        noticeOf(report('bob@example.com', 'bounced', { reason: '550' })).key,
        noticeOf(report(ada, 'complained')).key,
      ];
      expect(new Set([key, ...others]).size).to.equal(3);
      // A second report of the same kind later (a new provider event) is no new change.
      expect(noticeOf(report(ada, 'bounced', { at: at(11), reason: '550' })).key).to.equal(key);

      const sent = anEvent.sent(email, { at: at(2) });
      expect(noticeOf(sent).key).to.equal(noticeOf({ ...sent, durationMs: 99 }).key);
      expect(noticeOf(sent).key).not.to.equal(noticeOf(anEvent.sent(email, { at: at(3) })).key);
      expect(noticeOf(sent).key).not.to.equal(noticeOf(anEvent.sending(email, { at: at(2) })).key);
    });

    it('keys one mailbox alike whatever the display name or the case of its domain', () => {
      const plain = noticeOf(report('ada@example.org', 'delivered')).key;
      expect(noticeOf(report('Ada Lovelace <ada@EXAMPLE.org>', 'delivered')).key).to.equal(plain);
    });
  });

  describe('the routing keys of the webhook types', () => {
    it('names, for every event that makes a webhook, the key it is published under', () => {
      const events: DomainEvent[] = [
        anEvent.requested(email),
        scheduled,
        cancelled,
        suppressed,
        anEvent.sending(email, { at: at(1) }),
        anEvent.sent(email, { at: at(2) }),
        anEvent.retried(email, { at: at(3), reason: 'a 503' }),
        anEvent.failed(email, { at: at(4), reason: '550' }),
        report('ada@example.org', 'delivered'),
        report('ada@example.org', 'bounced'),
        report('ada@example.org', 'complained'),
      ];
      const made = new Set<string>();
      for (const event of events) {
        const type = noticeOf(event).type;
        made.add(type);
        expect(WEBHOOK_TYPE_EVENT_KEYS[type], type).to.equal(eventKey(event));
      }
      expect([...made].sort(), 'every type is made by one of these').to.deep.equal(
        [...WEBHOOK_EVENT_TYPES].sort(),
      );
    });

    it('wants what any endpoint wants; an empty filter wants every type; no endpoint, none', () => {
      expect(wantedWebhookTypes([])).to.deep.equal([]);
      expect(wantedWebhookTypes([['email.bounced']])).to.deep.equal(['email.bounced']);
      expect(wantedWebhookTypes([['email.sent'], ['email.queued', 'email.sent']])).to.deep.equal([
        'email.queued',
        'email.sent',
      ]);
      expect(wantedWebhookTypes([['email.sent'], []])).to.deep.equal(WEBHOOK_EVENT_TYPES);
    });

    it('routes the provider reports under one key, each key once', () => {
      expect(webhookEventKeys(['email.bounced'])).to.deep.equal(['provider']);
      expect(webhookEventKeys(['email.delivered', 'email.bounced', 'email.sent'])).to.deep.equal([
        'sent',
        'provider',
      ]);
      expect(webhookEventKeys([])).to.deep.equal([]);
    });
  });

  describe('webhookPayload', () => {
    it('describes the email as it stands, with to as written in the To header', () => {
      const status = fold([
        anEvent.requested(email, { tags: ['welcome', 'eu'], metadata: { user: '42' } }),
        anEvent.sending(email, { at: at(1) }),
        anEvent.sent(email, { at: at(2) }),
      ]);
      // A notice of `sending` made after the send: the status is the email's, already `sent`.
      const payload = webhookPayload(noticeOf(anEvent.sending(email, { at: at(1) })), status);
      expect(payload).to.deep.equal({
        type: 'email.sending',
        timestamp: at(1),
        data: {
          id: email.id,
          status: 'sent',
          to: ['Ada Lovelace <ada@example.org>', 'bob@example.com'],
          subject: email.subject,
          tags: ['welcome', 'eu'],
          metadata: { user: '42' },
        },
      });
      expect(JSON.parse(JSON.stringify(payload))).to.deep.equal(payload);
    });

    it('gives [] and {} for an email without tags or metadata', () => {
      const status = fold([anEvent.requested(email)]);
      expect(status.tags).to.equal(undefined);
      expect(status.metadata).to.equal(undefined);
      expect(webhookPayload(noticeOf(anEvent.requested(email)), status)).to.deep.equal({
        type: 'email.queued',
        timestamp: email.requestedAt,
        data: {
          id: email.id,
          status: 'queued',
          to: ['Ada Lovelace <ada@example.org>', 'bob@example.com'],
          subject: email.subject,
          tags: [],
          metadata: {},
        },
      });
    });

    it('adds the recipient (its mailbox) and the reason only when the change has them', () => {
      const bounce = report(ada, 'bounced', { reason: '550 5.1.1 no such user' });
      const status = fold([anEvent.requested(email), anEvent.sent(email, { at: at(2) }), bounce]);
      expect(webhookPayload(noticeOf(bounce), status)).to.deep.equal({
        type: 'email.bounced',
        timestamp: at(10),
        data: {
          id: email.id,
          status: status.status,
          to: ['Ada Lovelace <ada@example.org>', 'bob@example.com'],
          subject: email.subject,
          tags: [],
          metadata: {},
          recipient: 'ada@example.org',
          reason: '550 5.1.1 no such user',
        },
      });

      const delivered = webhookPayload(noticeOf(report(ada, 'delivered')), status);
      expect(delivered.data).to.have.property('recipient', 'ada@example.org');
      expect(delivered.data).not.to.have.property('reason');

      const failed = webhookPayload(noticeOf(anEvent.failed(email, { at: at(4) })), status);
      expect(failed.data).to.have.property('reason', '550 no such user');
      expect(failed.data).not.to.have.property('recipient');

      const sent = webhookPayload(noticeOf(anEvent.sent(email, { at: at(2) })), status);
      expect(Object.keys(sent.data)).to.deep.equal([
        'id',
        'status',
        'to',
        'subject',
        'tags',
        'metadata',
      ]);
    });
  });

  describe('webhookRetryDelayMs', () => {
    const SECOND = 1_000;
    const MINUTE = 60 * SECOND;
    const HOUR = 60 * MINUTE;

    it('waits 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, then gives up: eight attempts', () => {
      const steps = [5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR];
      expect(WEBHOOK_RETRY_DELAYS_MS).to.deep.equal(steps);
      steps.forEach((step, i) =>
        expect(webhookRetryDelayMs(i + 1), `attempt ${i + 1}`).to.equal(step),
      );
      expect(webhookRetryDelayMs(8)).to.equal(undefined);
      expect(webhookRetryDelayMs(9)).to.equal(undefined);
    });

    it('waits for a Retry-After longer than the step: the first step that long, or the longest', () => {
      expect(webhookRetryDelayMs(1, 10 * MINUTE)).to.equal(30 * MINUTE);
      expect(webhookRetryDelayMs(1, 5 * MINUTE)).to.equal(5 * MINUTE);
      expect(webhookRetryDelayMs(2, 1 * SECOND)).to.equal(5 * MINUTE);
      expect(webhookRetryDelayMs(2, 0)).to.equal(5 * MINUTE);
      expect(webhookRetryDelayMs(1, 100 * HOUR)).to.equal(10 * HOUR);
      expect(webhookRetryDelayMs(6, 11 * HOUR)).to.equal(10 * HOUR);
      expect(webhookRetryDelayMs(8, 1 * MINUTE)).to.equal(undefined);
    });

    it('follows a schedule of its own, capped at its longest step', () => {
      const schedule = [1_000, 3_000, 2_000];
      expect(webhookRetryDelayMs(1, undefined, schedule)).to.equal(1_000);
      expect(webhookRetryDelayMs(2, undefined, schedule)).to.equal(3_000);
      expect(webhookRetryDelayMs(3, undefined, schedule)).to.equal(2_000);
      expect(webhookRetryDelayMs(4, undefined, schedule)).to.equal(undefined);
      expect(webhookRetryDelayMs(1, 2_500, schedule)).to.equal(3_000);
      expect(webhookRetryDelayMs(1, 1_500, schedule)).to.equal(2_000);
      expect(webhookRetryDelayMs(1, 60_000, schedule)).to.equal(3_000);
      expect(webhookRetryDelayMs(1, undefined, [])).to.equal(undefined);
    });
  });
});
