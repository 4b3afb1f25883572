import { setFlagsFromString } from 'node:v8';

/**
 * How far V8 lets the old generation grow past what survived the last full collection before
 * it collects again, in percent. V8's own factor goes up to 4 (300 %) for a small heap: under
 * load `email server` held 110 MB of old space for 35 MB alive, all of it resident. At 20 % the
 * same load peaked at 42 MB of old space (RSS 216 → 142 MiB under the bench's accept load), with
 * no difference in CPU per request or per email that could be told from noise here; a full
 * collection of a heap this small takes a few milliseconds, mostly on V8's helper thread.
 */
export const HEAP_GROWING_PERCENT = 20;

/**
 * Sets V8's `--heap-growing-percent` to HEAP_GROWING_PERCENT for the rest of this process, for
 * the long-running roles. The flag is read at each full collection, so setting it at run time
 * takes effect from the next one. A value given on the node command line
 * (`node --heap-growing-percent=N dist/src/main/cli.js …`) is left as it is.
 */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((arg) => arg.startsWith('--heap-growing-percent'))) return;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/**
 * The node options `npm start` runs `email dev` with (package.json's `start` script; the bench
 * starts `email dev` with the same ones), as arguments before the script:
 *
 * - `--max-semi-space-size=8`: each of V8's two young-generation semi-spaces grows to 8 MB at
 *   most instead of 16. Under load both are touched, so this is 16 MB less resident. Measured
 *   here on `email dev` under the bench's accept load (1000 requests at 16, then at 64 in
 *   flight): peak RSS 228–232 → 209–210 MiB, CPU per request +2 to +8 % (more, shorter
 *   scavenges). V8 sizes the young generation when the process starts, so unlike
 *   `--heap-growing-percent` this cannot be set from `limitHeapGrowth`; `email server` and
 *   `email worker` keep V8's default (more CPU matters more there), and an operator who prefers
 *   memory can give the same option in `NODE_OPTIONS`. V8 picks its own maximum from its heap
 *   limit, which Node sets from the machine's (or the container's) memory: 16 MB where that
 *   limit is over about 1 GB, less below (8 MB at 1 GB, 4 MB at 512 MB, 1 MB at 256 MB). With
 *   about 4 GB of memory or less, this option saves nothing, and with less it allows more than
 *   V8 would have taken.
 */
export const DEV_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=8'];
