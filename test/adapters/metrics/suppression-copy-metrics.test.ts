import { expect } from 'chai';
import { createMetrics } from '../../../src/adapters/metrics/metrics.js';

describe('Metrics: the suppression list in memory', () => {
  const line = async (metrics: ReturnType<typeof createMetrics>) =>
    (await metrics.render()).body
      .split('\n')
      .find((l) => l.startsWith('email_suppression_list_cached_addresses{'));

  it('shows the addresses of the copy on each scrape, and -1 while there is none', async () => {
    const metrics = createMetrics('server');
    let cached: number | undefined;
    metrics.watchSuppressionCopy(() => cached);
    expect(await line(metrics)).to.equal(
      'email_suppression_list_cached_addresses{role="server"} -1',
    );
    cached = 0;
    expect(await line(metrics)).to.match(/\} 0$/);
    cached = 12;
    expect(await line(metrics)).to.match(/\} 12$/);
    cached = undefined; // the copy was dropped: look-ups ask PostgreSQL again
    expect(await line(metrics)).to.match(/\} -1$/);
  });

  it('is not there in a process that keeps no copy (the worker, email dev)', async () => {
    expect(await line(createMetrics('worker'))).to.equal(undefined);
  });
});
