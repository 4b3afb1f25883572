import type { FieldErrors } from '../../domain/email-request.js';
import { MAX_SUBJECT_CHARS } from '../../domain/email-request.js';
import type { Account, Html } from './html.js';
import { layout, markup } from './html.js';

export type FormField = 'to' | 'subject' | 'text';

export interface FormValues {
  readonly to?: string;
  readonly subject?: string;
  readonly text?: string;
}

export interface FormView {
  readonly csrfToken: string;
  /** The one-time key that makes a repeated submit of this rendering harmless. */
  readonly nonce: string;
  readonly values?: FormValues;
  readonly errors?: FieldErrors;
  /** A problem that belongs to no single field: the queue is down, the form was sent before. */
  readonly banner?: string;
  readonly account?: Account;
}

const LABELS: Readonly<Record<FormField, string>> = { to: 'To', subject: 'Subject', text: 'Text' };

/** `to[2]` is about the `to` field; `markup` is about the body, which the form's `text` holds. */
const fieldOf = (key: string): FormField | undefined => {
  if (key === 'to' || key.startsWith('to[')) return 'to';
  if (key === 'subject') return 'subject';
  if (key === 'text' || key === 'html') return 'text';
  return undefined;
};

interface PlacedError {
  readonly field: FormField | undefined;
  readonly message: string;
}

// The core's messages read as the rest of a sentence that starts with the field's name.
const placeErrors = (errors: FieldErrors): PlacedError[] =>
  Object.entries(errors).map(([key, message]) => {
    const field = fieldOf(key);
    return { field, message: `${field ? LABELS[field] : key} ${message}` };
  });

function fieldBlock(
  field: FormField,
  errors: readonly PlacedError[],
  control: (aria: Html) => Html,
): Html {
  const mine = errors.filter((e) => e.field === field);
  if (mine.length === 0) {
    return markup`<div class="field">
<label for="${field}">${LABELS[field]}</label>
${control(markup``)}
</div>`;
  }
  const errorId = `${field}-error`;
  return markup`<div class="field">
<label for="${field}">${LABELS[field]}</label>
<p class="error" id="${errorId}">${mine.map((e) => e.message).join(' ')}</p>
${control(markup` aria-invalid="true" aria-describedby="${errorId}"`)}
</div>`;
}

function errorSummary(errors: readonly PlacedError[], banner: string | undefined): Html | string {
  if (errors.length === 0 && banner === undefined) return '';
  const items = errors.map(
    (e) => markup`<li>${e.field ? markup`<a href="#${e.field}">${e.message}</a>` : e.message}</li>`,
  );
  return markup`<div class="banner" role="alert" id="problems">
${banner !== undefined ? markup`<p>${banner}</p>` : ''}
${errors.length > 0 ? markup`<p>Please correct the following:</p><ul>${items}</ul>` : ''}
</div>`;
}

export function formPage({
  csrfToken,
  nonce,
  values = {},
  errors = {},
  banner,
  account,
}: FormView): string {
  const placed = placeErrors(errors);
  const to = fieldBlock(
    'to',
    placed,
    (aria) =>
      markup`<input id="to" name="to" type="text" inputmode="email" autocomplete="email" required value="${values.to ?? ''}"${aria}>`,
  );
  const subject = fieldBlock(
    'subject',
    placed,
    (aria) =>
      markup`<input id="subject" name="subject" type="text" required maxlength="${MAX_SUBJECT_CHARS}" value="${values.subject ?? ''}"${aria}>`,
  );
  // The parser drops a newline right after <textarea>; the one we add keeps the text's own.
  const text = fieldBlock(
    'text',
    placed,
    (aria) =>
      markup`<textarea id="text" name="text" required${aria}>${`\n${values.text ?? ''}`}</textarea>`,
  );
  const body = markup`<main>
<h1>Send an email</h1>
<p>The email is queued at once and sent in the background; the next page shows how it goes.</p>
${errorSummary(placed, banner)}
<form method="post" action="/">
<input type="hidden" name="_csrf" value="${csrfToken}">
<input type="hidden" name="_nonce" value="${nonce}">
${to}
${subject}
${text}
<button type="submit">Send</button>
</form>
</main>`;
  return layout({ title: 'Send an email', body, ...(account ? { account } : {}) });
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
