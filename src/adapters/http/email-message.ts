import { isResendable } from '../../application/resend-email.js';
import type { EmailAddress } from '../../domain/email-address.js';
import type { AttachmentRef, EmailRequest } from '../../domain/email-request.js';
import type { EmailStatus } from '../../domain/email-status.js';
import { waitingAttempt } from '../../domain/email-status.js';
import { textAlternative } from '../mime/text-alternative.js';
import type { Account, Html } from './html.js';
import { layout, markup } from './html.js';

/**
 * What an email's page (`/emails/{id}`, status-page.ts) shows besides its status, rendered here:
 * `message` after the details (the links to a resend, the notice of an action just done, and the
 * message itself), `actions` after the history (what an operator can do with the email now).
 * Absent: not shown.
 */
export interface EmailPageSections {
  readonly message?: Html;
  readonly actions?: Html;
}

/** The message of an email as the page can show it. */
export type MessageView =
  /** The request as accepted; `defaultFrom` is MAIL_FROM, for a request that names no `from`. */
  | {
      readonly kind: 'shown';
      readonly request: EmailRequest;
      readonly defaultFrom: EmailAddress;
      /** `GET /emails/{id}/raw` is served: link to it. */
      readonly raw: boolean;
    }
  /** The email log no longer keeps the request (or never had it). */
  | { readonly kind: 'gone' }
  /** The email log did not answer. */
  | { readonly kind: 'unreadable' };

/** An action of the email's page, each a confirmation page and a POST of the same path. */
export type EmailAction = 'cancel' | 'retry' | 'resend';

/** The actions this server offers (a use case wired for each), whatever an email's status. */
export type OfferedActions = Readonly<Record<EmailAction, boolean>>;

/** What the page says after an action, by the `done` query parameter of its redirect. */
export const DONE_NOTICES = {
  cancelled: 'Cancelled: this email will never be sent.',
  retried: 'Retrying now: the next attempt is on its way to a worker.',
  resent: 'Resent: this is a new email with the same message, sent now.',
  'resent-partly':
    'Resent: this is a new email with the same message, sent now. Recipients on the suppression list were left out (see the recipients above).',
} as const;
export type DoneNotice = keyof typeof DONE_NOTICES;

/** A query parameter's value as a notice, or undefined for anything else (never echoed). */
export const doneNotice = (raw: unknown): DoneNotice | undefined =>
  typeof raw === 'string' && Object.hasOwn(DONE_NOTICES, raw) ? (raw as DoneNotice) : undefined;

/** "12 bytes", "3.4 kB", "1.2 MB": decimal units, as file managers show sizes. */
export function formatBytes(octets: number): string {
  if (octets < 1000) return `${octets} ${octets === 1 ? 'byte' : 'bytes'}`;
  if (octets < 1_000_000) return `${(octets / 1000).toFixed(1)} kB`;
  return `${(octets / 1_000_000).toFixed(1)} MB`;
}

const list = (addresses: readonly EmailAddress[] | undefined): string =>
  (addresses ?? []).join(', ');

/** The header fields that matter to a person, in the order a mail program shows them. */
function headerRows(request: EmailRequest, defaultFrom: EmailAddress): Html {
  const rows: Array<[string, Html | string]> = [
    [
      'From',
      request.from !== undefined
        ? request.from
        : markup`${defaultFrom} <span class="message-note">(the service's default sender)</span>`,
    ],
    ['To', list(request.to)],
  ];
  if (request.cc !== undefined && request.cc.length > 0) rows.push(['Cc', list(request.cc)]);
  if (request.bcc !== undefined && request.bcc.length > 0) {
    rows.push([
      'Bcc',
      markup`${list(request.bcc)} <span class="message-note">(in the envelope only, in no header)</span>`,
    ]);
  }
  if (request.replyTo !== undefined && request.replyTo.length > 0) {
    rows.push(['Reply-To', list(request.replyTo)]);
  }
  rows.push(['Subject', request.subject]);
  // In the order the message has them (mime-message.ts writes them by name).
  const extra = Object.entries(request.headers ?? {}).sort(([a], [b]) =>
    a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0,
  );
  for (const [name, value] of extra) rows.push([name, value]);
  return markup`<dl class="message-headers">${rows.map(
    ([name, value]) => markup`<dt>${name}</dt><dd>${value}</dd>`,
  )}</dl>`;
}

function attachmentItem(ref: AttachmentRef): Html {
  const type =
    ref.contentType !== undefined
      ? markup`<code>${ref.contentType}</code>`
      : markup`type not given (a mail program guesses it from the name)`;
  const inline =
    ref.contentId !== undefined
      ? markup`, <strong>inline</strong> as <code>cid:${ref.contentId}</code>`
      : '';
  return markup`<li><span class="file-name">${ref.filename}</span>: ${type}, ${formatBytes(ref.size)}${inline}</li>`;
}

/**
 * The message as it was (or will be) handed to the transport: its header fields, the html part
 * in a sandboxed frame served by `GET /emails/{id}/html` (no scripts, no remote content, see
 * message-routes.ts), the text part (the one given, or the one made from the html, as every
 * transport sends it), the attachments, and the raw message to download.
 */
export function messageSection(id: string, view: MessageView): Html {
  const heading = markup`<h2 id="message-title">Message</h2>`;
  if (view.kind === 'gone') {
    return markup`<section class="message" aria-labelledby="message-title">
${heading}
<p>The message itself is no longer kept: the email log keeps only its status (emails in a final status are deleted after the service's retention period, the message with them).</p>
</section>`;
  }
  if (view.kind === 'unreadable') {
    return markup`<section class="message" aria-labelledby="message-title">
${heading}
<p>The message could not be read just now; reload the page in a few seconds.</p>
</section>`;
  }
  const { request, defaultFrom } = view;
  const text = textAlternative(request);
  const html =
    request.html === undefined
      ? ''
      : markup`<h3 id="message-html-title">HTML part</h3>
<iframe class="message-frame" sandbox src="/emails/${id}/html" title="The HTML part of the email" referrerpolicy="no-referrer"></iframe>
<p class="message-note">Shown as a mail program shows it, with scripts, forms and everything from other sites (images, fonts, styles) blocked; inline images come from the attachments.</p>`;
  const textPart =
    text === undefined
      ? ''
      : markup`<h3 id="message-text-title">Text part</h3>
${request.text === undefined ? markup`<p class="message-note">Made from the HTML part, as every transport sends it.</p>` : ''}
<pre class="message-text" role="region" tabindex="0" aria-labelledby="message-text-title">${text}</pre>`;
  const files = request.attachments ?? [];
  const attachments =
    files.length === 0
      ? ''
      : markup`<h3 id="message-files-title">Attachments</h3>
<ul class="message-files" aria-labelledby="message-files-title">${files.map(attachmentItem)}</ul>`;
  const raw = view.raw
    ? markup`<p><a href="/emails/${id}/raw" download="${id}.eml">Download the raw message (.eml)</a></p>`
    : '';
  return markup`<section class="message" aria-labelledby="message-title">
${heading}
${headerRows(request, defaultFrom)}
${html}
${textPart}
${attachments}
${raw}
</section>`;
}

const idLink = (id: string): Html => markup`<a href="/emails/${id}"><code>${id}</code></a>`;

/** "Resend of …" and "Resent as …": the links between an email and its resends, both ways. */
export function relations(s: EmailStatus): Html {
  const of =
    s.resendOf !== undefined
      ? markup`<p class="email-relation">Resend of ${idLink(s.resendOf)}.</p>`
      : '';
  const as =
    s.resentAs !== undefined && s.resentAs.length > 0
      ? markup`<p class="email-relation">Resent as ${s.resentAs.map((id, i) => markup`${i > 0 ? ', ' : ''}${idLink(id)}`)}.</p>`
      : '';
  return markup`${of}${as}`;
}

/**
 * The notice of an action just done. It takes the focus when the page loads (`autofocus` on a
 * `tabindex="-1"` block, no script needed), so a screen reader reads it and the page scrolls to
 * it (WCAG 2.2 SC 4.1.3 Status Messages).
 */
export const doneBlock = (done: DoneNotice | undefined): Html | string =>
  done === undefined
    ? ''
    : markup`<p class="notice" id="action-done" tabindex="-1" autofocus>${DONE_NOTICES[done]}</p>`;

const ACTION_PATHS: Readonly<Record<EmailAction, string>> = {
  cancel: 'cancel',
  retry: 'retry',
  resend: 'resend',
};

/** The path of `action` on email `id`: its confirmation page (GET) and the action (POST). */
export const actionPath = (id: string, action: EmailAction): string =>
  `/emails/${id}/${ACTION_PATHS[action]}`;

/** The statuses each action applies to; the use cases decide again when it is done. */
export const ACTION_APPLIES: Readonly<Record<EmailAction, (s: EmailStatus) => boolean>> = {
  cancel: (s) => s.status === 'scheduled',
  retry: (s) => s.status === 'retrying',
  resend: (s) => isResendable(s.status),
};

const ACTION_LINKS: Readonly<Record<EmailAction, { label: string; what: string }>> = {
  cancel: {
    label: 'Cancel this email…',
    what: 'It is held until its time; cancelled, it is never sent.',
  },
  retry: {
    label: 'Retry now…',
    what: 'Makes the next attempt at once instead of at its time.',
  },
  resend: {
    label: 'Resend…',
    what: 'Sends the same message again, now, as a new email.',
  },
};

/**
 * What can be done with the email now, each a link to its confirmation page (which works without
 * JavaScript); nothing when no action applies.
 */
export function actionsSection(s: EmailStatus, offered: OfferedActions): Html {
  const actions = (Object.keys(ACTION_LINKS) as EmailAction[]).filter(
    (a) => offered[a] && ACTION_APPLIES[a](s),
  );
  if (actions.length === 0) return markup``;
  const items = actions.map(
    (a) =>
      markup`<li><a class="action-link" href="${actionPath(s.id, a)}">${ACTION_LINKS[a].label}</a> <span class="message-note">${ACTION_LINKS[a].what}</span></li>`,
  );
  return markup`<section class="email-actions" aria-labelledby="actions-title">
<h2 id="actions-title">Actions</h2>
<ul class="action-list">${items}</ul>
</section>`;
}

/** What a confirmation page shows and posts. */
export interface ConfirmView {
  readonly action: EmailAction;
  readonly status: EmailStatus;
  readonly csrfToken: string;
  /** The resend form's one-time key: a second post of the same form sends nothing more. */
  readonly nonce?: string;
  readonly account?: Account;
}

const summary = (s: EmailStatus): Html =>
  markup`<dl><dt>Subject</dt><dd>${s.subject}</dd><dt>To</dt><dd>${list(s.to)}</dd>${
    s.cc !== undefined && s.cc.length > 0 ? markup`<dt>Cc</dt><dd>${list(s.cc)}</dd>` : ''
  }${s.bcc !== undefined && s.bcc.length > 0 ? markup`<dt>Bcc</dt><dd>${list(s.bcc)}</dd>` : ''}<dt>Id</dt><dd><code>${s.id}</code></dd></dl>`;

const time = (iso: string | undefined): Html | string =>
  iso === undefined
    ? 'its time'
    : markup`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')} UTC</time>`;

const CONFIRM_TEXT: Readonly<
  Record<EmailAction, { title: string; button: string; explain: (s: EmailStatus) => Html }>
> = {
  cancel: {
    title: 'Cancel this email?',
    button: 'Yes, cancel the email',
    explain: (s) =>
      markup`<p>It is held until ${time(s.sendAt)}. Cancelled, it is never sent, and that cannot be undone (a resend makes a new email).</p>`,
  },
  retry: {
    title: 'Retry this email now?',
    button: 'Yes, retry now',
    explain: (s) => {
      const next = waitingAttempt(s.attempts);
      return markup`<p>Attempt ${next} is due at ${time(s.nextAttemptAt)}. Retrying now makes that attempt at once instead; it is still attempt ${next}, and if it fails for now again, the retries go on from there as before.</p>`;
    },
  },
  resend: {
    title: 'Resend this email?',
    button: 'Yes, resend it',
    explain: (s) =>
      markup`<p>A new email with the same message, recipients and attachments is sent now, under a new id. This one stays as it is, linked to the new one. Recipients on the suppression list are left out; with nobody left, nothing is sent.</p>${
        s.resentAs !== undefined && s.resentAs.length > 0
          ? markup`<p><strong>It was resent already</strong>, as ${s.resentAs.map((id, i) => markup`${i > 0 ? ', ' : ''}${idLink(id)}`)}.</p>`
          : ''
      }`,
  },
};

/**
 * The confirmation step of an action, a page of its own so that it works without JavaScript:
 * what the action does to which email, and a form that posts it (with the CSRF token, and for a
 * resend a one-time key), or a link back to the email.
 */
export function confirmPage({ action, status, csrfToken, nonce, account }: ConfirmView): string {
  const text = CONFIRM_TEXT[action];
  const body = markup`<main>
<h1>${text.title}</h1>
${summary(status)}
${text.explain(status)}
<form method="post" action="${actionPath(status.id, action)}" class="confirm-form">
<input type="hidden" name="_csrf" value="${csrfToken}">
${nonce !== undefined ? markup`<input type="hidden" name="_nonce" value="${nonce}">` : ''}
<button type="submit"${action === 'cancel' ? markup` class="danger"` : ''}>${text.button}</button>
<a class="confirm-back" href="/emails/${status.id}">No, back to the email</a>
</form>
</main>`;
  return layout({ title: text.title, body, section: 'emails', ...(account ? { account } : {}) });
}

/** A page that says why an action was not done, and links back to the email (or elsewhere). */
export function actionProblemPage(view: {
  readonly title: string;
  readonly message: string;
  readonly back: { readonly href: string; readonly label: string };
  readonly account?: Account;
}): string {
  const body = markup`<main>
<h1>${view.title}</h1>
<p>${view.message}</p>
<p><a href="${view.back.href}">${view.back.label}</a></p>
</main>`;
  return layout({
    title: view.title,
    body,
    section: 'emails',
    ...(view.account ? { account: view.account } : {}),
  });
}
