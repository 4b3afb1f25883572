import { PGlite } from '@electric-sql/pglite';
import { setFlagsFromString } from 'node:v8';

/**
 * PostgreSQL settings the embedded engine runs with, on top of PGlite's own start parameters.
 * PostgreSQL's defaults size its caches for a server of its own; here they are allocated inside
 * the process's WASM memory, which never shrinks, so each is measured against what `email dev`
 * needs (a few thousand emails, one connection):
 *
 * - `shared_buffers` 8 MB, not 128 MB: the page cache filled up to its size as the tables grew
 *   (RSS +100 MB after a few thousand emails at 128 MB). Pages it does not hold are read back
 *   through the data folder's files, which the operating system caches, as PostgreSQL itself
 *   relies on. At 8 MB against 16 MB, `email dev` under the bench's accept load peaked about
 *   9 MB lower with no difference in CPU per request that could be told from noise.
 * - `maintenance_work_mem` 16 MB, not 64 MB: used by CREATE INDEX in the migrations, on tables
 *   that are small on a development machine.
 * - `temp_buffers` 1 MB, not 8 MB: no statement here uses temporary tables.
 */
export const ENGINE_SETTINGS: readonly string[] = [
  'shared_buffers=8MB',
  'maintenance_work_mem=16MB',
  'temp_buffers=1MB',
];

/** PGlite's start parameters with ENGINE_SETTINGS, for `PGlite.create({ startParams })`. */
export const startParams = (): string[] => [
  ...PGlite.defaultStartParams,
  ...ENGINE_SETTINGS.flatMap((setting) => ['-c', setting]),
];

/**
 * Has V8 compile WebAssembly with its baseline compiler (Liftoff) alone, from now on in this
 * process, before the engine's module (9 MB of WASM) is compiled; the engine is the only WASM
 * these processes run. By default V8 compiles every function with Liftoff, then again with
 * TurboFan once it runs hot, and keeps both: 40 to 50 MB more resident, and the TurboFan
 * compilations cost more CPU than they saved in `email dev`'s use. Measured here on 15 000 and
 * 50 000 single-row INSERTs: CPU time the same or lower (12.7 s against 12.9 s for 50 000), the
 * engine open in half the time, RSS 205 MiB against 250. Idempotent.
 */
export function compileWasmWithLiftoffOnly(): void {
  setFlagsFromString('--liftoff-only');
}
