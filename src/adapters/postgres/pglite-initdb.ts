// `node pglite-initdb.js <folder>`: creates the embedded database in a new, empty folder (PGlite
// runs initdb in a second, in-memory engine, then copies its files into the folder) and exits.
// PgliteDatabase.open runs it as a child process: the few hundred MB that creating takes (two
// engines, initdb's own WASM module, the copy as one archive in memory) leave with the child,
// where in the long-running process they stayed resident for good (RSS about 820 MiB against 260
// after opening an existing folder). Any failure: its message on stderr, exit status 1.
import { PGlite } from '@electric-sql/pglite';
import { compileWasmWithLiftoffOnly, startParams } from './pglite-engine.js';

const dir = process.argv[2];
if (dir === undefined) {
  process.stderr.write('usage: pglite-initdb <folder>\n');
  process.exit(2);
}
compileWasmWithLiftoffOnly();
try {
  const pglite = await PGlite.create({ dataDir: dir, startParams: startParams() });
  await pglite.close();
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
