import { createHash, randomBytes } from 'node:crypto';
import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import type { Context, Next } from 'koa';
import { koaBody } from 'koa-body';
import type { Logger } from '../../application/ports/system.js';
import type { RequestEmailError } from '../../application/request-email.js';
import type { EmailRequester } from '../../application/ports/email-requester.js';
import { describeListedAddress, parseAddressList } from '../../domain/email-address.js';
import type { FieldErrors } from '../../domain/email-request.js';
import { MAX_SUBJECT_CHARS } from '../../domain/email-request.js';
import type { Guards } from './access.js';
import type { Csrf } from './csrf.js';
import { csrfRejectionMessages } from './csrf.js';
import { RETRY_AFTER_SECONDS, requestEmailProblem, sendProblem } from './errors.js';
import type { FormError, FormField, FormValues, FormView } from './pages.js';
import { LABELS, formPage, problemPage } from './pages.js';
import { flashAlreadySent } from './status-routes.js';

export interface FormRoutesOptions {
  readonly requestEmail: EmailRequester;
  readonly csrf: Csrf;
  readonly guards: Guards;
  readonly bodyLimitBytes: number;
  readonly log: Logger;
}

const FORM_NONCE = /^[A-Za-z0-9_-]{22,64}$/;
const newNonce = (): string => randomBytes(16).toString('base64url');

type FormBody = Readonly<Record<string, unknown>>;

/**
 * What this browser sent with the form lately, in an HttpOnly cookie: up to `SENT_KEPT` entries
 * `id.fingerprint`, newest first, for `SENT_MAX_AGE_MS`. Back to the form after sending shows a
 * fresh page (its nonce is new: the page is `no-store`), but the browser fills the fields in
 * again as they were typed; pressing Send would then make a second email without a word. With
 * this list the form sees that these very values were sent, says so and links to that email
 * (see `FormView.sentBefore`). Signed when the app has keys (guarded access); unsigned it is
 * still only a hint about the browser's own posts, never a permission.
 */
const SENT_COOKIE = 'email_form_sent';
const SENT_KEPT = 5;
const SENT_MAX_AGE_MS = 12 * 3_600_000;
const SENT_ENTRY = /^([A-Za-z0-9_-]{8,64})\.([A-Za-z0-9_-]{22})$/;

interface SentEntry {
  readonly id: string;
  readonly fingerprint: string;
}

/**
 * 22 base64url characters of SHA-256 over the session and the three fields as typed: equal for
 * the same values from the same browser session, and revealing nothing readable in the cookie.
 */
const fingerprintOf = (sessionId: string, values: FormValues): string =>
  createHash('sha256')
    .update(JSON.stringify([sessionId, values.to ?? '', values.subject ?? '', values.text ?? '']))
    .digest('base64url')
    .slice(0, 22);

const sentEntries = (ctx: Context): SentEntry[] =>
  (ctx.cookies.get(SENT_COOKIE) ?? '')
    .split('~')
    .map((entry) => SENT_ENTRY.exec(entry))
    .flatMap((m) =>
      m?.[1] !== undefined && m[2] !== undefined ? [{ id: m[1], fingerprint: m[2] }] : [],
    );

function rememberSent(ctx: Context, entry: SentEntry): void {
  const kept = [entry, ...sentEntries(ctx).filter((e) => e.fingerprint !== entry.fingerprint)];
  ctx.cookies.set(
    SENT_COOKIE,
    kept
      .slice(0, SENT_KEPT)
      .map((e) => `${e.id}.${e.fingerprint}`)
      .join('~'),
    { httpOnly: true, sameSite: 'strict', path: '/', secure: ctx.secure, maxAge: SENT_MAX_AGE_MS },
  );
}

const formBody = (ctx: Context): FormBody => {
  const body: unknown = ctx.request.body;
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? { ...body } : {};
};

// What goes back into the inputs: a repeated field shows all its values, anything else nothing.
const shown = (value: unknown): string | undefined =>
  typeof value === 'string'
    ? value
    : Array.isArray(value)
      ? value.filter((v) => typeof v === 'string').join(', ')
      : undefined;

const keptValues = (body: FormBody): FormValues => ({
  ...(shown(body.to) !== undefined ? { to: shown(body.to) } : {}),
  ...(shown(body.subject) !== undefined ? { subject: shown(body.subject) } : {}),
  ...(shown(body.text) !== undefined ? { text: shown(body.text) } : {}),
});

/**
 * The To field: several mailboxes separated by commas (or semicolons), where a quoted display
 * name keeps its comma (`"Lovelace, Ada" <ada@example.org>`). Split here, where a person typed
 * one line; the core checks each address again, with the configuration's domain rules. A bad
 * entry among several is named by its place; when the whole field is one entry, the core's own
 * words say what is wrong with it.
 */
function splitRecipients(text: string): { readonly to: unknown; readonly errors: FormError[] } {
  const list = parseAddressList(text);
  if (E.isRight(list)) return { to: list.right, errors: [] };
  const [first] = list.left;
  if (list.left.length === 1 && first?.index === 0 && first.input.trim() === text.trim()) {
    return { to: text, errors: [] };
  }
  return {
    // No recipient: the core refuses the email, and still checks the other fields.
    to: [],
    errors: list.left.map((p) => ({ field: 'to', message: `To: ${describeListedAddress(p)}` })),
  };
}

/** `to[2]` is about the To field; `html` about the body, which the form's Text holds. */
function formField(key: string): FormField | undefined {
  const name = key.replace(/\[\d+\]$/, '');
  if (name === 'to' || name === 'subject' || name === 'text') return name;
  return name === 'html' ? 'text' : undefined;
}

/**
 * The core's field errors in the form's words: they name the API's fields (`to[1]`, "or give
 * html"), the form has three. Each becomes a sentence that starts with the field's label.
 */
function formErrors(fields: FieldErrors, body: FormBody): FormError[] {
  return Object.entries(fields).map(([key, message]): FormError => {
    const field = formField(key);
    if (field === undefined) return { message: `${key} ${message}` };
    const label = LABELS[field];
    const value = body[field];
    // Only a hand-made request repeats a field; the browser sends each once.
    if (Array.isArray(value) && field !== 'to') {
      return { field, message: `${label} was sent more than once: send it once.` };
    }
    const typed = typeof value === 'string' ? value : '';
    if (field === 'text' && typed.trim() === '') {
      return { field, message: 'Text is required: write the message.' };
    }
    const length = [...typed].length;
    if (field === 'subject' && length > MAX_SUBJECT_CHARS) {
      return {
        field,
        message: `Subject is ${length} characters long; at most ${MAX_SUBJECT_CHARS} are allowed: shorten it.`,
      };
    }
    return { field, message: `${label} ${message}` };
  });
}

function renderForm(ctx: Context, status: number, view: FormView, guards: Guards): void {
  const operator = guards.operator(ctx);
  if (operator !== undefined) view = { ...view, account: { operator, csrfToken: view.csrfToken } };
  ctx.status = status;
  ctx.type = 'html';
  // The page holds a CSRF token and a one-time key: neither may be served from a cache.
  ctx.set('Cache-Control', 'no-store');
  ctx.body = formPage(view);
}

/** A url-encoded form's fields, up to `limitBytes`; every other body type is left unread. */
export const urlencodedBody = (limitBytes: number) =>
  koaBody({ urlencoded: true, json: false, text: false, multipart: false, formLimit: limitBytes });

/** Forms come url-encoded; multipart would mean parsing files we never want. */
function requireUrlEncoded() {
  return async function requireUrlEncodedBody(ctx: Context, next: Next): Promise<void> {
    if (!ctx.is('application/x-www-form-urlencoded')) {
      sendProblem(ctx, {
        status: 415,
        code: 'unsupported_media_type',
        title: 'Unsupported form encoding',
        message: 'The form must be sent as application/x-www-form-urlencoded.',
      });
      return;
    }
    await next();
  };
}

/** What the form says when the use case refuses: the person keeps what they typed. */
function formFailure(
  error: RequestEmailError,
  values: FormValues,
  nonce: string,
  describe: (fields: FieldErrors) => readonly FormError[],
): { status: number; view: Omit<FormView, 'csrfToken'>; retryAfter?: number } {
  switch (error._tag) {
    case 'InvalidEmailRequest':
      // Nothing was claimed under this nonce yet, so the corrected form may reuse it.
      return { status: 400, view: { nonce, values, errors: describe(error.fields) } };
    case 'MessageTooLarge':
      return { status: 413, view: { nonce, values, banner: requestEmailProblem(error).message } };
    case 'AllRecipientsSuppressed':
      // Nothing was kept under this nonce: the form with other recipients may reuse it.
      return { status: 422, view: { nonce, values, banner: requestEmailProblem(error).message } };
    case 'QueueUnavailable':
    case 'StoreUnavailable':
      return {
        status: 503,
        retryAfter: RETRY_AFTER_SECONDS,
        view: {
          nonce,
          values,
          banner: `${requestEmailProblem(error).title}: the email was not accepted. Please try again in a few seconds.`,
        },
      };
    case 'IdempotencyConflict':
      return error.reason === 'in-progress'
        ? {
            status: 409,
            view: {
              nonce,
              values,
              banner:
                'This form is still being sent. Wait a moment and press Send again: it will not be sent twice.',
            },
          }
        : {
            status: 409,
            // A fresh nonce: sending these other values again is a new email, on purpose.
            view: {
              nonce: newNonce(),
              values,
              banner:
                'This form was already sent with other values. Press Send again to send these values as a new email.',
            },
          };
  }
}

export function mountFormRoutes(router: Router, options: FormRoutesOptions): void {
  const { requestEmail, csrf, guards, bodyLimitBytes, log } = options;

  router.get('/', guards.page('send'), async function showForm(ctx: Context): Promise<void> {
    const sessionId = csrf.ensureSession(ctx);
    renderForm(ctx, 200, { csrfToken: csrf.issue(sessionId), nonce: newNonce() }, guards);
  });

  router.post(
    '/',
    guards.page('send'),
    requireUrlEncoded(),
    urlencodedBody(bodyLimitBytes),
    async function submitForm(ctx: Context): Promise<void> {
      const body = formBody(ctx);
      const sessionId = csrf.session(ctx);
      const verdict = csrf.verify(sessionId, body._csrf);
      if (E.isLeft(verdict)) {
        log.warn({ reason: verdict.left }, 'Form refused: CSRF check failed');
        ctx.status = 403;
        ctx.type = 'html';
        ctx.set('Cache-Control', 'no-store');
        ctx.body = problemPage({
          title: 'The form could not be accepted',
          message: `${csrfRejectionMessages[verdict.left]} Nothing was sent. Open the form again and resend it.`,
          link: { href: '/', label: 'Open the form again' },
        });
        return;
      }
      const values = keptValues(body);
      const csrfToken = csrf.issue(sessionId ?? csrf.ensureSession(ctx));
      const nonce = body._nonce;
      if (typeof nonce !== 'string' || !FORM_NONCE.test(nonce)) {
        renderForm(
          ctx,
          400,
          {
            csrfToken,
            nonce: newNonce(),
            values,
            banner:
              'The form was incomplete, so nothing was sent. Please check it and press Send again.',
          },
          guards,
        );
        return;
      }
      // The same values again from a fresh rendering (Back, then Send): ask before a second email.
      const fingerprint = fingerprintOf(sessionId ?? '', values);
      const earlier = sentEntries(ctx).find((e) => e.fingerprint === fingerprint);
      if (earlier !== undefined && body._again !== fingerprint) {
        // A fresh nonce: the next Send is a new email, on purpose, even from a reused rendering.
        const sentBefore = { id: earlier.id, again: fingerprint };
        renderForm(ctx, 409, { csrfToken, nonce: newNonce(), values, sentBefore }, guards);
        return;
      }
      // Only the email's own fields reach the core: the token and nonce are the adapter's business.
      const recipients = splitRecipients(values.to ?? '');
      const input = { to: recipients.to, subject: body.subject, text: body.text };
      const result = await requestEmail.execute(input, `form:${nonce}`)();
      if (E.isRight(result)) {
        rememberSent(ctx, { id: result.right.id, fingerprint });
        // This rendering was sent before (a double click, a page restored as it was): the same
        // email's page, which says that nothing was sent again.
        if (result.right.repeated) flashAlreadySent(ctx, result.right.id);
        ctx.status = 303;
        ctx.redirect(`/emails/${result.right.id}`);
        return;
      }
      const failure = formFailure(result.left, values, nonce, (fields) => {
        // The list's own errors name the bad entries; the core's "required" would only confuse.
        const { to: _required, ...rest } = fields;
        return recipients.errors.length > 0
          ? [...recipients.errors, ...formErrors(rest, body)]
          : formErrors(fields, body);
      });
      if (failure.status === 503) log.warn({ error: result.left }, 'Form submit not queued');
      if (failure.retryAfter !== undefined) ctx.set('Retry-After', String(failure.retryAfter));
      renderForm(ctx, failure.status, { ...failure.view, csrfToken }, guards);
    },
  );
}
