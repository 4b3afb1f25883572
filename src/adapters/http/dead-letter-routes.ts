import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import type { Context, Middleware } from 'koa';
import type { DeadLetter, DeadLetterBox } from '../../application/ports/dead-letter-box.js';
import type { Logger } from '../../application/ports/system.js';
import type { FieldErrors } from '../../domain/email-request.js';
import { EmailId } from '../../domain/email-request.js';
import type { Guards } from './access.js';
import {
  answerAsPage,
  confirmationPage,
  counted,
  field,
  formContext,
  formOf,
  isFormPost,
  negotiate,
  readForm,
  problemPages,
  seeOther,
  sendPage,
  wantsAdminPage,
} from './admin-pages.js';
import { jsonBody, requireJson } from './api-routes.js';
import type { Csrf } from './csrf.js';
import type { ReasonKind } from './dead-letter-page.js';
import {
  DEAD_LETTERS_SCRIPT,
  MAX_FOLLOWED,
  REASON_KINDS,
  countByReason,
  deadLettersPage,
  isReasonKind,
  purgeConfirmation,
  reasonKind,
  replayAllConfirmation,
  replayOneConfirmation,
} from './dead-letter-page.js';
import type { Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';

/** What the dead-letter routes need. */
export interface DeadLetterRoutesOptions {
  /** RabbitMQ's dead queue (`email server`), or the embedded queue's table (`email dev`). */
  readonly deadLetters: DeadLetterBox;
  readonly guards: Guards;
  /** For the page's forms (replay, purge) and its sign-out button. */
  readonly csrf: Csrf;
  /** The audit lines: who replayed or purged how many. */
  readonly log: Logger;
}

/** A body of an id, a flag and a reason: a few hundred bytes. */
const BODY_LIMIT_BYTES = 4 * 1024;

/** A dead letter as the API shows it. */
export interface DeadLetterBody {
  /** The email's id (`unknown` for a letter that does not decode). */
  readonly id: string;
  readonly to: readonly string[];
  readonly subject: string;
  /** The worker's words: `permanent: …`, `out of attempts (8 of 8): …`, `malformed: …`. */
  readonly reason: string;
  /** `reason` sorted into one of `REASON_KINDS`, the filter of a replay. */
  readonly reason_kind: ReasonKind;
  /** Attempts of its last run (a replay starts again from 1). */
  readonly attempts: number;
  /** RFC 3339; empty when the letter does not say. */
  readonly failed_at: string;
}

/** `GET /dead-letters`: every letter in the queue's order (oldest first), and the counts. */
export interface DeadLetterListBody {
  readonly data: readonly DeadLetterBody[];
  readonly counts: {
    readonly total: number;
    /** Every kind of `REASON_KINDS`, zeros included. */
    readonly by_reason: Readonly<Record<ReasonKind, number>>;
  };
}

const asBody = (l: DeadLetter): DeadLetterBody => ({
  id: l.id,
  to: [...l.to],
  subject: l.subject,
  reason: l.reason,
  reason_kind: reasonKind(l.reason),
  attempts: l.attempts,
  failed_at: l.failedAt,
});

/** What a replay takes: one email's letter, or every letter (of one kind of reason). */
export type ReplaySelection =
  | { readonly kind: 'one'; readonly id: string }
  | { readonly kind: 'all'; readonly reason?: ReasonKind };

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Defined, not assigned: `fields.__proto__ = '…'` would be dropped without a word. */
const put = (fields: Record<string, string>, name: string, message: string): void => {
  Object.defineProperty(fields, name, { value: message, enumerable: true, writable: true });
};

const unknownFields = (body: Record<string, unknown>, known: readonly string[]) => {
  const fields: Record<string, string> = {};
  for (const name of Object.keys(body)) {
    if (!known.includes(name)) {
      put(fields, name, `is not a known field (use ${known.join(', ')})`);
    }
  }
  return fields;
};

/** A dead letter's id as given: visible ASCII, as a message id can be (RabbitMQ's too). */
const LETTER_ID = /^[\x21-\x7e]{1,200}$/;

const REASONS_TEXT = REASON_KINDS.join(', ');

/** `POST /dead-letters/replay`'s JSON body, checked whole: every problem at once, by field. */
export function parseReplay(body: unknown): E.Either<FieldErrors, ReplaySelection> {
  if (!isRecord(body)) {
    return E.left({
      body: 'must be an object: {"id": "<email id>"} for one letter, or {"all": true} (with "reason" to replay one kind) for every one',
    });
  }
  const fields = unknownFields(body, ['id', 'all', 'reason']);
  const { id, all, reason } = body;
  if (id !== undefined && (typeof id !== 'string' || !LETTER_ID.test(id))) {
    put(fields, 'id', 'must be the id of a dead letter (GET /dead-letters lists them)');
  }
  if (all !== undefined && all !== true) {
    put(fields, 'all', 'must be true, or left out');
  }
  if (reason !== undefined && !isReasonKind(reason)) {
    put(fields, 'reason', `must be one of ${REASONS_TEXT}`);
  }
  if (id !== undefined && all !== undefined) {
    put(
      fields,
      'all',
      'cannot be given with id: give either id (one letter) or all (every letter)',
    );
  } else if (id === undefined && all === undefined) {
    put(fields, 'id', 'give id (one letter) or "all": true (every letter)');
  }
  if (reason !== undefined && id !== undefined) {
    put(fields, 'reason', 'filters "all": give it with "all": true, not with id');
  }
  if (Object.keys(fields).length > 0) return E.left(fields);
  if (typeof id === 'string') return E.right({ kind: 'one', id });
  return E.right({ kind: 'all', ...(isReasonKind(reason) ? { reason } : {}) });
}

/** `POST /dead-letters/purge`'s JSON body: `{"confirm": true}` and nothing else. */
export function parsePurge(body: unknown): E.Either<FieldErrors, void> {
  if (!isRecord(body)) return E.left({ body: 'must be the object {"confirm": true}' });
  const fields = unknownFields(body, ['confirm']);
  if (body.confirm !== true) {
    put(
      fields,
      'confirm',
      'must be true: a purge deletes every dead letter for good (their emails stay failed), so it is never done by a body that does not ask for it',
    );
  }
  return Object.keys(fields).length > 0 ? E.left(fields) : E.right(undefined);
}

const invalid = (fields: FieldErrors): Problem => {
  const problems = Object.entries(fields).map(([name, message]) => `${name} ${message}`);
  return {
    status: 400,
    code: 'invalid_request',
    title: 'The request is not valid',
    message:
      problems.length === 1 && problems[0] !== undefined
        ? `${problems[0]}.`
        : 'Some fields are missing or not valid; see fields.',
    fields,
  };
};

const QUEUE_DOWN_TITLE = 'The dead letters are not available';

const queueDown = (reason: string, consequence: string): Problem => ({
  status: 503,
  code: 'queue_unavailable',
  title: QUEUE_DOWN_TITLE,
  message: `The dead-letter queue did not answer (${reason}). ${consequence} Try again in a few seconds.`,
  retryAfterSeconds: RETRY_AFTER_SECONDS,
});

const LIST_DOWN = 'Nothing was changed.';
const REPLAY_DOWN =
  'Letters replayed before it stopped are back on the queue; the others are still dead letters.';
const PURGE_DOWN = 'Nothing was purged.';

const noSuchLetter = (id: string): Problem => ({
  status: 404,
  code: 'not_found',
  title: 'No such dead letter',
  message: `No dead letter has the id ${id} (it may have been replayed or purged already). GET /dead-letters lists them.`,
});

/** Who asked, for the audit line: the key's name, or the signed-in operator's. */
function principalName(ctx: Context): string | undefined {
  const { principal }: { principal?: unknown } = ctx.state;
  return isRecord(principal) && typeof principal.name === 'string' ? principal.name : undefined;
}

/** A replay's outcome: how many letters went back, and the emails they were when known. */
interface Replayed {
  readonly replayed: number;
  readonly ids: readonly string[];
}

/** A queue that stopped answering part-way: what it said, and how many went back before. */
interface ReplayStopped {
  readonly reason: string;
  readonly replayed: number;
}

/**
 * Carries a selection out. One letter and every letter are one call of the box each; every
 * letter of one kind is a list, then a replay by id of each (the box selects by id or all; the
 * kind is this adapter's reading of the reason). An id names every letter of that email.
 */
async function replay(
  box: DeadLetterBox,
  selection: ReplaySelection,
  listed?: readonly DeadLetter[],
): Promise<E.Either<ReplayStopped, Replayed>> {
  if (selection.kind === 'one') {
    const done = await box.replay({ id: selection.id })();
    if (E.isLeft(done)) return E.left({ reason: done.left.reason, replayed: 0 });
    return E.right({ replayed: done.right, ids: done.right > 0 ? [selection.id] : [] });
  }
  const { reason } = selection;
  if (reason === undefined) {
    const done = await box.replay({ all: true })();
    if (E.isLeft(done)) return E.left({ reason: done.left.reason, replayed: 0 });
    return E.right({ replayed: done.right, ids: unique((listed ?? []).map((l) => l.id)) });
  }
  let all = listed;
  if (all === undefined) {
    const got = await box.list()();
    if (E.isLeft(got)) return E.left({ reason: got.left.reason, replayed: 0 });
    all = got.right;
  }
  const ids = unique(all.filter((l) => reasonKind(l.reason) === reason).map((l) => l.id));
  let replayed = 0;
  const done: string[] = [];
  for (const id of ids) {
    const one = await box.replay({ id })();
    if (E.isLeft(one)) return E.left({ reason: one.left.reason, replayed });
    replayed += one.right;
    if (one.right > 0) done.push(id);
  }
  return E.right({ replayed, ids: done });
}

const unique = (ids: readonly string[]): string[] => [...new Set(ids)];

/** The words of a `?replayed=` notice, or of `?purged=`, `?missing=`. */
function noticeOf(query: Context['query']): string | undefined {
  const one = (name: string): string | undefined => {
    const value = query[name];
    return typeof value === 'string' ? value : undefined;
  };
  const number = (name: string): number | undefined => {
    const value = one(name);
    return value !== undefined && /^\d{1,9}$/.test(value) ? Number(value) : undefined;
  };
  const replayed = number('replayed');
  if (replayed !== undefined) {
    return replayed === 0
      ? 'Nothing was replayed: there was no dead letter to replay.'
      : `Replayed ${counted(replayed, 'dead letter')}: ${replayed === 1 ? 'its email is' : 'their emails are'} being tried again.`;
  }
  const purged = number('purged');
  if (purged !== undefined) return `Purged ${counted(purged, 'dead letter')}.`;
  const missing = one('missing');
  if (missing !== undefined) {
    return EmailId.is(missing)
      ? `No dead letter has the id ${missing} any more: it may have been replayed or purged already.`
      : 'No dead letter has this id any more: it may have been replayed or purged already.';
  }
  return undefined;
}

/** The emails a page follows after a replay: `?follow=a,b`, real ids only, `MAX_FOLLOWED` at most. */
function followOf(query: Context['query']): string[] {
  const value = query.follow;
  if (typeof value !== 'string') return [];
  return unique(value.split(',').filter((id) => EmailId.is(id))).slice(0, MAX_FOLLOWED);
}

/** Where a replay of the page goes: back to the list, saying how many, following the emails. */
function afterReplay(done: Replayed): string {
  const follow = done.ids.filter((id) => EmailId.is(id));
  const followed =
    done.replayed > 0 && follow.length > 0 && follow.length <= MAX_FOLLOWED
      ? `&follow=${follow.map(encodeURIComponent).join(',')}`
      : '';
  return `/dead-letters?replayed=${done.replayed}${followed}`;
}

/**
 * The dead letters, as `email dead-letters list|replay|purge` has them, for the `admin` scope:
 *
 * - `GET /dead-letters`: JSON (`DeadLetterListBody`) for the API, a page for a browser (see
 *   `wantsAdminPage`), with `?replayed=`, `?purged=`, `?missing=` notices and `?follow=` ids.
 * - `POST /dead-letters/replay`: JSON `{"id": …}` or `{"all": true[, "reason": kind]}` →
 *   `{"replayed": n}` (404 for an id no letter has); a form of the page (CSRF, `confirm=yes`)
 *   → 303 back with a notice. `GET /dead-letters/replay?id=…|reason=…` is its confirmation.
 * - `POST /dead-letters/purge`: JSON `{"confirm": true}` (400 without it, so a stray POST purges
 *   nothing) → `{"purged": n}`; a form → 303. `GET /dead-letters/purge` is its confirmation.
 *
 * A queue that does not answer is 503 with Retry-After, a page or JSON as asked.
 */
export function mountDeadLetterRoutes(router: Router, options: DeadLetterRoutesOptions): void {
  const { deadLetters, guards, csrf, log } = options;
  const back = { href: '/dead-letters', label: 'Back to the dead letters' };

  const pageProblem = problemPages(guards, csrf, 'dead-letters', back);

  /** Every letter, or the page's 503 already sent. */
  const listForPage = async (ctx: Context): Promise<readonly DeadLetter[] | undefined> => {
    const letters = await deadLetters.list()();
    if (E.isRight(letters)) return letters.right;
    log.warn({ reason: letters.left.reason }, 'Dead letters not listed');
    pageProblem(ctx, queueDown(letters.left.reason, LIST_DOWN));
    return undefined;
  };

  const audit = (ctx: Context, what: string, fields: object, message: string): void =>
    log.info({ audit: what, ...fields, by: principalName(ctx) }, message);

  const replayed = (ctx: Context, selection: ReplaySelection, done: Replayed): void =>
    audit(
      ctx,
      'dead-letters-replayed',
      { selection, replayed: done.replayed },
      `Replayed ${counted(done.replayed, 'dead letter')}`,
    );

  async function showDeadLetters(ctx: Context): Promise<void> {
    const letters = await listForPage(ctx);
    if (letters === undefined) return;
    const { account } = formContext(ctx, guards, csrf);
    const notice = noticeOf(ctx.query);
    sendPage(
      ctx,
      200,
      deadLettersPage({
        letters,
        follow: followOf(ctx.query),
        ...(notice !== undefined ? { notice } : {}),
        ...(account ? { account } : {}),
      }),
    );
  }

  async function listDeadLetters(ctx: Context): Promise<void> {
    const unknown = Object.keys(ctx.query);
    if (unknown.length > 0) {
      const fields: Record<string, string> = {};
      for (const name of unknown) put(fields, name, 'is not a known parameter: there are none');
      return sendProblem(ctx, invalid(fields));
    }
    const letters = await deadLetters.list()();
    if (E.isLeft(letters)) {
      log.warn({ reason: letters.left.reason }, 'Dead letters not listed');
      return sendProblem(ctx, queueDown(letters.left.reason, LIST_DOWN));
    }
    const body: DeadLetterListBody = {
      data: letters.right.map(asBody),
      counts: { total: letters.right.length, by_reason: countByReason(letters.right) },
    };
    ctx.set('Cache-Control', 'no-store');
    ctx.body = body;
  }

  async function replayJson(ctx: Context): Promise<void> {
    const selection = parseReplay(ctx.request.body);
    if (E.isLeft(selection)) return sendProblem(ctx, invalid(selection.left));
    const done = await replay(deadLetters, selection.right);
    if (E.isLeft(done)) {
      log.warn({ ...done.left }, 'Dead letters not replayed, or not all');
      return sendProblem(ctx, queueDown(done.left.reason, REPLAY_DOWN));
    }
    if (selection.right.kind === 'one' && done.right.replayed === 0) {
      return sendProblem(ctx, noSuchLetter(selection.right.id));
    }
    replayed(ctx, selection.right, done.right);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { replayed: done.right.replayed };
  }

  async function purgeJson(ctx: Context): Promise<void> {
    const confirmed = parsePurge(ctx.request.body);
    if (E.isLeft(confirmed)) return sendProblem(ctx, invalid(confirmed.left));
    const purged = await deadLetters.purge()();
    if (E.isLeft(purged)) {
      log.warn({ reason: purged.left.reason }, 'Dead letters not purged');
      return sendProblem(ctx, queueDown(purged.left.reason, PURGE_DOWN));
    }
    audit(
      ctx,
      'dead-letters-purged',
      { purged: purged.right },
      `Purged ${counted(purged.right, 'dead letter')}`,
    );
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { purged: purged.right };
  }

  /** `?id=` or `?reason=` of a confirmation (or of a form that was not confirmed). */
  const selectionOf = (
    id: string | undefined,
    reason: string | undefined,
  ): E.Either<string, ReplaySelection> => {
    if (id !== undefined && id !== '') {
      return LETTER_ID.test(id)
        ? E.right({ kind: 'one', id })
        : E.left('This is not the id of a dead letter.');
    }
    if (reason === undefined || reason === '') return E.right({ kind: 'all' });
    return isReasonKind(reason)
      ? E.right({ kind: 'all', reason })
      : E.left(`There is no reason "${reason}": use one of ${REASONS_TEXT}.`);
  };

  const confirmUrl = (selection: ReplaySelection): string =>
    selection.kind === 'one'
      ? `/dead-letters/replay?id=${encodeURIComponent(selection.id)}`
      : `/dead-letters/replay${selection.reason !== undefined ? `?reason=${selection.reason}` : ''}`;

  async function confirmReplay(ctx: Context): Promise<void> {
    const one = (name: string): string | undefined => {
      const value = ctx.query[name];
      return typeof value === 'string' ? value : undefined;
    };
    const selection = selectionOf(one('id'), one('reason'));
    if (E.isLeft(selection)) {
      return pageProblem(ctx, {
        status: 400,
        code: 'invalid_request',
        title: 'Nothing to replay',
        message: selection.left,
      });
    }
    const letters = await listForPage(ctx);
    if (letters === undefined) return;
    const chosen = selection.right;
    const selected = letters.filter((l) =>
      chosen.kind === 'one'
        ? l.id === chosen.id
        : chosen.reason === undefined || reasonKind(l.reason) === chosen.reason,
    );
    if (selected.length === 0) {
      return pageProblem(
        ctx,
        chosen.kind === 'one'
          ? noSuchLetter(chosen.id)
          : {
              status: 404,
              code: 'not_found',
              title: 'Nothing to replay',
              message: 'There is no dead letter to replay (of this reason) any more.',
            },
      );
    }
    const { csrfToken, account } = formContext(ctx, guards, csrf);
    const confirmation =
      chosen.kind === 'one'
        ? replayOneConfirmation(selected)
        : replayAllConfirmation(selected.length, chosen.reason);
    sendPage(ctx, 200, confirmationPage(confirmation, 'dead-letters', csrfToken, account));
  }

  async function confirmPurge(ctx: Context): Promise<void> {
    const letters = await listForPage(ctx);
    if (letters === undefined) return;
    if (letters.length === 0) {
      return pageProblem(ctx, {
        status: 404,
        code: 'not_found',
        title: 'Nothing to purge',
        message: 'There is no dead letter to purge.',
      });
    }
    const { csrfToken, account } = formContext(ctx, guards, csrf);
    sendPage(
      ctx,
      200,
      confirmationPage(purgeConfirmation(letters.length), 'dead-letters', csrfToken, account),
    );
  }

  async function replayForm(ctx: Context): Promise<void> {
    const form = formOf(ctx);
    const all = field(form, 'all') === 'yes';
    const id = field(form, 'id');
    // One letter and all of them at once is no form of ours: replaying all would be the wrong
    // guess for a post that named one (the JSON route refuses the same).
    if (all && id !== undefined && id !== '') {
      return pageProblem(ctx, {
        status: 400,
        code: 'invalid_request',
        title: 'Nothing to replay',
        message:
          'The form named one dead letter and all of them: open the dead letters again and press Replay on one, or Replay all.',
      });
    }
    const selection = selectionOf(all ? undefined : id, field(form, 'reason'));
    if (E.isLeft(selection) || (!all && selection.right.kind === 'all')) {
      return pageProblem(ctx, {
        status: 400,
        code: 'invalid_request',
        title: 'Nothing to replay',
        message: E.isLeft(selection)
          ? selection.left
          : 'The form named no dead letter: open the dead letters again and press Replay on one.',
      });
    }
    // Not confirmed (a hand-made post, or a form of an older page): the confirmation first.
    if (field(form, 'confirm') !== 'yes') return seeOther(ctx, confirmUrl(selection.right));
    let listed: readonly DeadLetter[] | undefined;
    if (selection.right.kind === 'all') {
      // Which emails the page then follows; a filtered replay needs the list anyway.
      listed = await listForPage(ctx);
      if (listed === undefined) return;
    }
    const done = await replay(deadLetters, selection.right, listed);
    if (E.isLeft(done)) {
      log.warn({ ...done.left }, 'Dead letters not replayed, or not all');
      return pageProblem(ctx, queueDown(done.left.reason, REPLAY_DOWN));
    }
    const chosen = selection.right;
    if (chosen.kind === 'one' && done.right.replayed === 0) {
      return seeOther(ctx, `/dead-letters?missing=${encodeURIComponent(chosen.id)}`);
    }
    replayed(ctx, chosen, done.right);
    seeOther(ctx, afterReplay(done.right));
  }

  async function purgeForm(ctx: Context): Promise<void> {
    if (field(formOf(ctx), 'confirm') !== 'yes') return seeOther(ctx, '/dead-letters/purge');
    const purged = await deadLetters.purge()();
    if (E.isLeft(purged)) {
      log.warn({ reason: purged.left.reason }, 'Dead letters not purged');
      return pageProblem(ctx, queueDown(purged.left.reason, PURGE_DOWN));
    }
    audit(
      ctx,
      'dead-letters-purged',
      { purged: purged.right },
      `Purged ${counted(purged.right, 'dead letter')}`,
    );
    seeOther(ctx, `/dead-letters?purged=${purged.right}`);
  }

  const page = guards.page('admin');
  const form: Middleware = readForm({
    csrf,
    guards,
    section: 'dead-letters',
    back,
    onRefused: (reason) => log.warn({ reason }, 'Dead-letter form refused: CSRF check failed'),
  });

  router.get(
    `${API_ROUTE}list-dead-letters`,
    '/dead-letters',
    negotiate(wantsAdminPage, [page, showDeadLetters], [guards.key('admin'), listDeadLetters]),
  );
  router.get('/dead-letters/replay', answerAsPage(), page, confirmReplay);
  router.get('/dead-letters/purge', answerAsPage(), page, confirmPurge);
  router.post(
    `${API_ROUTE}replay-dead-letters`,
    '/dead-letters/replay',
    negotiate(
      isFormPost,
      [page, form, replayForm],
      [guards.key('admin'), requireJson(), jsonBody(BODY_LIMIT_BYTES), replayJson],
    ),
  );
  router.post(
    `${API_ROUTE}purge-dead-letters`,
    '/dead-letters/purge',
    negotiate(
      isFormPost,
      [page, form, purgeForm],
      [guards.key('admin'), requireJson(), jsonBody(BODY_LIMIT_BYTES), purgeJson],
    ),
  );
  router.get('/static/dead-letters.js', async function serveDeadLettersScript(ctx): Promise<void> {
    ctx.type = 'application/javascript; charset=utf-8';
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = DEAD_LETTERS_SCRIPT;
  });
}
