import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import type { InvalidCursor, StoreUnavailable } from '../../application/ports/email-log.js';
import { pipe } from 'fp-ts/lib/function.js';
import type { Context, Middleware } from 'koa';
import type {
  Suppression,
  SuppressionList,
  SuppressionReason,
} from '../../application/ports/suppression-list.js';
import { SUPPRESSION_REASONS } from '../../application/ports/suppression-list.js';
import type { Logger } from '../../application/ports/system.js';
import { LONE_SURROGATE, mailboxKey, parseEmailAddress } from '../../domain/email-address.js';
import type { FieldErrors } from '../../domain/email-request.js';
import { domainToAscii } from '../idna/idna.js';
import type { Guards } from './access.js';
import {
  answerAsPage,
  confirmationPage,
  field,
  formContext,
  formOf,
  readForm,
  adminListRoute,
  problemPages,
  seeOther,
  sendPage,
} from './admin-pages.js';
import { requireJson, jsonBody } from './api-routes.js';
import type { Csrf } from './csrf.js';
import type { Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';
import type { SuppressionField, SuppressionForm, SuppressionsView } from './suppression-page.js';
import { SUPPRESSION_LABELS, removeConfirmation, suppressionsPage } from './suppression-page.js';

export interface SuppressionRoutesOptions {
  readonly suppressions: SuppressionList;
  readonly guards: Guards;
  readonly log: Logger;
  /** When an entry is added; the system clock unless a test says otherwise. */
  readonly now?: () => Date;
  /**
   * For the page (`GET /suppressions` for a browser, its add and remove forms): their CSRF
   * tokens. Without it there is no page: every request is the API's.
   */
  readonly csrf?: Csrf;
}

/** Entries a page of `GET /suppressions`. */
export const SUPPRESSIONS_PAGE_SIZE = 50;
/** The longest operator's note kept with an entry. */
export const MAX_DETAIL_CHARS = 1000;
/** A body of an address, a reason and a note: a few kilobytes at most. */
const BODY_LIMIT_BYTES = 16 * 1024;

export interface SuppressionBody {
  readonly address: string;
  readonly reason: SuppressionReason;
  readonly detail?: string;
  readonly created_at: string;
}

export interface SuppressionPageBody {
  readonly data: readonly SuppressionBody[];
  readonly next_cursor: string | null;
}

const asBody = (s: Suppression): SuppressionBody => ({
  address: s.address,
  reason: s.reason,
  ...(s.detail !== undefined ? { detail: s.detail } : {}),
  created_at: s.createdAt.toISOString(),
});

const invalid = (fields: FieldErrors): Problem => ({
  status: 400,
  code: 'invalid_request',
  title: 'The request is not valid',
  message: 'Some fields are missing or not valid; see fields.',
  fields,
});

const storeDown = (reason: string): Problem => ({
  status: 503,
  code: 'store_unavailable',
  title: 'The suppression list is not available',
  message: `The suppression list did not answer (${reason}); nothing was changed. Try again in a few seconds.`,
  retryAfterSeconds: RETRY_AFTER_SECONDS,
});

/** A `?cursor=` the list never wrote: said as such, never answered as an empty last page. */
const BAD_CURSOR: Problem = {
  status: 400,
  code: 'invalid_request',
  title: 'Not a page of the suppression list',
  message:
    'The cursor is not one this list gave: use next_cursor from an earlier page as it was, or leave cursor out for the first page.',
  fields: { cursor: 'must be a next_cursor from an earlier page' },
};

/** What a failed `list` deserves: a 400 for a cursor never written, else a 503. */
const listProblem = (error: StoreUnavailable | InvalidCursor): Problem =>
  error._tag === 'InvalidCursor' ? BAD_CURSOR : storeDown(error.reason);

const NOT_LISTED: Problem = {
  status: 404,
  code: 'not_found',
  title: 'Not on the suppression list',
  message: 'This address is not on the suppression list.',
};

/** The mailbox key of what a person typed (`Ada <ada@Bücher.de>` → `ada@xn--bcher-kva.de`). */
function keyOf(input: unknown): E.Either<string, string> {
  if (typeof input !== 'string') {
    return E.left(input === undefined ? 'is required' : 'must be a string');
  }
  return pipe(
    parseEmailAddress(input, domainToAscii),
    E.map((a) => mailboxKey(a, domainToAscii)),
    E.mapLeft((e) => e.message),
  );
}

const isReason = (value: unknown): value is SuppressionReason =>
  SUPPRESSION_REASONS.some((r) => r === value);

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const FIELDS = ['address', 'reason', 'detail'];

/** `POST /suppressions`'s body, checked whole: every problem at once, by field. */
function parseEntry(body: unknown, now: Date): E.Either<FieldErrors, Suppression> {
  if (!isRecord(body)) {
    return E.left({ body: 'must be an object with address, and reason or detail' });
  }
  const errors: Record<string, string> = {};
  for (const field of Object.keys(body)) {
    // Defined, not assigned: `errors.__proto__ = '…'` would be dropped without a word.
    if (!FIELDS.includes(field)) {
      Object.defineProperty(errors, field, {
        value: `is not a known field (use ${FIELDS.join(', ')})`,
        enumerable: true,
      });
    }
  }
  const address = keyOf(body.address);
  if (E.isLeft(address)) errors.address = address.left;
  const { reason = 'manual', detail } = body;
  if (!isReason(reason)) errors.reason = `must be one of ${SUPPRESSION_REASONS.join(', ')}`;
  if (detail !== undefined && typeof detail !== 'string') errors.detail = 'must be a string';
  else if (typeof detail === 'string' && [...detail].length > MAX_DETAIL_CHARS) {
    errors.detail = `must be at most ${MAX_DETAIL_CHARS} characters`;
  } else if (
    typeof detail === 'string' &&
    (detail.includes('\u0000') || LONE_SURROGATE.test(detail))
  ) {
    // PostgreSQL keeps neither: refused here, the client is told what to fix, not to retry.
    errors.detail = 'must be valid Unicode without NUL characters';
  }
  if (Object.keys(errors).length > 0 || E.isLeft(address) || !isReason(reason)) {
    return E.left(errors);
  }
  return E.right({
    address: address.right,
    reason,
    createdAt: now,
    ...(typeof detail === 'string' && detail !== '' ? { detail } : {}),
  });
}

/** Who asked, for the audit line: the key's name, or the signed-in operator's. */
function principalName(ctx: Context): string | undefined {
  const { principal }: { principal?: unknown } = ctx.state;
  return isRecord(principal) && typeof principal.name === 'string' ? principal.name : undefined;
}

/**
 * The suppression list over the API, for the `admin` scope: `GET /suppressions` (newest first,
 * `SUPPRESSIONS_PAGE_SIZE` a page), `POST /suppressions`, `DELETE /suppressions/{address}`.
 * Addresses are taken as a person types them and kept as mailbox keys, so `info@Bücher.de`
 * and `info@xn--bcher-kva.de` are one entry.
 *
 * With `csrf`, a browser's `GET /suppressions` (see `wantsAdminPage`) is the page, for a signed-in
 * operator: the entries a page at a time (`?cursor=`), an add form (`POST /suppressions/add`,
 * refused with the API's messages by field) and a remove button each (`GET
 * /suppressions/remove?address=` confirms, `POST /suppressions/remove` removes); each change
 * `303`s back with a notice (`?added=`, `?listed=`, `?removed=`, `?absent=`).
 */
export function mountSuppressionRoutes(router: Router, options: SuppressionRoutesOptions): void {
  const { suppressions, guards, log, now = () => new Date() } = options;

  const listSuppressions = async function listSuppressions(ctx: Context): Promise<void> {
    const unknown = Object.keys(ctx.query).filter((name) => name !== 'cursor');
    const cursor = ctx.query.cursor;
    if (unknown.length > 0 || (cursor !== undefined && typeof cursor !== 'string')) {
      const fields: Record<string, string> = {};
      for (const name of unknown) {
        Object.defineProperty(fields, name, {
          value: 'is not a known parameter (use cursor)',
          enumerable: true,
        });
      }
      if (cursor !== undefined && typeof cursor !== 'string') fields.cursor = 'must be given once';
      return sendProblem(ctx, invalid(fields));
    }
    const page = await suppressions.list(SUPPRESSIONS_PAGE_SIZE, cursor)();
    if (E.isLeft(page)) return sendProblem(ctx, listProblem(page.left));
    const body: SuppressionPageBody = {
      data: page.right.entries.map(asBody),
      next_cursor: page.right.nextCursor ?? null,
    };
    ctx.set('Cache-Control', 'no-store');
    ctx.body = body;
  };

  // A browser's GET is the page (a signed-in operator); everything else the API (an admin key).
  const pages = options.csrf === undefined ? undefined : suppressionPages(options, options.csrf);
  router.get(
    `${API_ROUTE}list-suppressions`,
    '/suppressions',
    ...adminListRoute(guards, pages?.show, listSuppressions),
  );
  if (pages !== undefined) {
    // Paths of their own: the API's POST /suppressions answers 415 to a form, as it always has.
    router.get('/suppressions/remove', answerAsPage(), guards.page('admin'), pages.confirmRemove);
    router.post('/suppressions/add', answerAsPage(), guards.page('admin'), pages.form, pages.add);
    router.post(
      '/suppressions/remove',
      answerAsPage(),
      guards.page('admin'),
      pages.form,
      pages.remove,
    );
  }

  router.post(
    `${API_ROUTE}add-suppression`,
    '/suppressions',
    guards.key('admin'),
    requireJson(),
    jsonBody(BODY_LIMIT_BYTES),
    async function addSuppression(ctx: Context): Promise<void> {
      const entry = parseEntry(ctx.request.body, now());
      if (E.isLeft(entry)) return sendProblem(ctx, invalid(entry.left));
      const added = await suppressions.add(entry.right)();
      if (E.isLeft(added)) {
        log.warn({ reason: added.left.reason }, 'Suppression not added');
        return sendProblem(ctx, storeDown(added.left.reason));
      }
      ctx.set('Cache-Control', 'no-store');
      if (!added.right) {
        // The first entry stands (its reason and time): the list has no look-up of one entry.
        ctx.status = 200;
        ctx.body = { address: entry.right.address };
        return;
      }
      log.info(
        {
          audit: 'suppression-added',
          address: entry.right.address,
          reason: entry.right.reason,
          by: principalName(ctx),
        },
        'Address added to the suppression list',
      );
      ctx.status = 201;
      ctx.body = asBody(entry.right);
    },
  );

  router.delete(
    `${API_ROUTE}remove-suppression`,
    '/suppressions/:address',
    guards.key('admin'),
    async function removeSuppression(ctx: Context): Promise<void> {
      const address = keyOf(ctx.params.address);
      if (E.isLeft(address)) return sendProblem(ctx, invalid({ address: address.left }));
      const removed = await suppressions.remove(address.right)();
      if (E.isLeft(removed)) {
        log.warn({ reason: removed.left.reason }, 'Suppression not removed');
        return sendProblem(ctx, storeDown(removed.left.reason));
      }
      if (!removed.right) return sendProblem(ctx, NOT_LISTED);
      log.info(
        { audit: 'suppression-removed', address: address.right, by: principalName(ctx) },
        'Address removed from the suppression list',
      );
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { address: address.right };
    },
  );
}

/** The page's handlers: the list, the add form, and the removal with its confirmation. */
interface SuppressionPages {
  readonly show: Middleware;
  readonly confirmRemove: Middleware;
  /** Reads a form and checks its CSRF token, for `add` and `remove`. */
  readonly form: Middleware;
  readonly add: Middleware;
  readonly remove: Middleware;
}

/** A query parameter given once, or undefined. */
const queryValue = (ctx: Context, name: string): string | undefined => {
  const value = ctx.query[name];
  return typeof value === 'string' ? value : undefined;
};

/** An address of a notice, shown only when it is a mailbox key (what the list keeps). */
const listedAddress = (raw: string | undefined): string | undefined => {
  if (raw === undefined) return undefined;
  const key = keyOf(raw);
  return E.isRight(key) && key.right === raw ? raw : undefined;
};

/** The sentence a 303 back to the list carries: `?added=`, `?listed=`, `?removed=`, `?absent=`. */
function suppressionNotice(ctx: Context): string | undefined {
  const notices: ReadonlyArray<[string, (address: string) => string]> = [
    ['added', (a) => `Added ${a} to the suppression list: no email is sent to it any more.`],
    ['listed', (a) => `${a} was on the suppression list already; its first entry stands.`],
    ['removed', (a) => `Removed ${a} from the suppression list: email may be sent to it again.`],
    ['absent', (a) => `${a} was not on the suppression list (it may have been removed already).`],
  ];
  for (const [name, words] of notices) {
    const address = listedAddress(queryValue(ctx, name));
    if (address !== undefined) return words(address);
  }
  return undefined;
}

const isFormField = (name: string): name is SuppressionField =>
  name === 'address' || name === 'reason' || name === 'detail';

/**
 * The API's field errors as the form's sentences: the same messages, each after its field's
 * label ("Address must be …"); a field the form does not have is a problem of the form.
 */
function formErrors(fields: FieldErrors): SuppressionForm['errors'] {
  const errors: Partial<Record<SuppressionField | 'form', string>> = {};
  for (const [name, message] of Object.entries(fields)) {
    if (isFormField(name)) errors[name] = `${SUPPRESSION_LABELS[name]} ${message}.`;
    else errors.form = `${errors.form ?? ''}${errors.form ? ' ' : ''}${name} ${message}.`;
  }
  return errors;
}

function suppressionPages(options: SuppressionRoutesOptions, csrf: Csrf): SuppressionPages {
  const { suppressions, guards, log, now = () => new Date() } = options;
  const back = { href: '/suppressions', label: 'Back to the suppression list' };
  const problem = problemPages(guards, csrf, 'suppressions', back);

  /**
   * The list's page at `cursor` with `extra` (a notice, a refused form); a 503 page when the
   * list does not answer.
   */
  async function render(
    ctx: Context,
    status: number,
    cursor: string | undefined,
    extra: Partial<Pick<SuppressionsView, 'notice' | 'form'>> = {},
  ): Promise<void> {
    const page = await suppressions.list(SUPPRESSIONS_PAGE_SIZE, cursor)();
    if (E.isLeft(page)) {
      if (page.left._tag !== 'InvalidCursor') {
        log.warn({ reason: page.left.reason }, 'Suppression list not read');
      }
      return problem(ctx, listProblem(page.left));
    }
    const { csrfToken, account } = formContext(ctx, guards, csrf);
    const view: SuppressionsView = {
      entries: page.right.entries,
      paged: cursor !== undefined,
      ...(page.right.nextCursor !== undefined ? { nextCursor: page.right.nextCursor } : {}),
      ...extra,
      csrfToken,
      ...(account ? { account } : {}),
    };
    sendPage(ctx, status, suppressionsPage(view));
  }

  return {
    show: async function showSuppressions(ctx: Context): Promise<void> {
      const cursor = queryValue(ctx, 'cursor');
      const notice = suppressionNotice(ctx);
      await render(ctx, 200, cursor === '' ? undefined : cursor, notice ? { notice } : {});
    },

    confirmRemove: async function confirmRemoval(ctx: Context): Promise<void> {
      const address = keyOf(queryValue(ctx, 'address'));
      if (E.isLeft(address)) {
        return problem(ctx, {
          status: 400,
          code: 'invalid_request',
          title: 'Not an address',
          message: `The address to remove ${address.left}.`,
        });
      }
      const { csrfToken, account } = formContext(ctx, guards, csrf);
      sendPage(
        ctx,
        200,
        confirmationPage(removeConfirmation(address.right), 'suppressions', csrfToken, account),
      );
    },

    form: readForm({
      csrf,
      guards,
      section: 'suppressions',
      back,
      onRefused: (reason) => log.warn({ reason }, 'Suppression form refused: CSRF check failed'),
    }),

    add: async function addFromForm(ctx: Context): Promise<void> {
      const form = formOf(ctx);
      const values = {
        address: field(form, 'address') ?? '',
        reason: field(form, 'reason') ?? 'manual',
        detail: field(form, 'detail') ?? '',
      };
      const entry = parseEntry(values, now());
      if (E.isLeft(entry)) {
        return render(ctx, 400, undefined, {
          form: { values, errors: formErrors(entry.left) },
        });
      }
      const added = await suppressions.add(entry.right)();
      if (E.isLeft(added)) {
        log.warn({ reason: added.left.reason }, 'Suppression not added');
        return problem(ctx, storeDown(added.left.reason));
      }
      const address = encodeURIComponent(entry.right.address);
      if (!added.right) return seeOther(ctx, `/suppressions?listed=${address}`);
      log.info(
        {
          audit: 'suppression-added',
          address: entry.right.address,
          reason: entry.right.reason,
          by: principalName(ctx),
        },
        'Address added to the suppression list',
      );
      seeOther(ctx, `/suppressions?added=${address}`);
    },

    remove: async function removeFromForm(ctx: Context): Promise<void> {
      const form = formOf(ctx);
      const address = keyOf(field(form, 'address'));
      if (E.isLeft(address)) {
        return problem(ctx, {
          status: 400,
          code: 'invalid_request',
          title: 'Not an address',
          message: `The address to remove ${address.left}.`,
        });
      }
      const key = encodeURIComponent(address.right);
      // Not confirmed (a hand-made post): the confirmation first.
      if (field(form, 'confirm') !== 'yes')
        return seeOther(ctx, `/suppressions/remove?address=${key}`);
      const removed = await suppressions.remove(address.right)();
      if (E.isLeft(removed)) {
        log.warn({ reason: removed.left.reason }, 'Suppression not removed');
        return problem(ctx, storeDown(removed.left.reason));
      }
      if (!removed.right) return seeOther(ctx, `/suppressions?absent=${key}`);
      log.info(
        { audit: 'suppression-removed', address: address.right, by: principalName(ctx) },
        'Address removed from the suppression list',
      );
      seeOther(ctx, `/suppressions?removed=${key}`);
    },
  };
}
