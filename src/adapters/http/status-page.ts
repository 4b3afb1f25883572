import type { WebhookDelivery } from '../../application/ports/webhook-deliveries.js';
import type {
  EmailStatus,
  HistoryName,
  StatusAttempt,
  StatusChange,
  StatusFailover,
  StatusName,
} from '../../domain/email-status.js';
import { STATUS_NAMES, isFinalStatus } from '../../domain/email-status.js';
import type { Account, Html } from './html.js';
import { layout, markup } from './html.js';
import type { EmailPageSections } from './email-message.js';

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

/**
 * Lets the live script skip an event that shows nothing new: the status, and how many attempts
 * and history lines there are (a note such as `unconfirmed` changes no status but shows).
 */
export const statusVersion = (s: Pick<EmailStatus, 'status' | 'attempts' | 'history'>): string =>
  `${s.status}:${s.attempts.length}:${s.history.length}`;

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

/**
 * What an attempt came to, in words. A transient failure is "failed for now" while another
 * attempt follows; the one that failed the email (its `failedAt`) was the last: "failed: out of
 * attempts".
 */
function outcomeOf(a: StatusAttempt, s: EmailStatus): string {
  const last = s.attempts.at(-1) === a;
  if (a.outcome === 'transient' && s.status === 'failed' && last && a.at === s.failedAt) {
    return 'failed: out of attempts';
  }
  return OUTCOMES[a.outcome];
}

/**
 * The attempt a worker is on while the email is `sending`: the number its history line gives
 * ("attempt 2"), else the one after the attempts recorded.
 */
function attemptInFlight(s: EmailStatus): number {
  const line = s.history.findLast((c) => c.status === 'sending');
  const given = /attempt (\d+)/.exec(line?.detail ?? '');
  return given?.[1] !== undefined ? Number(given[1]) : s.attempts.length + 1;
}

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
      return markup`Sending now (attempt ${attemptInFlight(s)})… A worker is handing it to the provider.`;
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
    case 'failed': {
      const last = s.attempts.at(-1);
      if (last?.outcome === 'permanent') {
        return markup`Failed: attempt ${last.attempt} was refused, so it will not be sent.`;
      }
      if (last?.outcome === 'transient') {
        return markup`Failed: out of attempts after attempt ${last.attempt}; it will not be sent.`;
      }
      return markup`Failed: it will not be sent.`;
    }
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
  if (s.tags !== undefined && s.tags.length > 0) {
    rows.push(['Tags', markup`<ul class="tags">${s.tags.map((t) => markup`<li>${t}</li>`)}</ul>`]);
  }
  const metadata = Object.entries(s.metadata ?? {});
  if (metadata.length > 0) {
    rows.push([
      'Metadata',
      markup`<dl class="metadata">${metadata.map(([k, v]) => markup`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`,
    ]);
  }
  if (s.requestedAt !== undefined) rows.push(['Requested', time(s.requestedAt)]);
  if (s.sendAt !== undefined) rows.push(['Send at', time(s.sendAt)]);
  if (s.nextAttemptAt !== undefined) rows.push(['Next try', time(s.nextAttemptAt)]);
  if (s.sentBy !== undefined) rows.push(['Transport', s.sentBy]);
  if (s.providerId !== undefined) rows.push(['Provider id', markup`<code>${s.providerId}</code>`]);
  if (s.sentAt !== undefined) rows.push(['Sent', time(s.sentAt)]);
  if (s.durationMs !== undefined) rows.push(['Time to send', seconds(s.durationMs)]);
  if (s.failedAt !== undefined) rows.push(['Failed', time(s.failedAt)]);
  if (s.reason !== undefined)
    rows.push([s.status === 'failed' ? 'Reason' : 'Last error', s.reason]);
  const items = rows.map(([term, value]) => markup`<dt>${term}</dt><dd>${value}</dd>`);
  return markup`<dl>${items}</dl>`;
}

/**
 * A table that never widens the page (WCAG 2.2 SC 1.4.10 Reflow): on a narrow screen each row is
 * a block of "label value" lines (`table.stack`, labels from `data-label`), and whatever is still
 * too wide scrolls inside its own container, which the keyboard can reach and scroll (a focusable
 * region named by the section's heading `labelId`).
 */
const scrollable = (labelId: string, table: Html): Html =>
  markup`<div class="table-scroll" role="region" aria-labelledby="${labelId}" tabindex="0">${table}</div>`;

/** The attempts, oldest first, and the one a worker is on while the email is `sending`. */
function attemptsTable(s: EmailStatus): Html {
  const inFlight =
    s.status === 'sending'
      ? markup`<p class="in-flight">Sending now (attempt ${attemptInFlight(s)})…</p>`
      : markup``;
  if (s.attempts.length === 0) {
    return s.status === 'sending' ? inFlight : markup`<p>No attempt yet.</p>`;
  }
  const rows = s.attempts.map(
    (a) =>
      markup`<tr><td data-label="Attempt">${a.attempt}</td><td data-label="At">${time(a.at)}</td><td data-label="Outcome">${outcomeOf(a, s)}</td><td data-label="Took">${a.durationMs !== undefined ? seconds(a.durationMs) : ''}</td><td data-label="Detail" class="long">${a.detail}</td></tr>`,
  );
  return markup`${scrollable(
    'attempts-title',
    markup`<table class="stack">
<thead><tr><th scope="col">Attempt</th><th scope="col">At</th><th scope="col">Outcome</th><th scope="col">Took</th><th scope="col">Detail</th></tr></thead>
<tbody>${rows}</tbody>
</table>`,
  )}
${inFlight}`;
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
 * An endpoint's URL as an email's readers may see it: without its query, which often carries a
 * token (`?key=…`). Whoever reads emails (the `read` scope) need not be who manages endpoints
 * (`admin`), which `GET /webhooks` shows whole.
 */
export function shownUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}${parsed.search === '' ? '' : '?…'}`;
  } catch {
    return url;
  }
}

/**
 * The email's webhook deliveries as JSON (`GET /emails/{id}`, field `webhooks`): each with its
 * endpoint's URL, the change's type, its state and every attempt (status code or error, time,
 * duration in ms).
 */
export const webhooksJson = (deliveries: readonly WebhookDelivery[]): readonly WebhookJson[] =>
  deliveries.map((d) => ({
    id: d.id,
    url: shownUrl(d.url),
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
    return markup`<tr><td data-label="Event"><code>${d.type}</code></td><td data-label="Endpoint" class="url long">${shownUrl(d.url)}</td><td data-label="State">${DELIVERY_STATES[d.state]}</td><td data-label="Attempts">${attempts.length > 0 ? markup`<ol class="webhook-attempts">${attempts}</ol>` : 'not tried yet'}${next}</td></tr>`;
  });
  return markup`<h2 id="webhooks-title">Webhooks</h2>
${scrollable(
  'webhooks-title',
  markup`<table class="webhooks stack">
<thead><tr><th scope="col">Event</th><th scope="col">Endpoint</th><th scope="col">State</th><th scope="col">Attempts</th></tr></thead>
<tbody>${rows}</tbody>
</table>`,
)}`;
}

/** A one-time notice at the top of the email's page. */
export type StatusNotice = 'already-sent';

const NOTICES: Readonly<Record<StatusNotice, string>> = {
  'already-sent':
    'This form had been sent already, so nothing was sent again: this is the email it sent.',
};

/** What else the email's page may show. */
export interface StatusPageOptions {
  /** Shown once above the status (the form was sent twice: see form-routes.ts). */
  readonly notice?: StatusNotice;
}

/**
 * The email's page; `account` adds "Signed in as …" and the sign-out button, `webhooks` the
 * email's webhook deliveries (undefined: they could not be read).
 *
 * Complete without JavaScript (a refresh every few seconds stands in for the live updates); with
 * it, /static/status.js follows the event stream, swaps in the `#email-status` section and the
 * title, and says what changed in `#status-announcer`, a polite live region of its own: the
 * swapped section is not one, since a region replaced whole is not reliably announced. A lost
 * connection shows in `#connection`, polite too.
 */
export function statusPage(
  s: EmailStatus,
  account?: Account,
  webhooks: readonly WebhookDelivery[] | undefined = [],
  options: StatusPageOptions = {},
  sections: EmailPageSections = {},
): string {
  const final = !watchedLive(s.status);
  const live = final
    ? markup``
    : markup`<p class="hint">This page updates by itself while the email is on its way.</p>`;
  const notice =
    options.notice !== undefined ? markup`<p class="notice">${NOTICES[options.notice]}</p>` : '';
  const regions = final
    ? ''
    : markup`<p id="connection" class="connection" role="status"></p>
<p id="status-announcer" class="visually-hidden" role="status"></p>`;
  const body = markup`<main${final ? '' : markup` data-events="/emails/${s.id}/events"`}>
<h1>Email status</h1>
${notice}
${regions}
<section id="email-status" data-version="${statusVersion(s)}" data-status="${s.status}">
<p class="status status-${s.status}">${headline(s)}</p>
${details(s)}
${sections.message}
<h2 id="attempts-title">Attempts</h2>
${attemptsTable(s)}
${failoversList(s.failovers)}
${historyList(s.history)}
${sections.actions}
${webhooksTable(webhooks)}
${live}
</section>
<p><a href="/">Send another email</a></p>
</main>
${final ? '' : markup`<script src="/static/status.js" defer></script>`}`;
  // A failed email stays live for a replay or a resend, which may never come: no endless
  // refresh without JavaScript for it.
  const head =
    final || s.status === 'failed'
      ? undefined
      : markup`<noscript><meta http-equiv="refresh" content="5"></noscript>`;
  return layout({
    title: `Email ${s.status}`,
    body,
    section: 'emails',
    ...(head ? { head } : {}),
    ...(account ? { account } : {}),
  });
}

/**
 * Whether an email's page follows its changes live: until its status is final, and also while it
 * is `failed`, which an operator can still replay from the dead letters (the page then turns
 * `sent` by itself, where the operator is looking).
 */
export const watchedLive = (status: StatusName): boolean =>
  !isFinalStatus(status) || status === 'failed';

/** The statuses after which nothing more happens by itself: the live script stops there. */
const FINAL_STATUSES = STATUS_NAMES.filter((s) => !watchedLive(s));

/**
 * Served as a file so the CSP can forbid inline script. EventSource reconnects by itself after
 * the server ends the stream, so the script closes it on a final status. While the connection is
 * lost it says so in `#connection` ("Lost connection to the server; retrying…") and keeps
 * trying: the browser retries a dropped stream by itself, and one it gave up on (an error
 * answer) is opened again, waiting twice as long each time up to 30 s; the notice clears when
 * the stream is back, and the status it sends first brings the page up to date.
 */
export const STATUS_SCRIPT = `'use strict';
(() => {
  const main = document.querySelector('main[data-events]');
  if (!main || !('EventSource' in window)) return;
  const FINAL = ${JSON.stringify(FINAL_STATUSES)};
  const LOST = 'Lost connection to the server; retrying\u2026';
  const say = (id, text) => {
    const region = document.getElementById(id);
    if (region && region.textContent !== text) region.textContent = text;
  };
  const versionOf = (s) => s.status + ':' + s.attempts.length + ':' + s.events.length;
  let finished = false;
  let waitMs = 1000;
  let queue = Promise.resolve();
  const refresh = async () => {
    const response = await fetch(location.pathname, { headers: { Accept: 'text/html' } });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), 'text/html');
    const fresh = page.getElementById('email-status');
    const here = document.getElementById('email-status');
    if (!fresh || !here) return;
    const before = here.dataset.status;
    here.replaceWith(fresh);
    if (page.title) document.title = page.title;
    if (fresh.dataset.status && fresh.dataset.status !== before) {
      say('status-announcer', 'Status: ' + fresh.dataset.status);
    }
  };
  const connected = () => {
    waitMs = 1000;
    say('connection', '');
  };
  const connect = () => {
    const source = new EventSource(main.dataset.events);
    source.addEventListener('open', connected);
    source.addEventListener('status', (event) => {
      connected();
      const status = JSON.parse(event.data);
      if (FINAL.includes(status.status)) {
        finished = true;
        source.close();
      }
      const here = document.getElementById('email-status');
      if (here && here.dataset.version === versionOf(status)) return;
      // The server renders the page; fetching its section again keeps one rendering for both paths.
      queue = queue.then(refresh).catch(() => {});
    });
    source.addEventListener('error', () => {
      if (finished) return;
      say('connection', LOST);
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, waitMs);
        waitMs = Math.min(waitMs * 2, 30000);
      }
    });
  };
  connect();
})();
`;
