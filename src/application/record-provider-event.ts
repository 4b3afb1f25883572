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
 */
export class RecordProviderEvent {
  private readonly change: ReturnType<typeof recordAndAnnounce>;

  constructor(
    private readonly emails: EmailLog,
    events: DeliveryEvents,
    private readonly suppressions: Pick<SuppressionList, 'add'>,
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
      TE.map((applied): RecordOutcome => (applied.changed ? 'recorded' : 'repeated')),
    );
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
