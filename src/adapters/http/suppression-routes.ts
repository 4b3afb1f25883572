import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import { pipe } from 'fp-ts/lib/function.js';
import type { Context } from 'koa';
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
import { requireJson, jsonBody } from './api-routes.js';
import type { Problem } from './errors.js';
import { API_ROUTE, RETRY_AFTER_SECONDS, sendProblem } from './errors.js';

export interface SuppressionRoutesOptions {
  readonly suppressions: SuppressionList;
  readonly guards: Guards;
  readonly log: Logger;
  /** When an entry is added; the system clock unless a test says otherwise. */
  readonly now?: () => Date;
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
 */
export function mountSuppressionRoutes(router: Router, options: SuppressionRoutesOptions): void {
  const { suppressions, guards, log, now = () => new Date() } = options;

  router.get(
    `${API_ROUTE}list-suppressions`,
    '/suppressions',
    guards.key('admin'),
    async function listSuppressions(ctx: Context): Promise<void> {
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
        if (cursor !== undefined && typeof cursor !== 'string')
          fields.cursor = 'must be given once';
        return sendProblem(ctx, invalid(fields));
      }
      const page = await suppressions.list(SUPPRESSIONS_PAGE_SIZE, cursor)();
      if (E.isLeft(page)) return sendProblem(ctx, storeDown(page.left.reason));
      const body: SuppressionPageBody = {
        data: page.right.entries.map(asBody),
        next_cursor: page.right.nextCursor ?? null,
      };
      ctx.set('Cache-Control', 'no-store');
      ctx.body = body;
    },
  );

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
