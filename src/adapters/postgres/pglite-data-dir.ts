// The data folder of the embedded engine: made if missing, proved writable, locked against a
// second process, and refused when it holds someone else's files. Every problem found here is the
// person's to fix, so each one is a DataDirUnusable whose message says what to do.
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';

/** Why a `DATA_DIR` cannot be used; each one is for the person to fix, not a bug. */
export type DataDirProblem = 'cannot-write' | 'in-use' | 'foreign-files' | 'cannot-open';

/**
 * `DATA_DIR` cannot hold the embedded database: a start-up error the person must fix (the CLI
 * prints `message` and exits 2), as opposed to a bug. The message names `DATA_DIR` and the folder
 * and says what to do.
 */
export class DataDirUnusable extends Error {
  override readonly name = 'DataDirUnusable';
  constructor(
    /** The folder, absolute. */
    readonly dataDir: string,
    readonly problem: DataDirProblem,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Kept inside the data folder; `pid`/`host` say who holds it. */
export const DATA_DIR_LOCK_FILE = '.queued-email.lock';

/** Locks this process holds, removed on a plain `process.exit` too. */
const heldLocks = new Set<string>();
let exitHookInstalled = false;

const errnoOf = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;

const WHAT_FAILED: Record<string, string> = {
  ENOTDIR: 'a part of the path is a file, not a folder',
  EEXIST: 'it is a file, not a folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exhausted',
  ENAMETOOLONG: 'the path is too long',
};

function cannotWrite(dir: string, err: unknown): DataDirUnusable {
  const code = errnoOf(err) ?? 'unknown error';
  const what = WHAT_FAILED[code] ?? 'it cannot be created or written';
  return new DataDirUnusable(
    dir,
    'cannot-write',
    `DATA_DIR=${dir} cannot be used: ${what} (${code}). Set DATA_DIR to a folder this process ` +
      'can create and write, or DATA_DIR=memory to keep nothing.',
    { cause: err },
  );
}

interface LockOwner {
  readonly pid: number;
  readonly host: string;
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof value === 'object' && value !== null && 'pid' in value && 'host' in value) {
      const { pid, host } = value;
      if (typeof pid === 'number' && typeof host === 'string') return { pid, host };
    }
  } catch {
    // unreadable or half-written: treated as stale below
  }
  return undefined;
}

/** True unless the owner is a process of this machine that no longer runs. */
function alive(owner: LockOwner, path: string): boolean {
  if (owner.host !== hostname()) return true; // a shared folder: no way to tell, assume alive
  // The same pid without our own record of the lock: a previous run that had our pid (a container).
  if (owner.pid === process.pid) return heldLocks.has(path);
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) === 'EPERM';
  }
}

/**
 * Creates `dir` (absolute) and its parents, then takes its lock file, which also proves the
 * folder writable; answers the lock file's path, for `unlockDataDir`. PGlite itself does not
 * notice a second process on the same folder: both run, and writes get lost (seen here: of 444
 * inserts, 337 were left). So a second opener is refused while the first one lives; a lock left
 * by a process that died is taken over.
 * @throws DataDirUnusable (`cannot-write`, `in-use`)
 */
export function lockDataDir(dir: string): string {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw cannotWrite(dir, errnoOf(err) === 'ENOENT' ? firstStepFailure(dir, err) : err);
  }
  const path = join(dir, DATA_DIR_LOCK_FILE);
  for (let round = 0; round < 3; round += 1) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o644);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw cannotWrite(dir, err);
      const owner = readOwner(path);
      if (owner !== undefined && alive(owner, path)) {
        throw new DataDirUnusable(
          dir,
          'in-use',
          `DATA_DIR=${dir} is in use by process ${owner.pid} on ${owner.host} (a running ` +
            '`npm start`?): stop it first, or set DATA_DIR to another folder. If no such ' +
            `process runs, delete ${path}.`,
        );
      }
      // Left behind by a process that died: take it over.
      try {
        unlinkSync(path);
      } catch (unlinkErr) {
        if (errnoOf(unlinkErr) !== 'ENOENT') throw cannotWrite(dir, unlinkErr);
      }
      continue;
    }
    try {
      writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), at: new Date() }));
    } catch (err) {
      closeSync(fd);
      unlinkDataDirLock(path);
      throw cannotWrite(dir, err);
    }
    closeSync(fd);
    heldLocks.add(path);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => heldLocks.forEach((held) => unlockDataDir(held)));
    }
    return path;
  }
  throw new DataDirUnusable(dir, 'in-use', `DATA_DIR=${dir}: its lock file ${path} keeps changing`);
}

/**
 * Node's recursive mkdir answers ENOENT when a step fails for another reason (seen: a read-only
 * bind mount gave ENOENT, not EROFS). Making the first missing folder alone tells the reason.
 */
function firstStepFailure(dir: string, err: unknown): unknown {
  let missing = dir;
  while (dirname(missing) !== missing && !existsSync(dirname(missing))) missing = dirname(missing);
  try {
    mkdirSync(missing);
  } catch (stepErr) {
    return stepErr;
  }
  return err;
}

/** Releases a lock `lockDataDir` took (its path). Idempotent. */
export function unlockDataDir(path: string): void {
  heldLocks.delete(path);
  unlinkDataDirLock(path);
}

function unlinkDataDirLock(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone, or the folder went read-only: nothing more to do
  }
}

/**
 * True when `dir` holds no database yet (no `PG_VERSION`): PGlite will create one. A folder with
 * other files in it is someone else's, which PGlite would write into: refused (dot-files aside).
 * @throws DataDirUnusable (`foreign-files`)
 */
export function isNewDataDir(dir: string): boolean {
  if (existsSync(join(dir, 'PG_VERSION'))) return false;
  const foreign = readdirSync(dir).filter((name) => !name.startsWith('.'));
  if (foreign.length > 0) {
    throw new DataDirUnusable(
      dir,
      'foreign-files',
      `DATA_DIR=${dir} is not empty and holds no database (it has ${foreign.slice(0, 3).join(', ')}` +
        `${foreign.length > 3 ? ', …' : ''}): set DATA_DIR to a new or empty folder.`,
    );
  }
  return true;
}

/** The error for a database folder the engine failed to open (another major version, damage). */
export function cannotOpen(dir: string, err: unknown): DataDirUnusable {
  let version = '';
  try {
    version = ` (PostgreSQL ${readFileSync(join(dir, 'PG_VERSION'), 'utf8').trim()} data)`;
  } catch {
    // the reason below is enough
  }
  const why = err instanceof Error ? err.message : String(err);
  return new DataDirUnusable(
    dir,
    'cannot-open',
    `DATA_DIR=${dir} holds a database${version} this engine cannot open: ${why}. Move the ` +
      'folder away to start afresh, or set DATA_DIR to another folder.',
    { cause: err },
  );
}
