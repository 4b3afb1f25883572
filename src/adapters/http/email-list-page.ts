import type { StatusCounts } from '../../application/ports/email-log.js';
import type { EmailStatus, StatusName } from '../../domain/email-status.js';
import { STATUS_NAMES } from '../../domain/email-status.js';
import type { Account, Html } from './html.js';
import { layout, markup } from './html.js';
import { statusVersion } from './status-page.js';

/** The filters the page's form sets, each a parameter of `GET /emails` under the same name. */
export type ListField = 'status' | 'to' | 'tag' | 'since' | 'until';

/** The fields in the form's order. */
export const LIST_FIELDS: readonly ListField[] = ['status', 'to', 'tag', 'since', 'until'];

/** A value per filter, as text; absent or empty: not filtered. */
export type ListFilters = Readonly<Partial<Record<ListField, string>>>;

/** What the form calls each filter, the start of each of its error messages. */
export const LIST_LABELS: Readonly<Record<ListField, string>> = {
  status: 'Status',
  to: 'Recipient',
  tag: 'Tag',
  since: 'Since',
  until: 'Until',
};

/** The path of the live script, served by the list's routes. */
export const LIST_SCRIPT_PATH = '/static/email-list.js';

/** What the log answered for the filters: one page of emails and the counts above it. */
export interface ListResult {
  /** Newest first, at most a page. */
  readonly emails: readonly EmailStatus[];
  /** Per status, for the other filters (the status filter aside). */
  readonly counts: StatusCounts;
  /** The cursor of this page (absent: the newest emails). */
  readonly cursor?: string;
  /** The cursor of the next (older) page; absent on the last page. */
  readonly nextCursor?: string;
}

/**
 * Everything the page shows. `filters` are the ones in force, written as the URL carries them,
 * for the links (counts, "Older", "Refresh"); `values` are what the form's controls show (times
 * as `datetime-local` values, in UTC). With `errors` or a `banner` and no `result`, the page is
 * the form with what to correct.
 */
export interface EmailListView {
  readonly filters: ListFilters;
  readonly values: ListFilters;
  /** One message per field, shown next to it and in the summary at the top. */
  readonly errors?: Readonly<Partial<Record<ListField, string>>>;
  /** Problems with no field of the form (an unknown parameter, a stale cursor, a store down). */
  readonly banner?: readonly string[];
  readonly result?: ListResult;
  /** The event stream the live script follows; absent: no live updates (an older page). */
  readonly events?: string;
  readonly account?: Account;
  /** The page's title when it is not the list (default: "Emails", or one about the filters). */
  readonly title?: string;
}

/**
 * `/emails` with `filters` (and `extra`, such as a cursor) as its query, in the form's order:
 * one URL per list, so that a link and the form agree on it.
 */
export function listHref(
  filters: ListFilters,
  extra: Readonly<Record<string, string>> = {},
): string {
  const params = new URLSearchParams();
  for (const field of LIST_FIELDS) {
    const value = filters[field];
    if (value !== undefined && value !== '') params.set(field, value);
  }
  for (const [name, value] of Object.entries(extra)) params.set(name, value);
  const query = params.toString();
  return query === '' ? '/emails' : `/emails?${query}`;
}

/**
 * A time as a `datetime-local` control shows it, in UTC (the page says so): minutes, seconds
 * when there are any, milliseconds when there are any. The control cannot show an offset, and a
 * date alone is not a value it takes.
 */
export function utcInputValue(date: Date): string {
  const iso = date.toISOString();
  if (iso.endsWith(':00.000Z')) return iso.slice(0, 16);
  if (iso.endsWith('.000Z')) return iso.slice(0, 19);
  return iso.slice(0, 23);
}

/**
 * Colours group the statuses (on the way, done, went wrong, not sent), but every badge says its
 * status in words: colour is never the only carrier of the meaning (WCAG 1.4.1).
 */
const TONES: Readonly<Record<StatusName, 'wait' | 'ok' | 'bad' | 'off'>> = {
  scheduled: 'wait',
  queued: 'wait',
  sending: 'wait',
  retrying: 'wait',
  sent: 'ok',
  delivered: 'ok',
  failed: 'bad',
  bounced: 'bad',
  complained: 'bad',
  cancelled: 'off',
  suppressed: 'off',
};

const badge = (status: StatusName): Html =>
  markup`<span class="badge badge-${TONES[status]}">${status}</span>`;

/** "—" for a reader that sees it, "unknown" for one that hears it. */
const unknown = markup`<span aria-hidden="true">—</span><span class="visually-hidden">unknown</span>`;

/** Times in UTC text; the dashboard's script shows them in the reader's own zone. */
const time = (iso: string | undefined): Html => {
  if (iso === undefined) return unknown;
  const shown = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(iso)
    ? `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`
    : iso;
  return markup`<time datetime="${iso}">${shown}</time>`;
};

/** Recipients shown in a row before "and N more": a row stays a few lines high. */
const SHOWN_RECIPIENTS = 3;

function recipients(s: EmailStatus): string {
  const all = s.to.length > 0 ? s.to : s.recipients.map((r) => r.address);
  const shown = all.slice(0, SHOWN_RECIPIENTS);
  const more = Math.max(s.recipients.length, all.length) - shown.length;
  return more > 0 ? `${shown.join(', ')} and ${more} more` : shown.join(', ');
}

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

/**
 * A row per email; on a narrow screen each row becomes a block of labelled lines (styles/list.ts),
 * which `data-label` names. `data-id` and `data-version` let the live script tell what changed.
 */
function row(s: EmailStatus): Html {
  const cell = (label: string, content: Html | string | number, extra = ''): Html =>
    markup`<td data-label="${label}"${extra === '' ? '' : markup` class="${extra}"`}>${content}</td>`;
  return markup`<tr data-id="${s.id}" data-version="${statusVersion(s)}">
${cell('Time', time(s.requestedAt ?? s.history[0]?.at))}
${cell('Recipients', recipients(s), 'wrap')}
${cell('Subject', markup`<a href="/emails/${s.id}">${s.subject === '' ? '(no subject)' : s.subject}</a>`, 'wrap')}
${cell('Status', badge(s.status))}
${cell('Attempts', s.attempts.length, 'number')}
${cell('Transport', s.sentBy ?? unknown)}
</tr>`;
}

function table(emails: readonly EmailStatus[]): Html {
  return markup`<table class="email-table">
<caption class="visually-hidden">Emails, newest first</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Recipients</th><th scope="col">Subject</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Transport</th></tr></thead>
<tbody>
${emails.map(row)}
</tbody>
</table>`;
}

/**
 * The counts per status, each a link to that status's list with the other filters kept; "All"
 * drops the status filter. The list in view is marked `aria-current`, and bold, not by colour.
 */
function countsNav(filters: ListFilters, counts: StatusCounts): Html {
  const total = STATUS_NAMES.reduce((sum, name) => sum + counts[name], 0);
  const current = (on: boolean): Html | string => (on ? markup` aria-current="true"` : '');
  const { status, ...others } = filters;
  const chosen = status === undefined || status === '' ? undefined : status;
  const items = STATUS_NAMES.map(
    (name) =>
      markup`<li><a href="${listHref({ ...others, status: name })}"${current(chosen === name)}>${badge(name)} <span class="count">${counts[name]}</span></a></li>`,
  );
  return markup`<nav id="email-counts" class="status-counts" aria-label="Emails by status">
<ul>
<li><a href="${listHref(others)}"${current(chosen === undefined)}>All <span class="count">${total}</span></a></li>
${items}
</ul>
</nav>`;
}

function results(view: EmailListView, result: ListResult): Html {
  const { filters } = view;
  const filtered = LIST_FIELDS.some((f) => (filters[f] ?? '') !== '');
  const summary =
    result.emails.length === 0
      ? markup`<p>${
          result.cursor !== undefined
            ? 'No older emails.'
            : filtered
              ? 'No email matches these filters.'
              : 'No emails yet.'
        }</p>`
      : markup`<p>${plural(result.emails.length, 'email', 'emails')} ${result.cursor !== undefined ? 'on this older page' : 'on the newest page'}, newest first.</p>`;
  const pages = [
    result.cursor !== undefined ? markup`<a href="${listHref(filters)}">Newest</a>` : '',
    result.nextCursor !== undefined
      ? markup`<a rel="next" href="${listHref(filters, { cursor: result.nextCursor })}">Older</a>`
      : '',
  ];
  const pager =
    result.cursor !== undefined || result.nextCursor !== undefined
      ? markup`<nav class="pager" aria-label="Pages">${pages}</nav>`
      : '';
  return markup`<div id="email-results">
${summary}
${result.emails.length > 0 ? table(result.emails) : ''}
${pager}
</div>`;
}

function field(
  name: ListField,
  view: EmailListView,
  control: (attributes: Html) => Html,
  hint?: string,
): Html {
  const error = view.errors?.[name];
  const ids = [
    ...(error !== undefined ? [`${name}-error`] : []),
    ...(hint !== undefined ? [`${name}-hint`] : []),
  ];
  const attributes = markup`${error !== undefined ? markup` aria-invalid="true"` : ''}${
    ids.length > 0 ? markup` aria-describedby="${ids.join(' ')}"` : ''
  }`;
  return markup`<div class="filter">
<label for="${name}">${LIST_LABELS[name]}${name === 'since' || name === 'until' ? ' (UTC)' : ''}</label>
${error !== undefined ? markup`<p class="error" id="${name}-error">${error}</p>` : ''}
${control(attributes)}
${hint !== undefined ? markup`<p class="filter-hint" id="${name}-hint">${hint}</p>` : ''}
</div>`;
}

function filterForm(view: EmailListView): Html {
  const { values } = view;
  const chosen = values.status ?? '';
  const options = STATUS_NAMES.map(
    (name) =>
      markup`<option value="${name}"${chosen === name ? markup` selected` : ''}>${name}</option>`,
  );
  // A value with milliseconds needs a step of 1 ms, or the browser refuses to send the form.
  const step = (value: string | undefined): string =>
    value !== undefined && value.length > 19 ? '0.001' : '1';
  const timeInput = (name: 'since' | 'until') => (attributes: Html) =>
    markup`<input id="${name}" name="${name}" type="datetime-local" step="${step(values[name])}" value="${values[name] ?? ''}"${attributes}>`;
  return markup`<form class="email-filters" method="get" action="/emails" role="search" aria-label="Filter emails">
<div class="filter-fields">
${field(
  'status',
  view,
  (attributes) =>
    markup`<select id="status" name="status"${attributes}><option value="">Any status</option>${options}</select>`,
)}
${field(
  'to',
  view,
  (attributes) =>
    markup`<input id="to" name="to" type="text" autocomplete="off" value="${values.to ?? ''}"${attributes}>`,
  'Any part of an address, such as @example.com',
)}
${field(
  'tag',
  view,
  (attributes) =>
    markup`<input id="tag" name="tag" type="text" autocomplete="off" value="${values.tag ?? ''}"${attributes}>`,
)}
${field('since', view, timeInput('since'), 'At or after this time')}
${field('until', view, timeInput('until'), 'Before this time')}
</div>
<div class="filter-actions">
<button type="submit">Show emails</button>
<a href="/emails">Clear filters</a>
</div>
</form>`;
}

function problems(view: EmailListView): Html | string {
  const errors = LIST_FIELDS.flatMap((name) => {
    const message = view.errors?.[name];
    return message === undefined ? [] : [markup`<li><a href="#${name}">${message}</a></li>`];
  });
  const banner = (view.banner ?? []).map((message) => markup`<li>${message}</li>`);
  if (errors.length === 0 && banner.length === 0) return '';
  return markup`<div class="banner" role="alert" id="problems">
<p>${errors.length > 0 ? 'Please correct the filters:' : 'The emails could not be shown:'}</p>
<ul>${banner}${errors}</ul>
</div>`;
}

/**
 * The list of emails (`GET /emails` for a browser): the filters as a GET form, the counts per
 * status, and a page of emails newest first with links to older pages. Complete without
 * JavaScript ("Refresh" reloads it); with it, /static/email-list.js follows `events` and swaps in
 * the counts and the table when emails change.
 */
export function emailListPage(view: EmailListView): string {
  const { result, events } = view;
  const refresh = result
    ? markup`<p class="list-tools"><a href="${listHref(view.filters, result.cursor !== undefined ? { cursor: result.cursor } : {})}">Refresh</a>${
        events !== undefined
          ? markup` <span class="list-live-note" hidden>New emails and changes also show here by themselves.</span>`
          : ''
      }</p>`
    : '';
  const body = markup`<main class="email-list"${events !== undefined ? markup` data-list-events="${events}"` : ''}>
<h1>Emails</h1>
<p id="email-list-announce" class="visually-hidden" aria-live="polite" aria-atomic="true"></p>
${problems(view)}
${filterForm(view)}
${result ? countsNav(view.filters, result.counts) : ''}
${refresh}
${result ? results(view, result) : ''}
</main>
${events !== undefined ? markup`<script src="${LIST_SCRIPT_PATH}" defer></script>` : ''}`;
  const title =
    view.title ??
    (view.errors !== undefined || view.banner !== undefined
      ? 'Emails: check the filters'
      : 'Emails');
  return layout({
    title,
    body,
    section: 'emails',
    ...(view.account ? { account: view.account } : {}),
  });
}

/**
 * The live updates, served as a file so that the CSP can forbid inline script. On each `change`
 * event it fetches the page's own URL again and swaps in the counts and the results; bursts are
 * coalesced to at most one fetch a second, and a short polite announcement says how many rows
 * changed (WCAG 4.1.3). Focus on a link that is swapped out moves to the same link in the new
 * rendering. Only the newest page (no cursor) carries the stream, so an older page never shifts
 * under its reader.
 */
export const LIST_SCRIPT = `'use strict';
(() => {
  const main = document.querySelector('main[data-list-events]');
  if (!main || !('EventSource' in window) || !('DOMParser' in window)) return;
  const REGIONS = ['email-counts', 'email-results'];
  const announcer = document.getElementById('email-list-announce');
  const versions = (root) => {
    const seen = new Map();
    for (const row of root.querySelectorAll('#email-results tr[data-id]')) {
      seen.set(row.dataset.id, row.dataset.version);
    }
    return seen;
  };
  const refresh = async () => {
    const response = await fetch(location.href, {
      headers: { Accept: 'text/html' },
      credentials: 'same-origin',
      cache: 'no-store',
    });
    // Signed out meanwhile (a redirect to sign in), or an error page: keep what is shown.
    if (!response.ok || response.redirected) return;
    const page = new DOMParser().parseFromString(await response.text(), 'text/html');
    const before = versions(document);
    let changed = 0;
    for (const [id, version] of versions(page)) if (before.get(id) !== version) changed += 1;
    const active = document.activeElement;
    const focused =
      active && active.closest && active.closest('#email-counts, #email-results')
        ? active.getAttribute('href')
        : null;
    for (const id of REGIONS) {
      const fresh = page.getElementById(id);
      const here = document.getElementById(id);
      if (fresh && here) here.replaceWith(document.adoptNode(fresh));
    }
    if (focused !== null) {
      const again = [...document.querySelectorAll('#email-counts a, #email-results a')].find(
        (a) => a.getAttribute('href') === focused,
      );
      if (again) again.focus();
    }
    if (changed > 0 && announcer) {
      // Emptied first, so that the same words twice in a row are still a change to announce.
      announcer.textContent = '';
      const words = changed === 1 ? '1 email changed' : changed + ' emails changed';
      setTimeout(() => (announcer.textContent = words), 100);
    }
  };
  // At most one fetch a second, and never two at once: a burst of changes costs one or two.
  let timer = 0;
  let running = false;
  let pending = false;
  let last = 0;
  const run = async () => {
    timer = 0;
    pending = false;
    running = true;
    last = Date.now();
    try {
      await refresh();
    } catch (error) {
      // A failed fetch is retried by the next change, or by the reader's "Refresh".
    } finally {
      running = false;
      if (pending) schedule();
    }
  };
  const schedule = () => {
    pending = true;
    if (timer !== 0 || running) return;
    timer = setTimeout(run, Math.max(0, last + 1000 - Date.now()));
  };
  const source = new EventSource(main.dataset.listEvents);
  // Said only where it is true: without this script the page stays as it was loaded.
  const note = document.querySelector('.list-live-note');
  if (note) note.hidden = false;
  source.addEventListener('change', schedule);
  // Whatever changed between the rendering and the stream's (re)opening would go unseen.
  source.addEventListener('open', schedule);
})();
`;
