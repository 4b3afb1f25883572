/**
 * What the operator pages of dead letters, suppressions and webhooks share: choosing between a
 * page and JSON on one address, reading a form with its CSRF token, a confirmation step that
 * works without JavaScript, the notice after a 303, and a problem page that keeps the
 * dashboard's navigation.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Context, Middleware, Next } from 'koa';
import compose from 'koa-compose';
import type { Guards } from './access.js';
import type { Csrf } from './csrf.js';
import { csrfRejectionMessages } from './csrf.js';
import type { Problem } from './errors.js';
import { API_ROUTE } from './errors.js';
import { urlencodedBody } from './form-routes.js';
import type { Account, Html, HtmlValue, Section } from './html.js';
import { layout, markup } from './html.js';

/** A form of these pages: a few fields of a few kilobytes at most (a note of 1000 characters). */
export const ADMIN_FORM_LIMIT_BYTES = 32 * 1024;

/**
 * A page rather than JSON: no `Authorization` header (a key is the API's, whoever brings it) and
 * an `Accept` that names `text/html` and prefers it to JSON, as a browser's navigation does.
 * `*\/*` alone, or no `Accept` at all (curl, fetch, every API client so far), stays JSON: these
 * addresses were JSON before they had pages, and their clients must not notice.
 */
export function wantsAdminPage(ctx: Context): boolean {
  return ctx.get('Authorization') === '' && ctx.accepts('json', 'html') === 'html';
}

/**
 * A form a browser posts: url-encoded, and no `Authorization` header. Anything else posted to an
 * address that takes both is the API's (which answers 415 to what is not JSON).
 */
export function isFormPost(ctx: Context): boolean {
  return (
    ctx.get('Authorization') === '' &&
    typeof ctx.is('application/x-www-form-urlencoded') === 'string'
  );
}

/**
 * One route, two representations: `page` for a request `choose` says is a browser's, `api`
 * otherwise (every JSON behaviour as it was). Caches are told that the answer depends on
 * `Accept` (RFC 9110 §12.5.5).
 */
export function negotiate(
  choose: (ctx: Context) => boolean,
  page: readonly Middleware[],
  api: readonly Middleware[],
): Middleware {
  const asPage = compose([answerAsPage(), ...page]);
  const asApi = compose([...api]);
  return async function negotiated(ctx: Context, next: Next): Promise<void> {
    ctx.vary('Accept');
    await (choose(ctx) ? asPage(ctx, next) : asApi(ctx, next));
  };
}

/**
 * The middleware of an admin list's GET: with `show` (the server serves pages), the page for a
 * signed-in operator's browser and the JSON for an admin key (`negotiate`); without, the JSON.
 */
export function adminListRoute(
  guards: Guards,
  show: Middleware | undefined,
  list: Middleware,
): Middleware[] {
  const api = [guards.key('admin'), list];
  return show === undefined ? api : [negotiate(wantsAdminPage, [guards.page('admin'), show], api)];
}

/**
 * The error handler answers JSON on any path an API route matched (`API_ROUTE`, see errors.ts);
 * a page on such a path is no API route, so its refusals (a sign-in store that does not answer,
 * a body too large) must be pages. This takes the API's routes out of the matched list for this
 * request only: nothing else reads it once the route runs.
 */
export function answerAsPage(): Middleware {
  return async function asPage(ctx: Context, next: Next): Promise<void> {
    const matched: unknown = Reflect.get(ctx, 'matched');
    if (Array.isArray(matched)) {
      Reflect.set(
        ctx,
        'matched',
        matched.filter((layer: unknown) => {
          const name: unknown =
            typeof layer === 'object' && layer !== null ? Reflect.get(layer, 'name') : undefined;
          return !(typeof name === 'string' && name.startsWith(API_ROUTE));
        }),
      );
    }
    await next();
  };
}

/** The fields of a url-encoded form; a repeated field keeps its values as a list. */
export type FormFields = Readonly<Record<string, string | readonly string[]>>;

interface FormState {
  form?: FormFields;
}

/** One value of a form field: the first when it was repeated, undefined when absent. */
export function field(form: FormFields, name: string): string | undefined {
  const value = Object.prototype.hasOwnProperty.call(form, name) ? form[name] : undefined;
  return typeof value === 'string' ? value : value?.[0];
}

/** Every value of a form field (checkboxes of one name), in the order sent. */
export function fields(form: FormFields, name: string): readonly string[] {
  const value = Object.prototype.hasOwnProperty.call(form, name) ? form[name] : undefined;
  return value === undefined ? [] : typeof value === 'string' ? [value] : value;
}

/** The form `readForm` read, for the route after it. */
export function formOf(ctx: Context): FormFields {
  const { form }: FormState = ctx.state;
  return form ?? {};
}

const asFields = (body: unknown): FormFields => {
  const out: Record<string, string | readonly string[]> = Object.create(null) as Record<
    string,
    string | readonly string[]
  >;
  if (typeof body !== 'object' || body === null) return out;
  for (const [name, value] of Object.entries(body)) {
    if (typeof value === 'string') out[name] = value;
    else if (Array.isArray(value)) out[name] = value.filter((v) => typeof v === 'string');
  }
  return out;
};

/** What `readForm` needs to answer a refused form on the page it came from. */
export interface ReadFormOptions {
  readonly csrf: Csrf;
  readonly guards: Guards;
  readonly section: Section;
  /** Where the person goes to try again: the page the form was on. */
  readonly back: { readonly href: string; readonly label: string };
  /** The log line of a refusal (never the form's values). */
  readonly onRefused?: (reason: string) => void;
}

/**
 * Reads a url-encoded form (415 page for any other body) and checks its CSRF token (`_csrf`,
 * bound to this browser's session: see csrf.ts); a refusal is a 403 page that says nothing was
 * changed and links back. The fields are then `formOf(ctx)`.
 */
export function readForm(options: ReadFormOptions): Middleware {
  const { csrf, guards, section, back, onRefused } = options;
  const chain = compose<Context>([
    async function requireForm(ctx: Context, next: Next): Promise<void> {
      if (!ctx.is('application/x-www-form-urlencoded')) {
        return renderProblem(ctx, guards, csrf, section, {
          status: 415,
          title: 'Unsupported form encoding',
          message: 'The form must be sent as application/x-www-form-urlencoded.',
          link: back,
        });
      }
      await next();
    },
    urlencodedBody(ADMIN_FORM_LIMIT_BYTES),
    async function checkCsrf(ctx: Context, next: Next): Promise<void> {
      const form = asFields(ctx.request.body);
      const verdict = csrf.verify(csrf.session(ctx), field(form, '_csrf'));
      if (E.isLeft(verdict)) {
        onRefused?.(verdict.left);
        return renderProblem(ctx, guards, csrf, section, {
          status: 403,
          title: 'The form could not be accepted',
          message: `${csrfRejectionMessages[verdict.left]} Nothing was changed. Open the page again and repeat what you did.`,
          link: back,
        });
      }
      const state: FormState = ctx.state;
      state.form = form;
      await next();
    },
  ]);
  return async function readFormFields(ctx: Context, next: Next): Promise<void> {
    await chain(ctx, next);
  };
}

/**
 * The CSRF token for this browser's forms (its session cookie set first when it has none), and
 * the signed-in operator for "Signed in as …" when there is one.
 */
export function formContext(
  ctx: Context,
  guards: Guards,
  csrf: Csrf,
): { readonly csrfToken: string; readonly account?: Account } {
  const csrfToken = csrf.issue(csrf.ensureSession(ctx));
  const operator = guards.operator(ctx);
  return { csrfToken, ...(operator !== undefined ? { account: { operator, csrfToken } } : {}) };
}

/** Answers `html` as a page: never cached, since it holds a CSRF token and the operator's data. */
export function sendPage(ctx: Context, status: number, html: string): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = html;
}

/**
 * A 303 to `location` (See Other, RFC 9110 §15.4.4): the browser GETs it, so a reload repeats
 * nothing.
 */
export function seeOther(ctx: Context, location: string): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.redirect(location);
  ctx.status = 303;
}

/** What went wrong on an operator page, and where to go from there. */
export interface AdminProblem {
  readonly status: number;
  readonly title: string;
  readonly message: string;
  readonly link: { readonly href: string; readonly label: string };
  /** Seconds for `Retry-After` (a store or queue that did not answer). */
  readonly retryAfterSeconds?: number;
}

/** A problem as a page of the dashboard: its navigation and account bar stay. */
export function renderProblem(
  ctx: Context,
  guards: Guards,
  csrf: Csrf,
  section: Section,
  problem: AdminProblem,
): void {
  const { account } = formContext(ctx, guards, csrf);
  if (problem.retryAfterSeconds !== undefined) {
    ctx.set('Retry-After', String(problem.retryAfterSeconds));
  }
  const body = markup`<main class="admin">
<h1>${problem.title}</h1>
<p>${problem.message}</p>
<p><a href="${problem.link.href}">${problem.link.label}</a></p>
</main>`;
  sendPage(
    ctx,
    problem.status,
    layout({ title: problem.title, body, section, ...(account ? { account } : {}) }),
  );
}

/**
 * `renderProblem` for the problems the JSON routes answer (`Problem`: status, title, message,
 * Retry-After), each page with the same way back (`link`) in its `section`.
 */
export function problemPages(
  guards: Guards,
  csrf: Csrf,
  section: Section,
  link: AdminProblem['link'],
): (ctx: Context, problem: Problem) => void {
  return (ctx, problem) =>
    renderProblem(ctx, guards, csrf, section, {
      status: problem.status,
      title: problem.title,
      message: problem.message,
      link,
      ...(problem.retryAfterSeconds !== undefined
        ? { retryAfterSeconds: problem.retryAfterSeconds }
        : {}),
    });
}

/** A confirmation step: the question, what it is about, and the one button that does it. */
export interface Confirmation {
  readonly title: string;
  /** What will happen, in a sentence or two: shown above the button. */
  readonly question: HtmlValue;
  /** What it is about (the letter, the address, the endpoint), as a short list or table. */
  readonly details?: Html;
  /** Where the form posts, with these hidden fields besides `_csrf` and `confirm=yes`. */
  readonly action: string;
  readonly hidden: Readonly<Record<string, string>>;
  /** The button's words: the action itself ("Purge 3 dead letters"), never "OK". */
  readonly button: string;
  /** Destructive actions get the warning colour. */
  readonly destructive?: boolean;
  readonly cancel: { readonly href: string; readonly label: string };
}

/**
 * The confirmation page of a state-changing action: a GET shows it (nothing changes), its one
 * form posts the action with the CSRF token and `confirm=yes`. Works without JavaScript.
 */
export function confirmationPage(
  c: Confirmation,
  section: Section,
  csrfToken: string,
  account: Account | undefined,
): string {
  const hidden = Object.entries(c.hidden).map(
    ([name, value]) => markup`<input type="hidden" name="${name}" value="${value}">`,
  );
  const body = markup`<main class="admin">
<h1>${c.title}</h1>
<p class="question">${c.question}</p>
${c.details}
<form method="post" action="${c.action}" class="confirm">
<input type="hidden" name="_csrf" value="${csrfToken}">
<input type="hidden" name="confirm" value="yes">
${hidden}
<button type="submit"${c.destructive === true ? markup` class="danger"` : ''}>${c.button}</button>
<a href="${c.cancel.href}" class="cancel">${c.cancel.label}</a>
</form>
</main>`;
  return layout({ title: c.title, body, section, ...(account ? { account } : {}) });
}

/** The notice a page shows after a 303 ("Replayed 3 dead letters."), read out when it appears. */
export const noticeBlock = (text: HtmlValue): Html =>
  text === undefined || text === '' || text === false || text === null
    ? markup``
    : markup`<p class="notice" role="status">${text}</p>`;

/** `n` and the noun, singular or plural: "1 dead letter", "3 dead letters". */
export const counted = (n: number, singular: string, plural = `${singular}s`): string =>
  `${n} ${n === 1 ? singular : plural}`;

/** A time as the pages show it: `2030-01-02 03:04:05 UTC`, machine-readable in `datetime`. */
export function timeOf(at: Date | string): Html {
  const iso = typeof at === 'string' ? at : at.toISOString();
  const shown = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(iso)
    ? `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`
    : iso;
  return markup`<time datetime="${iso}">${shown}</time>`;
}

/**
 * A table that may be wider than a phone: it scrolls inside its own region, so the page itself
 * never scrolls sideways (WCAG 2.2 SC 1.4.10 Reflow); the region takes keyboard focus so that it
 * can be scrolled without a mouse (SC 2.1.1).
 */
export const scrollingTable = (labelId: string, table: Html): Html =>
  markup`<div class="table-scroll" role="region" aria-labelledby="${labelId}" tabindex="0">${table}</div>`;
