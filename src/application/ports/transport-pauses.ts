import type { TaskEither } from 'fp-ts/lib/TaskEither.js';
import type { StoreUnavailable } from './email-log.js';

/**
 * Transports a provider throttled (Mailgun's 429, an SMTP 421 about a rate), paused for every
 * worker until the provider's Retry-After: one worker hearing "too many" stops them all from
 * asking again meanwhile, so none burns an attempt (or the provider's patience) on a refusal it
 * could have foreseen. Kept where every worker sees it (PostgreSQL); one entry per transport.
 *
 * Times are the workers' wall clocks (`Clock.now`): the one that paused says until when, the
 * others compare with their own clock, so a skew between workers lengthens or shortens a pause
 * by that skew.
 */
export interface TransportPauses {
  /**
   * Pauses `transport` (`mailgun`, `smtp`) until `until`. A pause that ends later stands: an
   * earlier end never shortens it, whatever the order two workers record them in.
   */
  pause(transport: string, until: Date): TaskEither<StoreUnavailable, void>;
  /**
   * When the latest pause of `transport` ends, or undefined when it was never paused. The end may
   * be past: whether it still holds is the caller's to say, against its clock.
   */
  pausedUntil(transport: string): TaskEither<StoreUnavailable, Date | undefined>;
}
