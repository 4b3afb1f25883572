import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type { Task } from 'fp-ts/lib/Task.js';
import type { AttachmentStore } from '../../application/ports/attachment-store.js';
import type { EmailSender } from '../../application/ports/email-sender.js';
import type { Logger } from '../../application/ports/system.js';
import type { DeliveryOutcome } from '../../domain/delivery.js';
import { permanent, publicText, sent, transient } from '../../domain/delivery.js';
import type { EmailAddress } from '../../domain/email-address.js';
import type { EmailRequest } from '../../domain/email-request.js';
import { attachmentsOutcome, composeMessage, messageIdOf } from '../mime/mime-message.js';

export interface OutboxOptions {
  readonly dir: string;
  /** The service's MAIL_FROM, for a request without its own `from`. */
  readonly from: EmailAddress;
  readonly log: Logger;
  /** Where attachment bytes are; without it, an email with attachments is not written. */
  readonly attachments?: AttachmentStore;
}

/**
 * Writes each email as `{dir}/{id}.eml`: the default transport, for trying the service without
 * an account. The file holds exactly `buildRawMessage`'s octets, what SMTP would send. The write
 * is atomic (temp file, fsync, rename), so a reader never sees half a file and a second send of
 * the same id replaces the first in one step.
 *
 * Every file-system error is `transient`, ENOSPC and EACCES included: none depends on the email
 * (the same message is written fine once the disk is freed or the permission fixed), and
 * `permanent` would dead-letter every email during a misconfiguration, while retries give the
 * operator until MAX_ATTEMPTS to fix it. So is an attachment that cannot be loaded. Only a
 * message that cannot be composed is permanent, since composing it again gives the same result.
 *
 * Reasons and the provider id are public (see `DeliveryOutcome`): a sent email is known by its
 * Message-ID, a failed write by its error code; the folder, the path and OUTBOX_DIR are for the
 * worker's log, in the hint.
 */
export class OutboxEmailSender implements EmailSender {
  readonly name = 'outbox';
  private readonly dir: string;
  /** Created once, not per send; forgotten after a failed write, so a removed dir comes back. */
  private dirReady: Promise<unknown> | undefined;

  constructor(private readonly options: OutboxOptions) {
    this.dir = resolve(options.dir);
  }

  send(request: EmailRequest): Task<DeliveryOutcome> {
    return async () => {
      const composed = await composeMessage(this.options.attachments, request, this.options.from)();
      if (E.isLeft(composed)) {
        const failure = composed.left;
        if (failure._tag !== 'Uncomposable') return attachmentsOutcome(failure);
        const said = `could not compose the message: ${describe(failure.error)}`;
        const shown = publicText(said, [this.dir]);
        return permanent(shown, shown === said ? undefined : said);
      }
      const message = composed.right;
      const path = join(this.dir, `${request.id}.eml`);
      try {
        await this.writeAtomically(path, message);
      } catch (error) {
        this.dirReady = undefined;
        const code = codeOf(error);
        const hint = `could not write ${path}: ${describe(error)}; check OUTBOX_DIR exists and is writable`;
        this.options.log.error(
          { emailId: request.id, dir: this.dir, code },
          `Outbox write failed: ${hint}`,
        );
        return transient(
          `could not write the message to the outbox (${code ?? 'error'})`,
          undefined,
          hint,
        );
      }
      return sent(messageIdOf(request, this.options.from), `written to ${path}`);
    };
  }

  private async writeAtomically(path: string, content: Buffer): Promise<void> {
    this.dirReady ??= mkdir(this.dir, { recursive: true });
    await this.dirReady;
    // Same directory as the target, so rename is atomic (never across file systems).
    const temp = join(this.dir, `.${randomBytes(6).toString('hex')}.eml.tmp`);
    try {
      const file = await open(temp, 'w', 0o644);
      try {
        await file.writeFile(content);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw error;
    }
    await this.syncDirectory();
  }

  /** Makes the rename itself durable; some platforms cannot fsync a directory, which is fine. */
  private async syncDirectory(): Promise<void> {
    const handle = await open(this.dir, 'r').catch(() => undefined);
    if (!handle) return;
    await handle.sync().catch(() => undefined);
    await handle.close().catch(() => undefined);
  }
}

const codeOf = (error: unknown): string | undefined =>
  typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;

const describe = (error: unknown): string => {
  const code = codeOf(error);
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.startsWith(code) ? `${code}: ${message}` : message;
};
