// V8's old-generation growth the roles run with (src/main/heap.ts): the same allocations, with
// and without it, in child processes of their own (a V8 flag stays set for the whole process).
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const HEAP = new URL('../../src/main/heap.js', import.meta.url).href;

/**
 * A program whose short-lived objects live long enough to be promoted (400 000 of them in a
 * ring, 40 MB), next to 10 MB that stay alive; it prints the largest old space it saw, in MiB.
 */
const program = (limit: boolean) => `
  import v8 from 'node:v8';
  import { limitHeapGrowth } from '${HEAP}';
  if (${limit}) limitHeapGrowth();
  const old = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_size;
  const live = Array.from({ length: 100_000 }, (_, i) => ({ i, s: 'live-' + i }));
  const ring = new Array(400_000);
  let peak = 0;
  for (let i = 0; i < 4_000_000; i += 1) {
    ring[i % ring.length] = { i, s: 'x-' + i };
    if (i % 10_000 === 0) peak = Math.max(peak, old());
  }
  console.log(JSON.stringify({ peakMiB: peak / 2 ** 20, kept: live.length + ring.length }));
`;

async function peakOldSpace(limit: boolean, nodeArgs: string[] = []): Promise<number> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...nodeArgs, '--input-type=module', '-e', program(limit)],
    { cwd: fileURLToPath(new URL('.', import.meta.url)) },
  );
  return (JSON.parse(stdout) as { peakMiB: number }).peakMiB;
}

describe('limitHeapGrowth', function () {
  this.timeout(120_000);

  it('keeps the old generation near what is alive, where V8 alone lets it grow a few times over', async () => {
    const unlimited = await peakOldSpace(false);
    const limited = await peakOldSpace(true);
    // About 50 MB stay alive at any time; V8 alone went past 300 MB here, limited about 120.
    expect(limited).to.be.below(unlimited * 0.6);
  });

  it('leaves a growth given on the node command line as it is', async () => {
    const limited = await peakOldSpace(true);
    const given = await peakOldSpace(true, ['--heap-growing-percent=300']);
    expect(given).to.be.above(limited * 1.5);
  });
});
