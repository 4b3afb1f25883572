import { pipe } from 'fp-ts/lib/function.js';
import * as O from 'fp-ts/lib/Option.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { DomainToAscii, EmailAddress } from '../domain/email-address.js';
import { mailboxKey } from '../domain/email-address.js';
import type { EmailId } from '../domain/email-request.js';
import type { EmailStatus } from '../domain/email-status.js';
import type { ProviderReportKind, ProviderReported } from '../domain/events.js';
import { recordAndAnnounce } from './email-history.js';
import type { DeliveryEvents } from './ports/delivery-events.js';
import type { DeliveryLedger } from './ports/delivery-ledger.js';
import type { EmailLog, StoreUnavailable } from './ports/email-log.js';
import type { SuppressionList, SuppressionReason } from './ports/suppression-list.js';
import type { Clock, Logger } from './ports/system.js';

/** One report of a provider's webhook, as its adapter read it (signature checked already). */
export interface ProviderReport {
  /** Ours, as we sent it along (Mailgun's `v:email-id`). */
  readonly emailId: EmailId;
  /** The provider's time of the event, RFC 3339. */
  readonly at: string;
  readonly recipient: EmailAddress;
  readonly kind: ProviderReportKind;
  /** Public: shown on the email's page (the adapter takes out what must not be). */
  readonly reason?: string;
  readonly source: ProviderReported['source'];
  readonly providerEventId: string;
  /**
   * The provider's id of the message the report is about, as its send API answered it (Mailgun:
   * `<…@domain>`, from the event's `message.headers["message-id"]`, which comes without the
   * angle brackets); undefined when the report does not name it.
   */
  readonly providerMessageId?: string;
}

/**
 * `recorded`: news, written and announced; `repeated`: known already (a provider sends at least
 * once); `unknown`: no such email here (another installation's, or deleted by retention), or a
 * report on an address the email was not sent to.
 */
export type RecordOutcome = 'recorded' | 'repeated' | 'unknown';

/** The reports that put an address on the suppression list, and why. */
const SUPPRESSES: Readonly<Record<ProviderReportKind, SuppressionReason | undefined>> = {
  bounced: 'bounce',
  complained: 'complaint',
  unsubscribed: 'unsubscribe',
  delivered: undefined,
  deferred: undefined,
};

export interface RecordProviderEventOptions {
  /** For mailbox keys: `Ada@Bücher.de` reported as `Ada@xn--bcher-kva.de` is one recipient. */
  readonly domainToAscii?: DomainToAscii;
}

/**
 * Writes a provider's report into the email's log and announces it, then suppresses the address
 * when the report says no more mail should go there. Every step is idempotent, so a report the
 * provider sends again, after a store failure or not, changes nothing the second time; a store
 * that does not answer is a Left, which the webhook answers so that the provider tries again.
 *
 * A report proves that the provider took the email (a provider reports only on messages it
 * accepted). When no send of it is recorded (a send that timed out although the provider had
 * taken it, then retried, or failed and dead-lettered), the report records one in the delivery
 * ledger too, so that the retry, or a replay of the dead letter, finds the email sent
 * (`AlreadySent`) and does not send it a second time.
 */
export class RecordProviderEvent {
  private readonly change: ReturnType<typeof recordAndAnnounce>;

  constructor(
    private readonly emails: EmailLog,
    events: DeliveryEvents,
    private readonly suppressions: Pick<SuppressionList, 'add'>,
    private readonly ledger: Pick<DeliveryLedger, 'record'>,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: RecordProviderEventOptions = {},
  ) {
    this.change = recordAndAnnounce(emails, events);
  }

  execute(report: ProviderReport): TE.TaskEither<StoreUnavailable, RecordOutcome> {
    return pipe(
      this.emails.get(report.emailId),
      TE.flatMap(
        O.match(
          (): TE.TaskEither<StoreUnavailable, RecordOutcome> => {
            this.log.info(
              { emailId: report.emailId, event: report.kind, source: report.source },
              'A provider reported on an email this service does not know; ignored',
            );
            return TE.right('unknown');
          },
          (status) => this.record(report, status),
        ),
      ),
    );
  }

  private record(
    report: ProviderReport,
    status: EmailStatus,
  ): TE.TaskEither<StoreUnavailable, RecordOutcome> {
    const recipient = this.ourAddress(report.recipient, status);
    if (recipient === undefined) {
      // Not an address this email went to: recording it would show a stranger's bounce or
      // complaint on the email, pass it on to webhooks and suppress that address on its word.
      this.log.info(
        { emailId: report.emailId, event: report.kind, source: report.source },
        'A provider reported on an address the email was not sent to; ignored',
      );
      return TE.right('unknown');
    }
    const event: ProviderReported = {
      type: 'ProviderReported',
      id: status.id,
      at: report.at,
      to: status.to,
      ...(status.cc !== undefined ? { cc: status.cc } : {}),
      ...(status.bcc !== undefined ? { bcc: status.bcc } : {}),
      subject: status.subject,
      recipient,
      kind: report.kind,
      ...(report.reason !== undefined ? { reason: report.reason } : {}),
      source: report.source,
      providerEventId: report.providerEventId,
    };
    return pipe(
      this.change(event),
      TE.tap(() => this.suppress(report, recipient)),
      TE.tap(() => this.recordTaken(report, status)),
      TE.map((applied): RecordOutcome => (applied.changed ? 'recorded' : 'repeated')),
    );
  }

  /**
   * Records the send the report proves in the ledger when the email's status has none (no
   * `providerId`): its message id, or, when the report does not name one, the report's own id.
   * The ledger keeps the first record of an id, so a worker's own record stays if it came first.
   */
  private recordTaken(
    report: ProviderReport,
    status: EmailStatus,
  ): TE.TaskEither<StoreUnavailable, void> {
    if (status.providerId !== undefined) return TE.right(undefined);
    const providerId =
      report.providerMessageId ?? `${report.source} event ${report.providerEventId}`;
    return this.ledger.record(status.id, providerId, this.clock.now());
  }

  private suppress(
    report: ProviderReport,
    recipient: EmailAddress,
  ): TE.TaskEither<StoreUnavailable, void> {
    const reason = SUPPRESSES[report.kind];
    if (reason === undefined) return TE.right(undefined);
    const address = mailboxKey(recipient, this.options.domainToAscii);
    return pipe(
      this.suppressions.add({
        address,
        reason,
        createdAt: this.clock.now(),
        detail: report.emailId,
      }),
      TE.map((added) => {
        if (added) {
          this.log.info(
            { address, reason, emailId: report.emailId },
            'Address suppressed on a provider report',
          );
        }
      }),
    );
  }

  /**
   * The email's own spelling of the reported mailbox (its display name, its domain as given),
   * so the report lands on that recipient; undefined when the email was not sent to it.
   */
  private ourAddress(reported: EmailAddress, status: EmailStatus): EmailAddress | undefined {
    const key = (a: EmailAddress): string => mailboxKey(a, this.options.domainToAscii);
    // Those dropped as suppressed were never sent to: a report on one is not about this email.
    const sentTo = status.recipients.filter((r) => r.status !== 'suppressed');
    const wanted = key(reported);
    const exact = sentTo.find((r) => key(r.address) === wanted);
    // Providers may lower-case the local part, which mailbox keys keep as given.
    const lower = wanted.toLowerCase();
    const loose = exact ?? sentTo.find((r) => key(r.address).toLowerCase() === lower);
    return loose?.address;
  }
}
