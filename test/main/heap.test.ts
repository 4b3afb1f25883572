// V8's old-generation growth the roles run with (src/main/heap.ts): the same allocations, with
// and without it, in child processes of their own (a V8 flag stays set for the whole process).
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEV_NODE_OPTIONS } from '../../src/main/heap.js';

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

describe('DEV_NODE_OPTIONS', function () {
  this.timeout(60_000);

  it('are the options `npm start` runs `email dev` with', () => {
    // Compiled, this file is dist/test/main/heap.test.js: the repository root is three up.
    const pkg = JSON.parse(
      readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
    ) as {
      scripts: { start: string };
    };
    expect(pkg.scripts.start).to.match(/&& node (.*) dist\/src\/main\/cli\.js dev$/);
    const given = /&& node (.*) dist\/src\/main\/cli\.js dev$/.exec(pkg.scripts.start)![1]!;
    expect(given.split(' ')).to.deep.equal([...DEV_NODE_OPTIONS]);
  });

  it('cap the young generation at half what V8 gives it on a machine of 4 GB or more', async () => {
    // Short-lived objects allocated fast: V8 grows its semi-spaces to their maximum.
    const young = `
      import v8 from 'node:v8';
      const size = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
      let peak = 0;
      let keep;
      for (let i = 0; i < 3_000_000; i += 1) {
        keep = { i, s: 'x-' + i };
        if (i % 10_000 === 0) peak = Math.max(peak, size());
      }
      console.log(JSON.stringify({ peakMiB: peak / 2 ** 20, last: keep.i }));
    `;
    const peak = async (nodeArgs: readonly string[]) => {
      const { stdout } = await promisify(execFile)(process.execPath, [
        ...nodeArgs,
        '--input-type=module',
        '-e',
        young,
      ]);
      return (JSON.parse(stdout) as { peakMiB: number }).peakMiB;
    };
    // V8's own maximum, 16 MB a semi-space, where its heap limit is over about 1 GB (most
    // machines); on smaller ones V8 picks less by itself, and the option caps nothing (see
    // DEV_NODE_OPTIONS). Given explicitly, so that the test means the same on every machine.
    const v8Default = await peak(['--max-semi-space-size=16']);
    const capped = await peak(DEV_NODE_OPTIONS);
    expect(capped).to.be.at.most(16);
    expect(v8Default).to.be.above(capped * 1.5);
  });
});
