import { expect } from 'chai';
import * as E from 'fp-ts/lib/Either.js';
import type {
  Suppression,
  SuppressionReason,
} from '../../src/application/ports/suppression-list.js';
import { InMemorySuppressionList } from '../../src/adapters/memory/in-memory-suppression-list.js';
import { createMetrics } from '../../src/adapters/metrics/metrics.js';
import { countingSuppressionList } from '../../src/main/counted-suppressions.js';
import { T0 } from '../support/builders.js';
import { switchable } from '../support/fakes.js';

const entry = (address: string, reason: SuppressionReason): Suppression => ({
  address,
  reason,
  createdAt: T0,
});

/** `email_suppressions_added_total` by reason, as /metrics shows it. */
async function addedByReason(metrics: ReturnType<typeof createMetrics>) {
  const { body } = await metrics.render();
  const counts: Record<string, number> = {};
  for (const m of body.matchAll(/^email_suppressions_added_total\{([^}]*)\} (\d+)$/gm)) {
    const reason = /reason="([^"]*)"/.exec(m[1] ?? '')?.[1];
    if (reason !== undefined) counts[reason] = Number(m[2]);
  }
  return counts;
}

describe('countingSuppressionList (email_suppressions_added_total)', () => {
  it('shows every reason at 0 before anything is added', async () => {
    const metrics = createMetrics('test');
    expect(await addedByReason(metrics)).to.deep.equal({
      bounce: 0,
      complaint: 0,
      unsubscribe: 0,
      manual: 0,
    });
  });

  it('counts each address that was new, by its reason, and not one that was listed', async () => {
    const metrics = createMetrics('test');
    const list = countingSuppressionList(new InMemorySuppressionList(), metrics);
    const answers = [];
    for (const e of [
      entry('gone@example.org', 'bounce'),
      entry('spam@example.org', 'complaint'),
      entry('left@example.org', 'unsubscribe'),
      entry('asked@example.org', 'manual'),
      entry('other@example.org', 'bounce'),
      // Listed already: the first entry stands, and nothing is counted.
      entry('gone@example.org', 'complaint'),
    ]) {
      answers.push(await list.add(e)());
    }
    expect(answers).to.deep.equal([true, true, true, true, true, false].map(E.right));
    expect(await addedByReason(metrics)).to.deep.equal({
      bounce: 2,
      complaint: 1,
      unsubscribe: 1,
      manual: 1,
    });
    // Taken off and put back on: new again, so counted again.
    expect(await list.remove('asked@example.org')()).to.deep.equal(E.right(true));
    expect(await list.add(entry('asked@example.org', 'manual'))()).to.deep.equal(E.right(true));
    expect((await addedByReason(metrics)).manual).to.equal(2);
  });

  it('counts nothing when the list did not answer', async () => {
    const metrics = createMetrics('test');
    const inner = switchable(new InMemorySuppressionList());
    const list = countingSuppressionList(inner.store, metrics);
    inner.down = true;
    const answer = await list.add(entry('gone@example.org', 'bounce'))();
    expect(E.isLeft(answer) && answer.left._tag).to.equal('StoreUnavailable');
    expect((await addedByReason(metrics)).bounce).to.equal(0);
  });

  it('passes the other methods through to the list', async () => {
    const list = countingSuppressionList(new InMemorySuppressionList(), createMetrics('test'));
    await list.add(entry('gone@example.org', 'bounce'))();
    const suppressed = await list.suppressed(['gone@example.org', 'ada@example.org'])();
    expect(E.isRight(suppressed) && [...suppressed.right]).to.deep.equal(['gone@example.org']);
    const page = await list.list(10)();
    expect(E.isRight(page) && page.right.entries.map((e) => e.address)).to.deep.equal([
      'gone@example.org',
    ]);
  });
});
