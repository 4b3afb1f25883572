import type Router from '@koa/router';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { Context } from 'koa';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { Logger } from '../../application/ports/system.js';
import type { EmailAddress } from '../../domain/email-address.js';
import type { AttachmentRef, EmailRequest } from '../../domain/email-request.js';
import { EmailId } from '../../domain/email-request.js';
import type { EmailStatus } from '../../domain/email-status.js';
import type { Guards } from './access.js';
import type { EmailPageSections, MessageView, OfferedActions } from './email-message.js';
import {
  actionsSection,
  doneBlock,
  doneNotice,
  messageSection,
  relations,
} from './email-message.js';
import { RETRY_AFTER_SECONDS, sendProblem } from './errors.js';
import { markup } from './html.js';

/**
 * Where an email's message comes from: its request as accepted (`EmailLog.request`), the bytes
 * of its files (`AttachmentStore.get`), and the sender of a request that names none.
 */
export interface StoredMessages {
  request(id: EmailId): TaskEither<StoreUnavailable, O.Option<EmailRequest>>;
  attachment(digest: string): TaskEither<StoreUnavailable, O.Option<Uint8Array>>;
  /** MAIL_FROM. */
  readonly defaultFrom: EmailAddress;
}

export interface MessageRoutesOptions {
  readonly messages: StoredMessages;
  readonly guards: Guards;
  readonly log: Logger;
}

/**
 * The policy of the html part's own document, whatever the page's: nothing may load or run but
 * the email's inline styles and images inlined as `data:` URIs (`cid:` is listed for the record:
 * no browser fetches it). `sandbox` gives the document an opaque origin with scripts, forms,
 * popups and top navigation off even when it is opened on its own, outside the page's frame, and
 * only our own pages may frame it. Remote images, fonts and styles (trackers among them) are
 * refused by `default-src 'none'`.
 */
export const MESSAGE_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  'img-src data: cid:',
  "style-src 'unsafe-inline'",
  "frame-ancestors 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  'sandbox',
].join('; ');

const NOT_FOUND = {
  status: 404,
  code: 'not_found',
  title: 'Email not found',
  message: 'No email with this id is known here.',
} as const;

const storeDown = (reason: string) => ({
  status: 503,
  code: 'store_unavailable',
  title: 'The message could not be read',
  message: `The message could not be read (${reason}). Try again in a few seconds.`,
  retryAfterSeconds: RETRY_AFTER_SECONDS,
});

/** `cid:` references in the html: the Content-ID, percent-encoded as RFC 2392 §2 writes it. */
const CID_REFERENCE = /\bcid:([^\s"'<>()\\]+)/gi;

const decodedCid = (raw: string): string => {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
};

/**
 * The media type of an inline image, type and subtype only (a parameter could carry a quote
 * into the attribute it is written in), or undefined for a file that is not an image.
 */
const imageType = (ref: AttachmentRef): string | undefined => {
  const type = (ref.contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  return /^image\/[a-z0-9!#$&^_.+-]+$/.test(type) ? type : undefined;
};

/**
 * The html with each `cid:` reference to an inline image of the email rewritten as a `data:`
 * URI of its bytes, so that the preview shows what a mail program shows; a reference to
 * anything else (no such file, not an image, a file that could not be read) is left as it is,
 * and shows as a broken image.
 */
export async function inlineImages(
  html: string,
  attachments: readonly AttachmentRef[],
  bytesOf: StoredMessages['attachment'],
): Promise<string> {
  const inline = new Map<string, AttachmentRef>();
  for (const ref of attachments) {
    if (ref.contentId !== undefined && imageType(ref) !== undefined) inline.set(ref.contentId, ref);
  }
  if (inline.size === 0) return html;
  const wanted = new Set<string>();
  for (const match of html.matchAll(CID_REFERENCE)) {
    const id = decodedCid(match[1] ?? '');
    if (inline.has(id)) wanted.add(id);
  }
  const uris = new Map<string, string>();
  for (const id of wanted) {
    const ref = inline.get(id);
    if (ref === undefined) continue;
    const bytes = await bytesOf(ref.digest)();
    if (E.isLeft(bytes) || O.isNone(bytes.right)) continue;
    const content = Buffer.from(
      bytes.right.value.buffer,
      bytes.right.value.byteOffset,
      bytes.right.value.byteLength,
    );
    uris.set(id, `data:${imageType(ref)};base64,${content.toString('base64')}`);
  }
  return html.replace(CID_REFERENCE, (whole, raw: string) => uris.get(decodedCid(raw)) ?? whole);
}

/**
 * `GET /emails/{id}/html`: the html part of the email, for the sandboxed frame on its page,
 * guarded as the page is. Its own headers: the CSP above instead of the pages', and framing by
 * our own pages allowed (`X-Frame-Options: SAMEORIGIN`, `frame-ancestors 'self'`) where every
 * other answer forbids it. 404 for an unknown email, one whose request is gone, or one without
 * an html part.
 */
export function mountMessageRoutes(router: Router, options: MessageRoutesOptions): void {
  const { messages, guards } = options;
  router.get('/emails/:id/html', guards.page('read'), async function htmlPart(ctx: Context) {
    const id: unknown = ctx.params.id;
    if (!EmailId.is(id)) return sendProblem(ctx, NOT_FOUND);
    const found = await messages.request(id)();
    if (E.isLeft(found)) return sendProblem(ctx, storeDown(found.left.reason));
    if (O.isNone(found.right)) return sendProblem(ctx, NOT_FOUND);
    const request = found.right.value;
    if (request.html === undefined) {
      return sendProblem(ctx, {
        ...NOT_FOUND,
        title: 'No HTML part',
        message: 'This email has no HTML part: its text part is on its page.',
      });
    }
    const html = await inlineImages(request.html, request.attachments ?? [], messages.attachment);
    ctx.set('Content-Security-Policy', MESSAGE_CONTENT_SECURITY_POLICY);
    ctx.set('X-Frame-Options', 'SAMEORIGIN');
    // A link in the email must not tell a site which email of ours it was in.
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Cross-Origin-Resource-Policy', 'same-origin');
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = html;
  });
}

export interface PageSectionsOptions {
  /** Without it, the page shows no message. */
  readonly messages?: StoredMessages;
  /** `GET /emails/{id}/raw` is served. */
  readonly raw: boolean;
  readonly offered: OfferedActions;
  readonly log: Logger;
}

/** What the email's page adds to `statusPage`, from the request, its status and the query. */
export type PageSections = (ctx: Context, status: EmailStatus) => Promise<EmailPageSections>;

/**
 * Builds the sections the email's page shows after its details and after its history (see
 * `EmailPageSections`): the links to and from a resend, the notice of an action just done (the
 * `done` query parameter its redirect carries: one of a fixed few, never echoed), the message,
 * and the actions.
 */
export function emailPageSections(options: PageSectionsOptions): PageSections {
  const { messages, raw, offered, log } = options;
  return async (ctx, status) => {
    let view: MessageView | undefined;
    if (messages !== undefined) {
      const found = await messages.request(status.id)();
      if (E.isLeft(found)) {
        log.warn({ emailId: status.id, reason: found.left.reason }, 'Could not read a message');
        view = { kind: 'unreadable' };
      } else {
        view = O.isSome(found.right)
          ? { kind: 'shown', request: found.right.value, defaultFrom: messages.defaultFrom, raw }
          : { kind: 'gone' };
      }
    }
    const message = markup`${relations(status)}${doneBlock(doneNotice(ctx.query.done))}${
      view !== undefined ? messageSection(status.id, view) : ''
    }`;
    return { message, actions: actionsSection(status, offered) };
  };
}
