import type { WebhookDelivery } from '../../application/ports/webhook-deliveries.js';
import type {
  EmailStatus,
  HistoryName,
  StatusAttempt,
  StatusChange,
  StatusFailover,
  StatusName,
} from '../../domain/email-status.js';
import { isFinalStatus } from '../../domain/email-status.js';
import type { Account, Html } from './html.js';
import { layout, markup } from './html.js';

/**
 * The public JSON shape of an email (snake_case, as every field of the API): built field by field
 * so nothing internal leaks into it.
 */
export interface StatusJson {
  readonly id: string;
  readonly status: StatusName;
  readonly to: readonly string[];
  readonly cc?: readonly string[];
  readonly bcc?: readonly string[];
  readonly subject: string;
  readonly tags?: readonly string[];
  readonly metadata?: Readonly<Record<string, string>>;
  readonly created_at?: string;
  readonly send_at?: string;
  readonly recipients: readonly { readonly address: string; readonly status: StatusName }[];
  readonly attempts: readonly {
    readonly attempt: number;
    readonly at: string;
    readonly outcome: StatusAttempt['outcome'];
    readonly detail: string;
    readonly duration_ms?: number;
  }[];
  readonly events: readonly {
    readonly at: string;
    /** A status, or `unconfirmed`: the provider said nothing within CONFIRM_DEADLINE. */
    readonly status: HistoryName;
    readonly source: string;
    readonly detail?: string;
  }[];
  readonly failovers?: readonly StatusFailover[];
  readonly provider_id?: string;
  readonly sent_at?: string;
  readonly duration_ms?: number;
  readonly next_attempt_at?: string;
  readonly failed_at?: string;
  readonly reason?: string;
}

const optional = <K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } =>
  (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };

export function statusJson(s: EmailStatus): StatusJson {
  return {
    id: s.id,
    status: s.status,
    to: [...s.to],
    ...(s.cc !== undefined ? { cc: [...s.cc] } : {}),
    ...(s.bcc !== undefined ? { bcc: [...s.bcc] } : {}),
    subject: s.subject,
    ...(s.tags !== undefined ? { tags: [...s.tags] } : {}),
    ...(s.metadata !== undefined ? { metadata: { ...s.metadata } } : {}),
    ...optional('created_at', s.requestedAt),
    ...optional('send_at', s.sendAt),
    recipients: s.recipients.map(({ address, status }) => ({ address, status })),
    attempts: s.attempts.map(({ attempt, at, outcome, detail, durationMs }) => ({
      attempt,
      at,
      outcome,
      detail,
      ...optional('duration_ms', durationMs),
    })),
    events: s.history.map(({ at, status, source, detail }) => ({
      at,
      status,
      source,
      ...optional('detail', detail),
    })),
    ...(s.failovers !== undefined
      ? { failovers: s.failovers.map(({ at, from, to, reason }) => ({ at, from, to, reason })) }
      : {}),
    ...optional('provider_id', s.providerId),
    ...optional('sent_at', s.sentAt),
    ...optional('duration_ms', s.durationMs),
    ...optional('next_attempt_at', s.nextAttemptAt),
    ...optional('failed_at', s.failedAt),
    ...optional('reason', s.reason),
  };
}

/** Lets the live script skip an event that shows nothing new. */
export const statusVersion = (s: Pick<EmailStatus, 'status' | 'attempts'>): string =>
  `${s.status}:${s.attempts.length}`;

const time = (iso: string): Html => {
  const shown = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(iso)
    ? `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`
    : iso;
  return markup`<time datetime="${iso}">${shown}</time>`;
};

const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

const OUTCOMES: Readonly<Record<StatusAttempt['outcome'], string>> = {
  sent: 'sent',
  transient: 'failed for now',
  permanent: 'refused',
};

function headline(s: EmailStatus): Html {
  switch (s.status) {
    case 'scheduled':
      return markup`Scheduled: held until ${s.sendAt !== undefined ? time(s.sendAt) : 'its time'}, then sent.`;
    case 'cancelled':
      return markup`Cancelled: it was never sent.`;
    case 'suppressed':
      return markup`Suppressed: every recipient is on the suppression list, so it was not sent.`;
    case 'queued':
      return markup`Queued: waiting for a worker to send it.`;
    case 'sending':
      return markup`Sending: a worker is handing it to the provider.`;
    case 'retrying': {
      const next =
        s.nextAttemptAt !== undefined ? markup` Next try at ${time(s.nextAttemptAt)}.` : '';
      const last = s.attempts.at(-1);
      const which = last !== undefined ? `attempt ${last.attempt}` : 'the last attempt';
      return markup`Retrying: ${which} failed for now.${next}`;
    }
    case 'sent':
      // The watchdog's note is the one thing after `sent` that changes no status: say it here,
      // where a person looks first, not only in the history.
      return s.history.some((c) => c.status === 'unconfirmed')
        ? markup`Sent, unconfirmed: the provider accepted it and has reported nothing since on any recipient.`
        : markup`Sent: the provider accepted it.`;
    case 'delivered':
      return markup`Delivered: the provider reports that every recipient's server took it.`;
    case 'bounced':
      return markup`Bounced: no recipient's server would take it; the addresses are now suppressed.`;
    case 'complained':
      return markup`Complained: it was delivered, and a recipient marked it as spam.`;
    case 'failed':
      return markup`Failed: it will not be sent.`;
  }
}

function details(s: EmailStatus): Html {
  const rows: Array<[string, Html | string]> = [
    ['Id', markup`<code>${s.id}</code>`],
    ['To', s.to.join(', ')],
    ...(s.cc !== undefined ? ([['Cc', s.cc.join(', ')]] as Array<[string, string]>) : []),
    ...(s.bcc !== undefined ? ([['Bcc', s.bcc.join(', ')]] as Array<[string, string]>) : []),
    ['Subject', s.subject],
  ];
  if (s.requestedAt !== undefined) rows.push(['Requested', time(s.requestedAt)]);
  if (s.sendAt !== undefined) rows.push(['Send at', time(s.sendAt)]);
  if (s.nextAttemptAt !== undefined) rows.push(['Next try', time(s.nextAttemptAt)]);
  if (s.providerId !== undefined) rows.push(['Provider id', markup`<code>${s.providerId}</code>`]);
  if (s.sentAt !== undefined) rows.push(['Sent', time(s.sentAt)]);
  if (s.durationMs !== undefined) rows.push(['Time to send', seconds(s.durationMs)]);
  if (s.failedAt !== undefined) rows.push(['Failed', time(s.failedAt)]);
  if (s.reason !== undefined)
    rows.push([s.status === 'failed' ? 'Reason' : 'Last error', s.reason]);
  const items = rows.map(([term, value]) => markup`<dt>${term}</dt><dd>${value}</dd>`);
  return markup`<dl>${items}</dl>`;
}

function attemptsTable(attempts: readonly StatusAttempt[]): Html {
  if (attempts.length === 0) return markup`<p>No attempt yet.</p>`;
  const rows = attempts.map(
    (a) =>
      markup`<tr><td>${a.attempt}</td><td>${time(a.at)}</td><td>${OUTCOMES[a.outcome]}</td><td>${a.durationMs !== undefined ? seconds(a.durationMs) : ''}</td><td>${a.detail}</td></tr>`,
  );
  return markup`<table>
<thead><tr><th scope="col">Attempt</th><th scope="col">At</th><th scope="col">Outcome</th><th scope="col">Took</th><th scope="col">Detail</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
}

const SOURCES: Readonly<Record<StatusChange['source'], string>> = {
  api: 'accepted by the API',
  worker: 'worker',
  provider: 'reported by the provider',
};

function historyList(history: readonly StatusChange[]): Html {
  if (history.length === 0) return markup``;
  const items = history.map(
    (c) =>
      markup`<li>${time(c.at)}: <strong>${c.status}</strong> (${SOURCES[c.source]})${c.detail !== undefined ? markup`: ${c.detail}` : ''}</li>`,
  );
  return markup`<h2>History</h2>
<ol class="history">${items}</ol>`;
}

function failoversList(failovers: readonly StatusFailover[] | undefined): Html {
  if (failovers === undefined || failovers.length === 0) return markup``;
  const items = failovers.map(
    (f) => markup`<li>${time(f.at)}: ${f.from} failed for now (${f.reason}); tried ${f.to}.</li>`,
  );
  return markup`<h2>Failovers</h2>
<ul class="failovers">${items}</ul>`;
}

/**
 * Complete without JavaScript (a refresh every few seconds stands in for the live updates);
 * with it, /static/status.js follows the event stream and swaps in the `#email-status` section.
 */
/**
 * The email's webhook deliveries as JSON (`GET /emails/{id}`, field `webhooks`): each with its
 * endpoint's URL, the change's type, its state and every attempt (status code or error, time,
 * duration in ms).
 */
export const webhooksJson = (deliveries: readonly WebhookDelivery[]): readonly WebhookJson[] =>
  deliveries.map((d) => ({
    id: d.id,
    url: d.url,
    type: d.type,
    state: d.state,
    created_at: d.createdAt.toISOString(),
    ...optional('next_attempt_at', d.nextAttemptAt?.toISOString()),
    attempts: d.attempts.map((a) => ({
      attempt: a.attempt,
      at: a.at.toISOString(),
      duration_ms: a.durationMs,
      ...optional('status_code', a.statusCode),
      ...optional('error', a.error),
    })),
  }));

/** One webhook delivery as `webhooksJson` writes it. */
export interface WebhookJson {
  readonly id: string;
  readonly url: string;
  readonly type: string;
  readonly state: string;
  readonly created_at: string;
  readonly next_attempt_at?: string;
  readonly attempts: readonly {
    readonly attempt: number;
    readonly at: string;
    readonly duration_ms: number;
    readonly status_code?: number;
    readonly error?: string;
  }[];
}

const DELIVERY_STATES: Readonly<Record<WebhookDelivery['state'], string>> = {
  pending: 'pending',
  delivered: 'delivered',
  failed: 'failed: out of attempts',
};

/**
 * The webhooks section: one row per delivery, its attempts in the last cell. Undefined
 * deliveries (the store did not answer) say so rather than pass for none.
 */
function webhooksTable(deliveries: readonly WebhookDelivery[] | undefined): Html {
  if (deliveries === undefined) {
    return markup`<h2>Webhooks</h2>
<p>The webhook deliveries could not be read just now.</p>`;
  }
  if (deliveries.length === 0) return markup``;
  const rows = deliveries.map((d) => {
    const attempts = d.attempts.map(
      (a) =>
        markup`<li>${time(a.at.toISOString())}: ${a.statusCode !== undefined ? `HTTP ${a.statusCode}` : (a.error ?? '')} in ${seconds(a.durationMs)}</li>`,
    );
    const next =
      d.state === 'pending' && d.nextAttemptAt !== undefined
        ? markup`<p>Next try ${time(d.nextAttemptAt.toISOString())}</p>`
        : markup``;
    return markup`<tr><td><code>${d.type}</code></td><td class="url">${d.url}</td><td>${DELIVERY_STATES[d.state]}</td><td>${attempts.length > 0 ? markup`<ol class="webhook-attempts">${attempts}</ol>` : 'not tried yet'}${next}</td></tr>`;
  });
  return markup`<h2>Webhooks</h2>
<table class="webhooks">
<thead><tr><th scope="col">Event</th><th scope="col">Endpoint</th><th scope="col">State</th><th scope="col">Attempts</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
}

/**
 * The email's page; `account` adds "Signed in as …" and the sign-out button, `webhooks` the
 * email's webhook deliveries (undefined: they could not be read).
 */
export function statusPage(
  s: EmailStatus,
  account?: Account,
  webhooks: readonly WebhookDelivery[] | undefined = [],
): string {
  const final = isFinalStatus(s.status);
  const live = final
    ? markup``
    : markup`<p class="hint">This page updates by itself while the email is on its way.</p>`;
  const body = markup`<main${final ? '' : markup` data-events="/emails/${s.id}/events"`}>
<h1>Email status</h1>
<section id="email-status" aria-live="polite" data-version="${statusVersion(s)}">
<p class="status status-${s.status}">${headline(s)}</p>
${details(s)}
<h2>Attempts</h2>
${attemptsTable(s.attempts)}
${failoversList(s.failovers)}
${historyList(s.history)}
${webhooksTable(webhooks)}
${live}
</section>
<p><a href="/">Send another email</a></p>
</main>
${final ? '' : markup`<script src="/static/status.js" defer></script>`}`;
  const head = final
    ? undefined
    : markup`<noscript><meta http-equiv="refresh" content="5"></noscript>`;
  return layout({
    title: `Email ${s.status}`,
    body,
    ...(head ? { head } : {}),
    ...(account ? { account } : {}),
  });
}

/**
 * Served as a file so the CSP can forbid inline script. EventSource reconnects by itself after
 * the server ends the stream, so the script closes it on a final status.
 */
export const STATUS_SCRIPT = `'use strict';
(() => {
  const main = document.querySelector('main[data-events]');
  if (!main || !('EventSource' in window)) return;
  const source = new EventSource(main.dataset.events);
  let queue = Promise.resolve();
  const refresh = async () => {
    const response = await fetch(location.pathname, { headers: { Accept: 'text/html' } });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), 'text/html');
    const fresh = page.getElementById('email-status');
    const here = document.getElementById('email-status');
    if (fresh && here) here.replaceWith(fresh);
  };
  source.addEventListener('status', (event) => {
    const status = JSON.parse(event.data);
    if (status.status === 'sent' || status.status === 'failed') source.close();
    const here = document.getElementById('email-status');
    if (here && here.dataset.version === status.status + ':' + status.attempts.length) return;
    // The server renders the page; fetching its section again keeps one rendering for both paths.
    queue = queue.then(refresh).catch(() => {});
  });
})();
`;
