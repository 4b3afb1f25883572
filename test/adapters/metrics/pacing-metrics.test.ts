import { expect } from 'chai';
import { createMetrics } from '../../../src/adapters/metrics/metrics.js';

describe('Metrics: pacing', () => {
  it('shows waits, tokens, throttles and pauses by transport', async () => {
    const metrics = createMetrics('worker');
    metrics.pacingWaited('mailgun', 250);
    metrics.pacingWaited('mailgun', 1500);
    metrics.pacingTokens('mailgun', 7);
    metrics.transportThrottled('smtp');
    metrics.transportPaused('smtp', new Date('2026-11-28T10:00:05.000Z'));
    const { body } = await metrics.render();
    const line = (name: string) =>
      body.split('\n').find((l) => l.startsWith(name) && !l.startsWith(`${name}_`)) ?? '';
    expect(line('email_pacing_waits_total')).to.match(/transport="mailgun".*\} 2$/);
    expect(body).to.match(/email_pacing_wait_seconds_sum\{[^}]*\} 1\.75/);
    expect(body).to.match(/email_pacing_wait_seconds_bucket\{le="0\.25",[^}]*\} 1/);
    expect(line('email_pacing_tokens')).to.match(/transport="mailgun".*\} 7$/);
    expect(line('email_throttled_total')).to.match(/transport="smtp".*\} 1$/);
    expect(line('email_transport_paused_until_seconds')).to.match(
      new RegExp(`transport="smtp".*\\} ${Date.parse('2026-11-28T10:00:05Z') / 1000}$`),
    );
  });
});
