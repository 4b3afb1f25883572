import { pipe } from 'fp-ts/lib/function.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import type { SuppressionList } from '../application/ports/suppression-list.js';
import type { Metrics } from '../adapters/metrics/metrics.js';

/**
 * `list`, counting in `metrics` (`email_suppressions_added_total{reason}`) every address this
 * process adds that was not on the list yet. Counted here, around the port, so that every path
 * that adds (a provider's report, `POST /suppressions`) is counted once and the same way; an add
 * that keeps an earlier entry (`add` answered false) or fails (`StoreUnavailable`) is not
 * counted. The other methods are the list's own.
 */
export function countingSuppressionList(list: SuppressionList, metrics: Metrics): SuppressionList {
  return {
    add: (entry) =>
      pipe(
        list.add(entry),
        TE.tap((added) => {
          if (added) metrics.suppressionAdded(entry.reason);
          return TE.right(undefined);
        }),
      ),
    remove: (address) => list.remove(address),
    suppressed: (addresses) => list.suppressed(addresses),
    list: (limit, cursor) => list.list(limit, cursor),
  };
}
