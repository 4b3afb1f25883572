import type {
  EmailStatus,
  StatusAttempt,
  StatusFailover,
  StatusName,
} from '../../domain/email-status.js';
import { isFinalStatus } from '../../domain/email-status.js';
import type { Html } from './html.js';
import { layout, markup } from './html.js';

/** The public JSON shape of a status: built field by field so nothing internal leaks into it. */
export interface StatusJson {
  readonly id: string;
  readonly status: StatusName;
  readonly to: readonly string[];
  readonly subject: string;
  readonly requestedAt?: string;
  readonly attempts: readonly StatusAttempt[];
  readonly failovers?: readonly StatusFailover[];
  readonly providerId?: string;
  readonly deliveredAt?: string;
  readonly durationMs?: number;
  readonly nextAttemptAt?: string;
  readonly failedAt?: string;
  readonly reason?: string;
}

export function statusJson(s: EmailStatus): StatusJson {
  return {
    id: s.id,
    status: s.status,
    to: [...s.to],
    subject: s.subject,
    ...(s.requestedAt !== undefined ? { requestedAt: s.requestedAt } : {}),
    attempts: s.attempts.map(({ attempt, at, outcome, detail }) => ({
      attempt,
      at,
      outcome,
      detail,
    })),
    ...(s.failovers !== undefined
      ? { failovers: s.failovers.map(({ at, from, to, reason }) => ({ at, from, to, reason })) }
      : {}),
    ...(s.providerId !== undefined ? { providerId: s.providerId } : {}),
    ...(s.deliveredAt !== undefined ? { deliveredAt: s.deliveredAt } : {}),
    ...(s.durationMs !== undefined ? { durationMs: s.durationMs } : {}),
    ...(s.nextAttemptAt !== undefined ? { nextAttemptAt: s.nextAttemptAt } : {}),
    ...(s.failedAt !== undefined ? { failedAt: s.failedAt } : {}),
    ...(s.reason !== undefined ? { reason: s.reason } : {}),
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
    case 'queued':
      return markup`Queued: waiting for a worker to send it.`;
    case 'retrying': {
      const next =
        s.nextAttemptAt !== undefined ? markup` Next try at ${time(s.nextAttemptAt)}.` : '';
      const last = s.attempts.at(-1);
      const which = last !== undefined ? `attempt ${last.attempt}` : 'the last attempt';
      return markup`Retrying: ${which} failed for now.${next}`;
    }
    case 'delivered':
      return markup`Delivered.`;
    case 'failed':
      return markup`Failed: it will not be sent.`;
  }
}

function details(s: EmailStatus): Html {
  const rows: Array<[string, Html | string]> = [
    ['Id', markup`<code>${s.id}</code>`],
    ['To', s.to.join(', ')],
    ['Subject', s.subject],
  ];
  if (s.requestedAt !== undefined) rows.push(['Requested', time(s.requestedAt)]);
  if (s.nextAttemptAt !== undefined) rows.push(['Next try', time(s.nextAttemptAt)]);
  if (s.providerId !== undefined) rows.push(['Provider id', markup`<code>${s.providerId}</code>`]);
  if (s.deliveredAt !== undefined) rows.push(['Delivered', time(s.deliveredAt)]);
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
      markup`<tr><td>${a.attempt}</td><td>${time(a.at)}</td><td>${OUTCOMES[a.outcome]}</td><td>${a.detail}</td></tr>`,
  );
  return markup`<table>
<thead><tr><th scope="col">Attempt</th><th scope="col">At</th><th scope="col">Outcome</th><th scope="col">Detail</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
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
export function statusPage(s: EmailStatus): string {
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
${live}
</section>
<p><a href="/">Send another email</a></p>
</main>
${final ? '' : markup`<script src="/static/status.js" defer></script>`}`;
  const head = final
    ? undefined
    : markup`<noscript><meta http-equiv="refresh" content="5"></noscript>`;
  return layout({ title: `Email ${s.status}`, body, ...(head ? { head } : {}) });
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
    if (status.status === 'delivered' || status.status === 'failed') source.close();
    const here = document.getElementById('email-status');
    if (here && here.dataset.version === status.status + ':' + status.attempts.length) return;
    // The server renders the page; fetching its section again keeps one rendering for both paths.
    queue = queue.then(refresh).catch(() => {});
  });
})();
`;
