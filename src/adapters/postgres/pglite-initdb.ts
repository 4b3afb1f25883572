// `node pglite-initdb.js <folder> [--migrate]`: creates the embedded database in a new, empty
// folder (PGlite runs initdb in a second, in-memory engine, then copies its files into the
// folder), with --migrate applies the migrations, and exits; what it did or why it failed goes
// to standard output as `InitdbReport` lines (pglite-database.ts).
// PgliteDatabase.open runs it as a child process: the few hundred MB that creating takes (two
// engines, initdb's own WASM module, the copy as one archive in memory) leave with the child,
// where in the long-running process they stayed resident for good (RSS about 820 MiB against 260
// after opening an existing folder). Migrating here as well spares the parent from loading
// node-pg-migrate for good. Exit status 1 on failure, 2 on a wrong command line, 3 when the
// parent went away (standard input ended).
import { PGlite } from '@electric-sql/pglite';
import type { Logger } from '../../application/ports/system.js';
import { migrateSql } from './migrate.js';
import type { InitdbReport } from './pglite-database.js';
import { MIGRATE_FLAG, PgliteDatabase } from './pglite-database.js';
import { compileWasmWithLiftoffOnly, startParams } from './pglite-engine.js';

const report = (line: InitdbReport): void => void process.stdout.write(`${JSON.stringify(line)}\n`);
const reason = (err: unknown): string => (err instanceof Error ? err.message : String(err));

const [dir, flag] = process.argv.slice(2);
if (dir === undefined || (flag !== undefined && flag !== MIGRATE_FLAG)) {
  process.stderr.write(`usage: pglite-initdb <folder> [${MIGRATE_FLAG}]\n`);
  process.exit(2);
}
// The parent holds the folder's lock for this process: once it is gone (its end of the pipe
// closes), nothing may go on writing in the folder.
if (!process.stdin.isTTY) {
  process.stdin.on('end', () => process.exit(3)).resume();
}
/** node-pg-migrate's warnings and errors, for the parent's log; its progress lines are dropped. */
const parentLog: Logger = {
  info: () => undefined,
  warn: (_fields, message) => report({ initdb: 'log', level: 'warn', message }),
  error: (_fields, message) => report({ initdb: 'log', level: 'error', message }),
};
compileWasmWithLiftoffOnly();
let pglite: PGlite;
try {
  pglite = await PGlite.create({ dataDir: dir, startParams: startParams() });
} catch (err) {
  report({ initdb: 'failed', message: `creating the embedded database failed: ${reason(err)}` });
  process.exit(1);
}
if (flag === MIGRATE_FLAG) {
  // The engine is adopted, not opened: opening would take the lock the parent holds.
  const database = PgliteDatabase.adopt(pglite, dir);
  try {
    const { applied } = await migrateSql(database, parentLog);
    await database.close();
    report({ initdb: 'applied', names: applied });
  } catch (err) {
    // migrateSql's own sentence: "migrating the embedded database (<folder>) failed: <why>".
    report({ initdb: 'failed', message: reason(err) });
    process.exit(1);
  }
} else {
  await pglite.close();
}
// Standard input would keep the process alive.
process.exit(0);
