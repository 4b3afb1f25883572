import { ContainerModule } from 'inversify';
import type { AttachmentStore } from '../application/ports/attachment-store.js';
import { recordAndAnnounce } from '../application/email-history.js';
import type { DeliveryEvents } from '../application/ports/delivery-events.js';
import { recipientsOf } from '../domain/events.js';
import type { EmailSender } from '../application/ports/email-sender.js';
import type { EmailRequest } from '../domain/email-request.js';
import type { Clock, Logger } from '../application/ports/system.js';
import type { Config, TransportName } from '../adapters/config/config.js';
import { FailoverEmailSender } from '../adapters/failover/failover-email-sender.js';
import { MailgunEmailSender } from '../adapters/mailgun/mailgun-email-sender.js';
import { OutboxEmailSender } from '../adapters/outbox/outbox-email-sender.js';
import { SmtpEmailSender } from '../adapters/smtp/smtp-email-sender.js';
import { provide } from './services.js';

/** The variable of each transport's rate. */
const RATE_VARIABLES: Readonly<Partial<Record<TransportName, string>>> = {
  mailgun: 'MAILGUN_RATE',
  smtp: 'SMTP_RATE',
};

/**
 * Warns, for a role that sends, about each rate set for a transport MAIL_TRANSPORT does not name
 * (`SMTP_RATE` with `MAIL_TRANSPORT=mailgun`): valid, but never applied, which a person who set
 * it would not expect. A warning, not a refusal: one environment may serve several roles.
 */
export function warnUnusedSendRates(config: Config, log: Logger): void {
  for (const name of Object.keys(config.sendRates ?? {}) as TransportName[]) {
    if (config.transports.includes(name)) continue;
    log.warn(
      { variable: RATE_VARIABLES[name], transports: config.transports },
      `${RATE_VARIABLES[name]} is set, but MAIL_TRANSPORT does not name ${name}: that rate is not applied`,
    );
  }
}

function createOne(
  name: TransportName,
  config: Config,
  log: Logger,
  attachments: AttachmentStore,
): EmailSender {
  const from = config.mailFrom;
  switch (name) {
    case 'outbox':
      return new OutboxEmailSender({ dir: config.outboxDir, from, log, attachments });
    case 'mailgun':
      if (!config.mailgun) throw new Error('MAIL_TRANSPORT names mailgun but it is not configured');
      return new MailgunEmailSender({
        apiBase: config.mailgun.apiBase,
        apiKey: config.mailgun.apiKey.reveal(),
        from,
        timeoutMs: config.sendTimeoutMs,
        log,
        attachments,
      });
    case 'smtp':
      if (!config.smtpUrl) throw new Error('MAIL_TRANSPORT names smtp but SMTP_URL is not set');
      return new SmtpEmailSender({
        url: config.smtpUrl.reveal(),
        from,
        timeoutMs: config.sendTimeoutMs,
        log,
        attachments,
      });
  }
}

export interface SenderHandle {
  readonly sender: EmailSender;
  /** Closes pooled connections and keep-alive agents; the port itself has no lifecycle. */
  close(): Promise<void>;
}

/** One transport, or a failover chain in the order MAIL_TRANSPORT lists them. */
export function createSender(
  config: Config,
  log: Logger,
  clock: Clock,
  events: DeliveryEvents,
  attachments: AttachmentStore,
): SenderHandle {
  const senders = config.transports.map((name) => createOne(name, config, log, attachments));
  const close = async () => {
    await Promise.all(
      senders.map((s) => ('close' in s && typeof s.close === 'function' ? s.close() : undefined)),
    );
  };
  const [only] = senders;
  if (senders.length === 1 && only) return { sender: only, close };
  // Published like any other event: the status page shows it and /metrics counts it.
  const onFailover = (request: EmailRequest, from: string, to: string, reason: string) =>
    void events.publish({
      type: 'EmailFailedOver',
      id: request.id,
      at: clock.now().toISOString(),
      ...recipientsOf(request),
      subject: request.subject,
      fromTransport: from,
      toTransport: to,
      reason,
    })();
  return { sender: new FailoverEmailSender({ senders, log, clock, onFailover }), close };
}

/**
 * The sender chosen by MAIL_TRANSPORT (worker and dev; here, not in modules.ts, so that
 * `email server` loads no transport): the one line of configuration the core never sees. A
 * failover is written to the email log and announced like any change the core makes.
 */
export const senderModule = new ContainerModule(({ bind }) => {
  provide(
    bind,
    'SenderHandle',
    ['Config', 'Logger', 'Clock', 'EmailLog', 'DeliveryEvents', 'AttachmentStore'],
    (config, log, clock, emails, events, attachments) => {
      const change = recordAndAnnounce(emails, events);
      const failovers: DeliveryEvents = {
        publish: (event) => async () => {
          const done = await change(event)();
          if (done._tag === 'Left') {
            log.warn(
              { emailId: event.id, reason: done.left.reason },
              'Could not record a failover',
            );
          }
        },
      };
      return createSender(config, log, clock, failovers, attachments);
    },
  );
  provide(bind, 'EmailSender', ['SenderHandle'], (handle) => handle.sender);
});
