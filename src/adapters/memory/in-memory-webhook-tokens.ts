import * as TE from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from '../../application/ports/email-log.js';
import type { WebhookTokens } from '../../application/ports/webhook-tokens.js';
import { WEBHOOK_TOKEN_MEMORY_MS } from '../../application/ports/webhook-tokens.js';

/** Webhook tokens in this process only: for tests, and for a single process that keeps nothing. */
export class InMemoryWebhookTokens implements WebhookTokens {
  /** Token → when it was seen (ms). */
  private readonly seen = new Map<string, number>();

  remember(token: string, at: Date): TE.TaskEither<StoreUnavailable, boolean> {
    return TE.fromIO(() => {
      const cutoff = at.getTime() - WEBHOOK_TOKEN_MEMORY_MS;
      for (const [known, seenMs] of this.seen) if (seenMs < cutoff) this.seen.delete(known);
      if (this.seen.has(token)) return false;
      this.seen.set(token, at.getTime());
      return true;
    });
  }

  forget(token: string): TE.TaskEither<StoreUnavailable, void> {
    return TE.fromIO(() => {
      this.seen.delete(token);
    });
  }
}
