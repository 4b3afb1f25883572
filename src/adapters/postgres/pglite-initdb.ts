// `node pglite-initdb.js <folder> [--migrate]`: creates the embedded database in a new, empty
// folder (PGlite runs initdb in a second, in-memory engine, then copies its files into the
// folder), with --migrate applies the migrations and prints `{"applied":[…]}`, and exits.
// PgliteDatabase.open runs it as a child process: the few hundred MB that creating takes (two
// engines, initdb's own WASM module, the copy as one archive in memory) leave with the child,
// where in the long-running process they stayed resident for good (RSS about 820 MiB against 260
// after opening an existing folder). Migrating here as well spares the parent from loading
// node-pg-migrate for good. Any failure: its message on stderr, exit status 1.
import { PGlite } from '@electric-sql/pglite';
import type { Logger } from '../../application/ports/system.js';
import { migrateSql } from './migrate.js';
import { MIGRATE_FLAG, PgliteDatabase } from './pglite-database.js';
import { compileWasmWithLiftoffOnly, startParams } from './pglite-engine.js';

const [dir, flag] = process.argv.slice(2);
if (dir === undefined || (flag !== undefined && flag !== MIGRATE_FLAG)) {
  process.stderr.write(`usage: pglite-initdb <folder> [${MIGRATE_FLAG}]\n`);
  process.exit(2);
}
/** node-pg-migrate's warnings and errors reach the parent on stderr; its progress does not. */
const stderrLog: Logger = {
  info: () => undefined,
  warn: (_fields, message) => void process.stderr.write(`${message}\n`),
  error: (_fields, message) => void process.stderr.write(`${message}\n`),
};
compileWasmWithLiftoffOnly();
try {
  const pglite = await PGlite.create({ dataDir: dir, startParams: startParams() });
  if (flag === MIGRATE_FLAG) {
    // The parent holds the folder's lock while this runs: the engine is adopted, not opened.
    const database = PgliteDatabase.adopt(pglite, dir);
    const { applied } = await migrateSql(database, stderrLog);
    await database.close();
    process.stdout.write(`${JSON.stringify({ applied })}\n`);
  } else {
    await pglite.close();
  }
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
