/**
 * The dead letters as a page (`GET /dead-letters` for a browser): what could not be delivered,
 * counted by reason, with a replay per letter, a replay of all (or of one reason), and a purge,
 * each through a confirmation page. The routes are in dead-letter-routes.ts.
 */
import type { DeadLetter } from '../../application/ports/dead-letter-box.js';
import type { Confirmation } from './admin-pages.js';
import { counted, noticeBlock, scrollingTable, timeOf } from './admin-pages.js';
import type { Account, Html } from './html.js';
import { layout, markup } from './html.js';

/**
 * Why a letter is dead, by the first words of its reason as the worker writes them
 * (domain/delivery.ts `decide`, task-message.ts `malformed`, RabbitMQ's own `x-death`):
 * `permanent` (the provider refused), `out_of_attempts` (MAX_ATTEMPTS transient failures),
 * `malformed` (a task that does not decode), `broker` (RabbitMQ dead-lettered it itself), or
 * `other`.
 */
export const REASON_KINDS = [
  'permanent',
  'out_of_attempts',
  'malformed',
  'broker',
  'other',
] as const;
export type ReasonKind = (typeof REASON_KINDS)[number];

/** Which of `REASON_KINDS` a dead letter's reason is. */
export function reasonKind(reason: string): ReasonKind {
  if (reason.startsWith('permanent:')) return 'permanent';
  if (reason.startsWith('out of attempts')) return 'out_of_attempts';
  if (reason.startsWith('malformed:')) return 'malformed';
  if (reason.startsWith('broker:')) return 'broker';
  return 'other';
}

export const isReasonKind = (value: unknown): value is ReasonKind =>
  REASON_KINDS.some((k) => k === value);

/** The kinds in a person's words, for the counts, the filter and the confirmations. */
export const REASON_LABELS: Readonly<Record<ReasonKind, string>> = {
  permanent: 'refused by the provider',
  out_of_attempts: 'out of attempts',
  malformed: 'not a readable task',
  broker: 'dropped by the broker',
  other: 'other',
};

/** How many letters of each kind there are (every kind, zeros included). */
export function countByReason(letters: readonly DeadLetter[]): Record<ReasonKind, number> {
  const counts = Object.fromEntries(REASON_KINDS.map((k) => [k, 0])) as Record<ReasonKind, number>;
  for (const letter of letters) counts[reasonKind(letter.reason)] += 1;
  return counts;
}

/** Emails followed live on the page after a replay, at most; beyond that, the notice alone. */
export const MAX_FOLLOWED = 10;

export interface DeadLettersView {
  readonly letters: readonly DeadLetter[];
  /** The sentence after a 303 ("Replayed 3 dead letters: …"). */
  readonly notice?: string;
  /** Email ids just replayed, whose status the page follows live (the script of this page). */
  readonly follow?: readonly string[];
  readonly account?: Account;
}

/** The letter's id as a link to its email's page, where its history is. */
const emailLink = (id: string): Html => markup`<a href="/emails/${id}"><code>${id}</code></a>`;

function countsBlock(letters: readonly DeadLetter[]): Html {
  const counts = countByReason(letters);
  const rows = REASON_KINDS.filter((k) => counts[k] > 0).map(
    (k) => markup`<dt>${REASON_LABELS[k]}</dt><dd>${counts[k]}</dd>`,
  );
  return markup`<section aria-labelledby="counts-heading">
<h2 id="counts-heading">Counts</h2>
<dl class="counts"><dt>Total</dt><dd>${letters.length}</dd>${rows}</dl>
</section>`;
}

function actionsBlock(letters: readonly DeadLetter[]): Html {
  const counts = countByReason(letters);
  const options = REASON_KINDS.filter((k) => counts[k] > 0).map(
    (k) => markup`<option value="${k}">${REASON_LABELS[k]} (${counts[k]})</option>`,
  );
  return markup`<section aria-labelledby="actions-heading">
<h2 id="actions-heading">Replay or purge</h2>
<p>A replay puts a letter back on the queue: its email is tried again from a first attempt, with a fresh attempt budget. A purge deletes every letter for good; their emails stay failed.</p>
<div class="actions">
<form method="get" action="/dead-letters/replay" class="inline">
<label for="replay-reason">Replay the letters of</label>
<select id="replay-reason" name="reason">
<option value="">every reason (${letters.length})</option>
${options}
</select>
<button type="submit">Replay…</button>
</form>
<form method="get" action="/dead-letters/purge" class="inline">
<button type="submit" class="danger">Purge all…</button>
</form>
</div>
</section>`;
}

function lettersTable(letters: readonly DeadLetter[]): Html {
  const rows = letters.map(
    (l) => markup`<tr>
<td data-label="Email" class="id">${emailLink(l.id)}</td>
<td data-label="Recipients" class="wrap">${l.to.join(', ')}</td>
<td data-label="Subject" class="wrap">${l.subject}</td>
<td data-label="Reason" class="wrap">${l.reason}</td>
<td data-label="Attempts" class="number">${l.attempts}</td>
<td data-label="Failed at">${l.failedAt === '' ? 'unknown' : timeOf(l.failedAt)}</td>
<td class="action"><form method="get" action="/dead-letters/replay"><input type="hidden" name="id" value="${l.id}"><button type="submit" class="small">Replay<span class="visually-hidden"> ${l.id}</span></button></form></td>
</tr>`,
  );
  return scrollingTable(
    'letters-heading',
    markup`<table class="admin-table stack">
<thead><tr><th scope="col">Email</th><th scope="col">Recipients</th><th scope="col">Subject</th><th scope="col">Reason</th><th scope="col">Attempts</th><th scope="col">Failed at</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
<tbody>${rows}</tbody>
</table>`,
  );
}

function followBlock(follow: readonly string[]): Html {
  if (follow.length === 0) return markup``;
  const items = follow.map(
    (id) =>
      markup`<li>${emailLink(id)}: <span class="follow-status" data-email="${id}">back on the queue</span></li>`,
  );
  return markup`<section aria-labelledby="follow-heading">
<h2 id="follow-heading">Replayed emails</h2>
<ul class="follow" aria-live="polite">${items}</ul>
<p class="note">Their status updates here by itself; each email’s page has its whole history.</p>
</section>`;
}

/** `GET /dead-letters` for a browser. Live only when it follows replayed emails. */
export function deadLettersPage(view: DeadLettersView): string {
  const { letters, notice, follow = [], account } = view;
  const list =
    letters.length === 0
      ? markup`<p>No dead letters: every email that could not be delivered has been replayed or purged, or none failed.</p>`
      : lettersTable(letters);
  const body = markup`<main class="admin">
<h1>Dead letters</h1>
<p>Emails the worker could not deliver: refused by the provider, or out of attempts. They stay here until they are replayed or purged.</p>
${noticeBlock(notice)}
${followBlock(follow)}
${letters.length > 0 ? countsBlock(letters) : ''}
${letters.length > 0 ? actionsBlock(letters) : ''}
<section aria-labelledby="letters-heading">
<h2 id="letters-heading">Letters${letters.length > 0 ? ` (${letters.length})` : ''}</h2>
${list}
</section>
</main>
${follow.length > 0 ? markup`<script src="/static/dead-letters.js" defer></script>` : ''}`;
  return layout({
    title: 'Dead letters',
    body,
    section: 'dead-letters',
    ...(account ? { account } : {}),
  });
}

/** The confirmation of a replay of one letter (its id names every letter of that email). */
export function replayOneConfirmation(letters: readonly DeadLetter[]): Confirmation {
  const [first] = letters;
  const id = first?.id ?? '';
  const details = letters.map(
    (l) => markup`<dl class="letter">
<dt>Email</dt><dd>${emailLink(l.id)}</dd>
<dt>Recipients</dt><dd>${l.to.join(', ')}</dd>
<dt>Subject</dt><dd>${l.subject}</dd>
<dt>Reason</dt><dd>${l.reason}</dd>
<dt>Attempts</dt><dd>${l.attempts}</dd>
<dt>Failed at</dt><dd>${l.failedAt === '' ? 'unknown' : timeOf(l.failedAt)}</dd>
</dl>`,
  );
  return {
    title: 'Replay a dead letter',
    question: markup`Put this email back on the queue? It is tried again from a first attempt, with a fresh attempt budget.`,
    details: markup`${details}`,
    action: '/dead-letters/replay',
    hidden: { id },
    button: 'Replay this email',
    cancel: { href: '/dead-letters', label: 'Cancel: back to the dead letters' },
  };
}

/** The confirmation of a replay of every letter, or of every letter of one kind. */
export function replayAllConfirmation(count: number, reason: ReasonKind | undefined): Confirmation {
  const which =
    reason === undefined
      ? counted(count, 'dead letter')
      : `${counted(count, 'dead letter')} (${REASON_LABELS[reason]})`;
  return {
    title: 'Replay dead letters',
    question: `Put ${which} back on the queue? Each email is tried again from a first attempt, with a fresh attempt budget.`,
    action: '/dead-letters/replay',
    hidden: { all: 'yes', ...(reason !== undefined ? { reason } : {}) },
    button: `Replay ${counted(count, 'dead letter')}`,
    cancel: { href: '/dead-letters', label: 'Cancel: back to the dead letters' },
  };
}

/** The confirmation of a purge, naming how many letters it deletes. */
export function purgeConfirmation(count: number): Confirmation {
  return {
    title: 'Purge the dead letters',
    question: `Delete ${counted(count, 'dead letter')} for good? ${count === 1 ? 'Its email stays failed and is' : 'Their emails stay failed and are'} never tried again; this cannot be undone.`,
    action: '/dead-letters/purge',
    hidden: {},
    button: `Purge ${counted(count, 'dead letter')}`,
    destructive: true,
    cancel: { href: '/dead-letters', label: 'Cancel: keep them' },
  };
}

/**
 * Follows each replayed email's event stream (`/emails/{id}/events`, the status page's) and says
 * where it is. A replayed email is still `failed` until the worker takes it again, and the stream
 * ends on a final status: on `failed` the script looks again a second later, until the email is
 * seen on its way or with more attempts than when it was first seen failed (then a `failed` is a
 * new failure), or two minutes have passed.
 * Served as a file, since the CSP allows no inline script.
 */
export const DEAD_LETTERS_SCRIPT = `'use strict';
(() => {
  if (!('EventSource' in window)) return;
  const WORDS = {
    scheduled: 'scheduled',
    queued: 'queued: waiting for the worker',
    sending: 'sending',
    retrying: 'failed for now; it will be tried again',
    sent: 'sent',
    delivered: 'delivered',
    bounced: 'bounced',
    complained: 'sent; the recipient complained',
    cancelled: 'cancelled',
    suppressed: 'not sent: every recipient is suppressed',
    failed: 'failed again',
  };
  const deadline = Date.now() + 120000;
  const show = (el, words, status) => {
    el.textContent = words;
    el.className = 'follow-status status-' + status;
  };
  // seen: the email's attempts when first seen failed, and whether it was seen on its way since.
  const follow = (el, seen) => {
    const source = new EventSource('/emails/' + encodeURIComponent(el.dataset.email) + '/events');
    source.addEventListener('status', (event) => {
      const status = JSON.parse(event.data);
      const attempts = status.attempts.length;
      if (status.status !== 'failed') {
        seen.moving = true;
        show(el, WORDS[status.status] || status.status, status.status);
        if (['queued', 'scheduled', 'sending', 'retrying'].indexOf(status.status) < 0) source.close();
        return;
      }
      source.close();
      if (seen.moving || (seen.attempts !== undefined && attempts > seen.attempts)) {
        show(el, WORDS.failed, 'failed');
      } else if (Date.now() > deadline) {
        show(el, 'still failed: not taken again yet', 'failed');
      } else {
        if (seen.attempts === undefined) seen.attempts = attempts;
        show(el, 'back on the queue: waiting for the worker', 'queued');
        setTimeout(() => follow(el, seen), 1000);
      }
    });
  };
  for (const el of document.querySelectorAll('[data-email]')) follow(el, { moving: false });
})();
`;
