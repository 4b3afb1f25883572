// Test data from one place (object mothers, STYLE.md): a valid value by default, built through the
// real domain parser and codecs, so a test can only make what the service itself would accept and
// names just what it is about: `aRequest({ to: 'gone@example.org' })`.
import * as E from 'fp-ts/lib/Either.js';
import { randomBytes } from 'node:crypto';
import type { EmailTask } from '../../src/application/ports/email-task-source.js';
import type { AttemptRecord } from '../../src/domain/delivery.js';
import type { EmailAddress } from '../../src/domain/email-address.js';
import { parseEmailAddress } from '../../src/domain/email-address.js';
import type { EmailRequest } from '../../src/domain/email-request.js';
import type { DraftOptions } from '../../src/domain/email-request.js';
import { EmailId, parseEmailDraft, toEmailRequest } from '../../src/domain/email-request.js';

/** What the API's rules are checked against in tests: now, and the example domains as senders. */
export const draftOptions = (now: Date = new Date()): DraftOptions => ({
  now,
  allowedFromDomains: ['example.com', 'example.org', 'mg.example.com', 'localhost'],
});
import type {
  EmailDeliveryFailed,
  EmailDeliveryRetried,
  EmailFailedOver,
  EmailRequested,
  EmailSending,
  EmailSent,
  ProviderReported,
} from '../../src/domain/events.js';

// Unique per run, so that runs sharing a broker or a database never see each other's ids.
const runId = randomBytes(3).toString('hex');
let counter = 0;

/** The time everything starts from, unless a test says otherwise. */
export const T0 = new Date('2026-11-28T10:00:00.000Z');

/** `T0` plus `ms`, as a Date (what a clock or a store call takes). */
export const later = (ms: number): Date => new Date(T0.getTime() + ms);

/** `T0` plus `seconds`, as the ISO string the domain carries. */
export const at = (seconds: number): string =>
  new Date(T0.getTime() + seconds * 1000).toISOString();

/** A valid EmailId no other test uses: `<label>-<run>-<n>`. */
export function anId(label = 'email'): EmailId {
  counter += 1;
  return asId(`${label}-${runId}-${counter}`);
}

function asId(raw: string): EmailId {
  if (!EmailId.is(raw)) throw new Error(`test id ${raw} is not an EmailId`);
  return raw;
}

/** An address through the real parser (its canonical form): the brand is never cast. */
export function anAddress(raw = 'ada@example.org'): EmailAddress {
  const parsed = parseEmailAddress(raw);
  if (E.isLeft(parsed)) throw new Error(`test address ${raw} ${parsed.left.message}`);
  return parsed.right;
}

export interface RequestSpec {
  readonly id?: string;
  /** One address or several, as a person would type them. */
  readonly to?: string | readonly string[];
  readonly subject?: string;
  /** Give `text: undefined` for an html-only email. */
  readonly text?: string | undefined;
  readonly html?: string;
  readonly tags?: readonly string[];
  /** The other fields of the JSON email, as the API takes them. */
  readonly from?: string;
  readonly cc?: string | readonly string[];
  readonly bcc?: string | readonly string[];
  readonly reply_to?: string | readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
  readonly metadata?: Readonly<Record<string, string>>;
  /** When it was accepted: a Date, or seconds after `T0`. */
  readonly requestedAt?: Date | number;
}

/**
 * An EmailRequest made the way the service makes one: the draft through `parseEmailDraft`, then
 * an id and a time through `toEmailRequest`. Two recipients, a numbered subject and a text body
 * unless the spec says otherwise.
 */
export function aRequest(spec: RequestSpec = {}): EmailRequest {
  const n = (counter += 1);
  const { id = `req-${runId}-${String(n).padStart(5, '0')}`, requestedAt = T0, ...fields } = spec;
  const draft = parseEmailDraft(
    {
      to: ['Ada Lovelace <ada@example.org>', 'bob@example.com'],
      subject: `Hello number ${n}`,
      text: 'Some text, with ünïcödé.',
      ...fields,
    },
    draftOptions(),
  );
  if (E.isLeft(draft)) {
    throw new Error(`aRequest: the parser refuses ${JSON.stringify(draft.left.fields)}`);
  }
  const when = typeof requestedAt === 'number' ? new Date(at(requestedAt)) : requestedAt;
  return toEmailRequest(draft.right, asId(id), when);
}

/** A task as the worker receives it: a fresh request's first attempt unless told otherwise. */
export const aTask = (overrides: Partial<EmailTask> = {}): EmailTask => ({
  request: aRequest(),
  attempt: 1,
  history: [],
  ...overrides,
});

/** One line of a task's history: a transient failure unless told otherwise. */
export const anAttempt = (
  attempt: number,
  overrides: Partial<AttemptRecord> = {},
): AttemptRecord => ({
  attempt,
  at: at(attempt),
  outcome: 'transient',
  detail: 'a 503 from the provider',
  durationMs: 12,
  ...overrides,
});

const about = (request: EmailRequest) => ({
  id: request.id,
  at: request.requestedAt,
  to: request.to,
  subject: request.subject,
});

type Overrides<Event> = Partial<Omit<Event, 'type' | 'id' | 'to' | 'subject'>>;

/**
 * The events of one request's life, each about `request` (its id, recipients and subject) and
 * dated when it was requested unless `at` says otherwise.
 */
export const anEvent = {
  requested: (request: EmailRequest, o: Overrides<EmailRequested> = {}): EmailRequested => ({
    type: 'EmailRequested',
    ...about(request),
    ...o,
  }),
  sending: (request: EmailRequest, o: Overrides<EmailSending> = {}): EmailSending => ({
    type: 'EmailSending',
    ...about(request),
    attempt: 1,
    ...o,
  }),
  sent: (request: EmailRequest, o: Overrides<EmailSent> = {}): EmailSent => ({
    type: 'EmailSent',
    ...about(request),
    attempt: 1,
    providerId: `<${request.id}@mg.example.org>`,
    durationMs: 12,
    ...o,
  }),
  retried: (
    request: EmailRequest,
    o: Overrides<EmailDeliveryRetried> = {},
  ): EmailDeliveryRetried => ({
    type: 'EmailDeliveryRetried',
    ...about(request),
    attempt: 1,
    reason: 'a 503 from the provider',
    durationMs: 10,
    delayMs: 60_000,
    nextAttemptAt: new Date(
      Date.parse(o.at ?? request.requestedAt) + (o.delayMs ?? 60_000),
    ).toISOString(),
    ...o,
  }),
  failed: (request: EmailRequest, o: Overrides<EmailDeliveryFailed> = {}): EmailDeliveryFailed => ({
    type: 'EmailDeliveryFailed',
    ...about(request),
    attempt: 1,
    outcome: 'permanent',
    reason: '550 no such user',
    durationMs: 9,
    ...o,
  }),
  failedOver: (request: EmailRequest, o: Overrides<EmailFailedOver> = {}): EmailFailedOver => ({
    type: 'EmailFailedOver',
    ...about(request),
    fromTransport: 'mailgun',
    toTransport: 'smtp',
    reason: 'Mailgun 503',
    ...o,
  }),
  /**
   * Mailgun's report of `delivered` to the first recipient unless told otherwise; its event id
   * names the email, the recipient and the kind, so two reports differ when any of them does.
   */
  reported: (request: EmailRequest, o: Overrides<ProviderReported> = {}): ProviderReported => {
    const recipient = o.recipient ?? request.to[0]!;
    const kind = o.kind ?? 'delivered';
    return {
      type: 'ProviderReported',
      ...about(request),
      recipient,
      kind,
      source: 'mailgun',
      providerEventId: `${request.id}-${recipient}-${kind}`,
      ...o,
    };
  },
};
