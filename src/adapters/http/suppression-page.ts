/**
 * The suppression list as a page (`GET /suppressions` for a browser): the entries newest first,
 * a page at a time, a form to add an address, and a remove button per entry (through a
 * confirmation page). The routes are in suppression-routes.ts.
 */
import type { Suppression, SuppressionReason } from '../../application/ports/suppression-list.js';
import { SUPPRESSION_REASONS } from '../../application/ports/suppression-list.js';
import type { Confirmation } from './admin-pages.js';
import { noticeBlock, scrollingTable, timeOf } from './admin-pages.js';
import type { Account, Html } from './html.js';
import { layout, markup } from './html.js';

/** The form's fields, by the API's names (so that its messages fit them). */
export type SuppressionField = 'address' | 'reason' | 'detail';

export const SUPPRESSION_LABELS: Readonly<Record<SuppressionField, string>> = {
  address: 'Address',
  reason: 'Reason',
  detail: 'Note',
};

/** Why an address is listed, in a person's words. */
export const REASON_WORDS: Readonly<Record<SuppressionReason, string>> = {
  bounce: 'bounced',
  complaint: 'complaint',
  unsubscribe: 'unsubscribed',
  manual: 'added by hand',
};

/** What the add form holds after a refusal: what was typed, and a sentence per problem. */
export interface SuppressionForm {
  readonly values: {
    readonly address?: string;
    readonly reason?: string;
    readonly detail?: string;
  };
  /** By field; a problem of no field of the form (a field a browser never sends) under `form`. */
  readonly errors: Readonly<Partial<Record<SuppressionField | 'form', string>>>;
}

export interface SuppressionsView {
  readonly entries: readonly Suppression[];
  /** The page shown is not the first: a link back to the newest entries. */
  readonly paged: boolean;
  readonly nextCursor?: string;
  readonly notice?: string;
  /** The add form after a refusal; absent: empty. */
  readonly form?: SuppressionForm;
  readonly csrfToken: string;
  readonly account?: Account;
}

const errorId = (name: SuppressionField): string => `suppression-${name}-error`;

function fieldError(form: SuppressionForm | undefined, name: SuppressionField): Html {
  const message = form?.errors[name];
  return message === undefined
    ? markup``
    : markup`<p class="error" id="${errorId(name)}">${message}</p>`;
}

const invalidAttributes = (form: SuppressionForm | undefined, name: SuppressionField): Html =>
  form?.errors[name] === undefined
    ? markup``
    : markup` aria-invalid="true" aria-describedby="${errorId(name)}"`;

function errorSummary(form: SuppressionForm | undefined): Html {
  const entries = Object.entries(form?.errors ?? {}).filter(
    (e): e is [string, string] => typeof e[1] === 'string',
  );
  if (entries.length === 0) return markup``;
  const items = entries.map(([name, message]) =>
    name === 'form'
      ? markup`<li>${message}</li>`
      : markup`<li><a href="#suppression-${name}">${message}</a></li>`,
  );
  return markup`<div class="banner" role="alert">
<p>The address was not added:</p>
<ul>${items}</ul>
</div>`;
}

function addForm(view: SuppressionsView): Html {
  const { form, csrfToken } = view;
  const values = form?.values ?? {};
  const chosen = values.reason ?? 'manual';
  const options = SUPPRESSION_REASONS.map(
    (r) =>
      markup`<option value="${r}"${r === chosen ? markup` selected` : ''}>${r} (${REASON_WORDS[r]})</option>`,
  );
  return markup`<section aria-labelledby="add-heading">
<h2 id="add-heading">Add an address</h2>
${errorSummary(form)}
<form method="post" action="/suppressions/add" class="admin-form">
<input type="hidden" name="_csrf" value="${csrfToken}">
<div class="field">
<label for="suppression-address">${SUPPRESSION_LABELS.address}</label>
${fieldError(form, 'address')}
<input id="suppression-address" name="address" type="text" inputmode="email" autocomplete="off" spellcheck="false" required value="${values.address ?? ''}"${invalidAttributes(form, 'address')}>
</div>
<div class="field">
<label for="suppression-reason">${SUPPRESSION_LABELS.reason}</label>
${fieldError(form, 'reason')}
<select id="suppression-reason" name="reason"${invalidAttributes(form, 'reason')}>${options}</select>
</div>
<div class="field">
<label for="suppression-detail">${SUPPRESSION_LABELS.detail} <span class="optional">(optional)</span></label>
${fieldError(form, 'detail')}
<input id="suppression-detail" name="detail" type="text" autocomplete="off" value="${values.detail ?? ''}"${invalidAttributes(form, 'detail')}>
</div>
<button type="submit">Add to the list</button>
</form>
</section>`;
}

function entriesTable(entries: readonly Suppression[]): Html {
  const rows = entries.map(
    (s) => markup`<tr>
<td data-label="Address" class="wrap"><code>${s.address}</code></td>
<td data-label="Reason">${REASON_WORDS[s.reason]}</td>
<td data-label="Note" class="wrap">${s.detail ?? ''}</td>
<td data-label="Added">${timeOf(s.createdAt)}</td>
<td class="action"><form method="get" action="/suppressions/remove"><input type="hidden" name="address" value="${s.address}"><button type="submit" class="small danger">Remove<span class="visually-hidden"> ${s.address}</span></button></form></td>
</tr>`,
  );
  return scrollingTable(
    'entries-heading',
    markup`<table class="admin-table stack">
<thead><tr><th scope="col">Address</th><th scope="col">Reason</th><th scope="col">Note</th><th scope="col">Added</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
<tbody>${rows}</tbody>
</table>`,
  );
}

function pager(view: SuppressionsView): Html {
  const links: Html[] = [];
  if (view.paged) links.push(markup`<a href="/suppressions">Newest entries</a>`);
  if (view.nextCursor !== undefined) {
    links.push(
      markup`<a href="/suppressions?cursor=${encodeURIComponent(view.nextCursor)}" rel="next">Older entries</a>`,
    );
  }
  return links.length === 0
    ? markup``
    : markup`<nav class="pager" aria-label="Pages of the list">${links}</nav>`;
}

/** `GET /suppressions` for a browser (and the add form's answer when it was refused). */
export function suppressionsPage(view: SuppressionsView): string {
  const list =
    view.entries.length === 0
      ? markup`<p>${view.paged ? 'No older entries.' : 'No address is on the list.'}</p>`
      : entriesTable(view.entries);
  const body = markup`<main class="admin">
<h1>Suppression list</h1>
<p>No email is sent to these addresses: they are dropped from an email when it is accepted, and again just before it is sent. Provider reports add bounces, complaints and unsubscribes by themselves.</p>
${noticeBlock(view.notice)}
${addForm(view)}
<section aria-labelledby="entries-heading">
<h2 id="entries-heading">Listed addresses, newest first</h2>
${list}
${pager(view)}
</section>
</main>`;
  return layout({
    title: view.form !== undefined ? 'Suppression list: not added' : 'Suppression list',
    body,
    section: 'suppressions',
    ...(view.account ? { account: view.account } : {}),
  });
}

/** The confirmation of taking `address` (a mailbox key) off the list. */
export function removeConfirmation(address: string): Confirmation {
  return {
    title: 'Remove an address from the suppression list',
    question: markup`Take <code>${address}</code> off the suppression list? Email may be sent to it again.`,
    action: '/suppressions/remove',
    hidden: { address },
    button: 'Remove from the list',
    destructive: true,
    cancel: { href: '/suppressions', label: 'Cancel: keep it on the list' },
  };
}
