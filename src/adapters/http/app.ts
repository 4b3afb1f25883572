import type { WebhookDeliveries } from '../../application/ports/webhook-deliveries.js';
import Router from '@koa/router';
import type Koa from 'koa';
import type { EmailLog } from '../../application/ports/email-log.js';
import type { Logger } from '../../application/ports/system.js';
import type { SuppressionList } from '../../application/ports/suppression-list.js';
import type { EmailRequester } from '../../application/ports/email-requester.js';
import type { BatchRequester } from '../../application/request-batch.js';
import type { AccessPolicy } from './access.js';
import { createGuards } from './access.js';
import { mountApiRoutes } from './api-routes.js';
import { mountBatchRoutes } from './batch-routes.js';
import type { EmailCanceller } from './cancel-routes.js';
import { mountCancelRoutes } from './cancel-routes.js';
import type { RawMessage } from './raw-routes.js';
import { mountRawRoutes } from './raw-routes.js';
import type { ResendAction, RetryNowAction } from './email-action-routes.js';
import { mountEmailActionRoutes } from './email-action-routes.js';
import type { StoredMessages } from './message-routes.js';
import { emailPageSections, mountMessageRoutes } from './message-routes.js';
import { createCsrf } from './csrf.js';
import { mountFormRoutes } from './form-routes.js';
import { mountLayoutRoutes } from './layout-routes.js';
import { mountLoginRoutes } from './login-routes.js';
import type { MailgunWebhooks } from './mailgun-webhook-routes.js';
import { mountMailgunWebhookRoutes } from './mailgun-webhook-routes.js';
import { mountOpenApiRoute } from './openapi.js';
import { mountOpsRoutes } from './ops-routes.js';
import { appWith } from './ops-app.js';
import { mountSuppressionRoutes } from './suppression-routes.js';
import type { DeadLetterBox } from '../../application/ports/dead-letter-box.js';
import { mountDeadLetterRoutes } from './dead-letter-routes.js';
import type { WebhookRoutesOptions } from './webhook-routes.js';
import { mountWebhookRoutes } from './webhook-routes.js';
import type { WatchEmail } from './status-routes.js';
import { mountStatusRoutes } from './status-routes.js';
import type { WatchAllEmails } from './email-list-routes.js';
import { mountEmailListRoutes } from './email-list-routes.js';
import { loopbackHostsOnly } from './loopback.js';

export interface HttpDeps {
  readonly requestEmail: EmailRequester;
  /** `POST /emails/batch`; without it, that path answers POST with 405. */
  readonly requestBatch?: BatchRequester;
  /** `DELETE /emails/:id` for scheduled emails; without it, that route is 405. */
  readonly cancelEmail?: EmailCanceller;
  /** The email log: `get` for an email's page, `list` and `countByStatus` for `GET /emails`. */
  readonly emails: Pick<EmailLog, 'get' | 'list' | 'countByStatus'>;
  /** An email's outgoing webhook deliveries, for its page and JSON (none: not shown). */
  readonly webhookDeliveries?: Pick<WebhookDeliveries, 'forEmail'>;
  /** Tells a live page to look again when its email may have changed. */
  readonly watch: WatchEmail;
  /** Tells the live list of emails to look again when any email may have changed (none: not live). */
  readonly watchAll?: WatchAllEmails;
  /** Answers /readyz: true only while the broker and the database are reachable. */
  readonly readiness: () => boolean;
  /** Prometheus text for /metrics; without it /metrics is 404. */
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
  /** HMAC key for CSRF tokens; a new key invalidates forms already rendered, nothing else. */
  readonly csrfSecret: Buffer;
  readonly log: Logger;
  /** `GET /emails/{id}/raw`; without it the route does not exist. */
  readonly rawMessage?: RawMessage;
  /** Largest JSON or form body accepted, in bytes. */
  readonly bodyLimitBytes?: number;
  /**
   * Largest JSON body, in bytes: it carries attachments as base64, so it follows
   * MAX_MESSAGE_BYTES (one and a half times it); forms keep `bodyLimitBytes`.
   */
  readonly jsonLimitBytes?: number;
  /**
   * Aborted when the server is about to stop: live event streams end at once (a browser's
   * EventSource reconnects by itself, to whichever instance is still there) instead of holding
   * the stop until its grace period runs out and the connections are cut.
   */
  readonly closing?: AbortSignal;
  /** Who may do what; open (no key, no sign-in, no limits) when absent. */
  readonly access?: AccessPolicy;
  /** Signs the session cookie (`SESSION_SECRET`); needed when access is guarded. */
  readonly sessionSecret?: Buffer;
  /**
   * Believe `X-Forwarded-For` and `X-Forwarded-Proto` (`TRUST_PROXY`): the client's address for
   * rate limits and audit lines, https for Secure cookies. Only behind a proxy that sets them.
   */
  readonly trustProxy?: boolean;
  /** `GET`, `POST /suppressions` and `DELETE /suppressions/{address}`; without it, none exists. */
  readonly suppressions?: SuppressionList;
  /**
   * `GET`, `POST /webhooks` and `DELETE /webhooks/{id}`: the outgoing webhook endpoints, for
   * admin keys; without it, none exists.
   */
  readonly webhookSubscriptions?: WebhookRoutesOptions['subscriptions'];
  /** The newest deliveries of every endpoint, for the `/webhooks` page; without it, not shown. */
  readonly recentWebhookDeliveries?: Pick<WebhookDeliveries, 'recent'>;
  /**
   * `GET /dead-letters`, `POST /dead-letters/replay` and `/purge` (JSON for admin keys, a page
   * for operators): RabbitMQ's dead queue, or the embedded queue's; without it, none exists.
   */
  readonly deadLetters?: DeadLetterBox;
  /**
   * `POST /webhooks/mailgun`, Mailgun's signed event webhooks; without it (no
   * MAILGUN_WEBHOOK_SIGNING_KEY) the route does not exist.
   */
  readonly mailgunWebhooks?: MailgunWebhooks;
  /**
   * An email's message on its page, and `GET /emails/{id}/html` (its html part, for the page's
   * sandboxed frame); without it, neither.
   */
  readonly messages?: StoredMessages;
  /** "Retry now" on a retrying email's page; without it, not offered. */
  readonly retryNow?: RetryNowAction;
  /** "Resend" on a failed, bounced, suppressed or cancelled email's page; without it, not offered. */
  readonly resendEmail?: ResendAction;
}

export const DEFAULT_BODY_LIMIT_BYTES = 1_000_000;

/** Builds the app without listening, so tests and the composition roots choose the server. */
export function createHttpApp(deps: HttpDeps): Koa {
  const bodyLimitBytes = deps.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const jsonLimitBytes = deps.jsonLimitBytes ?? bodyLimitBytes;
  const csrf = createCsrf({ secret: deps.csrfSecret });
  const router = new Router();
  const access = deps.access ?? { mode: 'open' };
  const guards = createGuards(access);
  // Open (nothing to sign in to) only because only this machine can reach it: then only by a
  // loopback name, which a DNS-rebinding page cannot send (see loopbackHostsOnly).
  if (access.mode === 'open') router.use(loopbackHostsOnly());

  if (access.mode === 'guarded') {
    mountLoginRoutes(router, { operators: access.operators, guards, csrf, log: deps.log });
  }
  mountFormRoutes(router, {
    requestEmail: deps.requestEmail,
    csrf,
    guards,
    bodyLimitBytes,
    log: deps.log,
  });
  mountApiRoutes(router, {
    requestEmail: deps.requestEmail,
    guards,
    bodyLimitBytes: jsonLimitBytes,
    log: deps.log,
  });
  // Before any `/emails/:id` route, so that `batch` is never taken for an id.
  if (deps.requestBatch) {
    mountBatchRoutes(router, {
      requestBatch: deps.requestBatch,
      guards,
      bodyLimitBytes: jsonLimitBytes,
      log: deps.log,
    });
  }
  if (deps.cancelEmail) {
    mountCancelRoutes(router, { cancelEmail: deps.cancelEmail, guards, log: deps.log });
  }
  if (deps.rawMessage) mountRawRoutes(router, { rawMessage: deps.rawMessage, guards });
  if (deps.messages) mountMessageRoutes(router, { messages: deps.messages, guards, log: deps.log });
  mountEmailActionRoutes(router, {
    emails: deps.emails,
    csrf,
    guards,
    log: deps.log,
    ...(deps.cancelEmail ? { cancelEmail: deps.cancelEmail } : {}),
    ...(deps.retryNow ? { retryNow: deps.retryNow } : {}),
    ...(deps.resendEmail ? { resendEmail: deps.resendEmail } : {}),
  });
  if (deps.suppressions) {
    mountSuppressionRoutes(router, {
      suppressions: deps.suppressions,
      guards,
      log: deps.log,
      csrf,
    });
  }
  if (deps.webhookSubscriptions) {
    mountWebhookRoutes(router, {
      subscriptions: deps.webhookSubscriptions,
      guards,
      log: deps.log,
      csrf,
      ...(deps.recentWebhookDeliveries ? { deliveries: deps.recentWebhookDeliveries } : {}),
    });
  }
  if (deps.deadLetters) {
    mountDeadLetterRoutes(router, { deadLetters: deps.deadLetters, guards, csrf, log: deps.log });
  }
  if (deps.mailgunWebhooks) {
    mountMailgunWebhookRoutes(router, { webhooks: deps.mailgunWebhooks, guards, log: deps.log });
  }
  // Before the status routes: `/emails/events` is the list's stream, not an email's page.
  mountEmailListRoutes(router, {
    guards,
    csrf,
    emails: deps.emails,
    ...(deps.watchAll ? { watchAll: deps.watchAll } : {}),
    ...(deps.closing ? { closing: deps.closing } : {}),
  });
  mountStatusRoutes(router, {
    guards,
    csrf,
    emails: deps.emails,
    ...(deps.webhookDeliveries ? { webhooks: deps.webhookDeliveries } : {}),
    watch: deps.watch,
    log: deps.log,
    ...(deps.closing ? { closing: deps.closing } : {}),
    sections: emailPageSections({
      ...(deps.messages ? { messages: deps.messages } : {}),
      raw: deps.rawMessage !== undefined,
      offered: {
        cancel: deps.cancelEmail !== undefined,
        retry: deps.retryNow !== undefined,
        resend: deps.resendEmail !== undefined,
      },
      log: deps.log,
    }),
  });
  mountOpsRoutes(router, {
    readiness: deps.readiness,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
  });
  mountOpenApiRoute(router);
  mountLayoutRoutes(router);

  const app = appWith(router, deps.log, bodyLimitBytes, jsonLimitBytes);
  app.proxy = deps.trustProxy ?? false;
  // One proxy in front: its own entry, the right-most, is the client. The left-most is whatever
  // the client wrote, which a proxy that appends (nginx's $proxy_add_x_forwarded_for) passes on.
  app.maxIpsCount = 1;
  if (access.mode === 'guarded') {
    if (deps.sessionSecret === undefined) throw new Error('Guarded access needs a session secret');
    app.keys = [deps.sessionSecret.toString('base64')];
  }
  return app;
}

// The worker's listener lives in ops-app.ts, which loads none of the routes above.
export { createOpsApp } from './ops-app.js';
export type { OpsDeps } from './ops-app.js';
