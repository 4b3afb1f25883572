import type { Account, Html } from './html.js';
import { layout, markup } from './html.js';

export type FormField = 'to' | 'subject' | 'text';

export interface FormValues {
  readonly to?: string;
  readonly subject?: string;
  readonly text?: string;
}

/**
 * One thing to correct, as a whole sentence about the form (the routes word it: the core's
 * messages speak of the API's fields). Without a field it shows only in the summary.
 */
export interface FormError {
  readonly field?: FormField;
  readonly message: string;
}

export interface FormView {
  readonly csrfToken: string;
  /** The one-time key that makes a repeated submit of this rendering harmless. */
  readonly nonce: string;
  readonly values?: FormValues;
  readonly errors?: readonly FormError[];
  /** A problem that belongs to no single field: the queue is down, the form was sent before. */
  readonly banner?: string;
  /**
   * These very values were sent from this browser lately, as email `id` (a Back to the
   * form and Send again, say): the page says so and links to it, and the next Send, carrying
   * `again`, sends them as a new email on purpose.
   */
  readonly sentBefore?: { readonly id: string; readonly again: string };
  readonly account?: Account;
}

export const LABELS: Readonly<Record<FormField, string>> = {
  to: 'To',
  subject: 'Subject',
  text: 'Text',
};

function fieldBlock(
  field: FormField,
  errors: readonly FormError[],
  control: (aria: Html) => Html,
  hint?: string,
): Html {
  const mine = errors.filter((e) => e.field === field);
  const hintId = `${field}-hint`;
  const hintBlock = hint !== undefined ? markup`<p class="hint" id="${hintId}">${hint}</p>` : '';
  if (mine.length === 0) {
    return markup`<div class="field">
<label for="${field}">${LABELS[field]}</label>
${hintBlock}
${control(hint !== undefined ? markup` aria-describedby="${hintId}"` : markup``)}
</div>`;
  }
  const errorId = `${field}-error`;
  const described = hint !== undefined ? `${errorId} ${hintId}` : errorId;
  return markup`<div class="field">
<label for="${field}">${LABELS[field]}</label>
${hintBlock}
<p class="error" id="${errorId}">${mine.map((e) => e.message).join(' ')}</p>
${control(markup` aria-invalid="true" aria-describedby="${described}"`)}
</div>`;
}

/**
 * The summary above the form after a refused submit. It takes the focus when the page loads
 * (`autofocus` on a `tabindex="-1"` block: no script needed), so that a screen reader reads it
 * first and a keyboard user starts from it; each item links to its field (the GOV.UK pattern,
 * WCAG 2.2 SC 3.3.1 Error Identification).
 */
function errorSummary(errors: readonly FormError[], banner: string | undefined): Html | string {
  if (errors.length === 0 && banner === undefined) return '';
  const items = errors.map(
    (e) => markup`<li>${e.field ? markup`<a href="#${e.field}">${e.message}</a>` : e.message}</li>`,
  );
  return markup`<div class="banner" id="problems" tabindex="-1" autofocus>
<h2>The email was not sent</h2>
${banner !== undefined ? markup`<p>${banner}</p>` : ''}
${errors.length > 0 ? markup`<p>Please correct the following:</p><ul>${items}</ul>` : ''}
</div>`;
}

/** Says that these values were sent already, and how to send them again on purpose. */
function sentBeforeSummary(id: string): Html {
  return markup`<div class="banner" id="problems" tabindex="-1" autofocus>
<h2>This email was already sent</h2>
<p>This browser already sent an email with these same recipients, subject and text: <a href="/emails/${id}">see that email and how it went</a>. Nothing was sent this time.</p>
<p>To send it once more, as a second email, press Send.</p>
</div>`;
}

/**
 * The form (`GET /`): To, Subject and Text, each labelled, with its hint and error tied to it by
 * `aria-describedby`; the CSRF token and the one-time nonce as hidden fields; after a refused
 * submit, the summary above it (see `errorSummary`).
 */
export function formPage({
  csrfToken,
  nonce,
  values = {},
  errors = [],
  banner,
  sentBefore,
  account,
}: FormView): string {
  const to = fieldBlock(
    'to',
    errors,
    (aria) =>
      markup`<input id="to" name="to" type="text" inputmode="email" autocomplete="email" required value="${values.to ?? ''}"${aria}>`,
    'One or more addresses, separated by commas: ada@example.com, "Lovelace, Ada" <ada@example.org>',
  );
  // No maxlength: a browser would cut a longer subject without a word; the server refuses it
  // with a message instead, and the person decides what to cut.
  const subject = fieldBlock(
    'subject',
    errors,
    (aria) =>
      markup`<input id="subject" name="subject" type="text" required value="${values.subject ?? ''}"${aria}>`,
  );
  // The parser drops a newline right after <textarea>; the one we add keeps the text's own.
  const text = fieldBlock(
    'text',
    errors,
    (aria) =>
      markup`<textarea id="text" name="text" required${aria}>${`\n${values.text ?? ''}`}</textarea>`,
  );
  const body = markup`<main>
<h1>Send an email</h1>
<p>The email is queued at once and sent in the background; the next page shows how it goes. Every email sent so far is in <a href="/emails">the list of emails</a>.</p>
${sentBefore !== undefined ? sentBeforeSummary(sentBefore.id) : errorSummary(errors, banner)}
<form method="post" action="/">
<input type="hidden" name="_csrf" value="${csrfToken}">
<input type="hidden" name="_nonce" value="${nonce}">
${sentBefore !== undefined ? markup`<input type="hidden" name="_again" value="${sentBefore.again}">` : ''}
${to}
${subject}
${text}
<button type="submit">Send</button>
</form>
</main>`;
  return layout({ title: 'Send an email', body, section: 'send', ...(account ? { account } : {}) });
}

export interface ProblemView {
  readonly title: string;
  readonly message: string;
  readonly link?: { readonly href: string; readonly label: string };
}

/** A page for anything that went wrong, saying what happened and where to go from here. */
export function problemPage({
  title,
  message,
  link = { href: '/', label: 'Back to the form' },
}: ProblemView): string {
  const body = markup`<main>
<h1>${title}</h1>
<p>${message}</p>
<p><a href="${link.href}">${link.label}</a></p>
</main>`;
  return layout({ title, body });
}
