import { PGlite } from '@electric-sql/pglite';

/**
 * PostgreSQL settings the embedded engine runs with, on top of PGlite's own start parameters.
 * PostgreSQL's defaults size its caches for a server of its own; here they are allocated inside
 * the process's WASM memory, which never shrinks, so each is measured against what `email dev`
 * needs (a few thousand emails, one connection):
 *
 * - `shared_buffers` 16 MB, not 128 MB: the page cache filled up to its size as the tables grew
 *   (RSS +100 MB after a few thousand emails). Pages it does not hold are read back through the
 *   data folder's files, which the operating system caches, as PostgreSQL itself relies on.
 * - `maintenance_work_mem` 16 MB, not 64 MB: used by CREATE INDEX in the migrations, on tables
 *   that are small on a development machine.
 * - `temp_buffers` 1 MB, not 8 MB: no statement here uses temporary tables.
 */
export const ENGINE_SETTINGS: readonly string[] = [
  'shared_buffers=16MB',
  'maintenance_work_mem=16MB',
  'temp_buffers=1MB',
];

/** PGlite's start parameters with ENGINE_SETTINGS, for `PGlite.create({ startParams })`. */
export const startParams = (): string[] => [
  ...PGlite.defaultStartParams,
  ...ENGINE_SETTINGS.flatMap((setting) => ['-c', setting]),
];
