import { expect } from 'chai';
import { createMetrics } from '../../../src/adapters/metrics/metrics.js';

describe('Metrics: live page watchers', () => {
  const line = async (metrics: ReturnType<typeof createMetrics>) =>
    (await metrics.render()).body
      .split('\n')
      .find((l) => l.startsWith('email_live_page_watchers{'));

  it('shows the servers with a page open as last checked, and -1 while not known', async () => {
    const metrics = createMetrics('worker');
    let watchers: number | undefined;
    metrics.watchLivePages(() => watchers);
    expect(await line(metrics)).to.match(/\} -1$/);
    watchers = 0;
    expect(await line(metrics)).to.match(/\} 0$/);
    watchers = 2;
    expect(await line(metrics)).to.match(/\} 2$/);
  });

  it('is not there in a process that never checks (email dev)', async () => {
    expect(await line(createMetrics('dev'))).to.equal(undefined);
  });
});
