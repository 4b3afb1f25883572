// `npm test`: every test file, two at a time (mocha --parallel, a worker process per file), except
// a few that must run alone afterwards: those that stop a shared service (the broker restart:
// while RabbitMQ is down for one test, every other test on it would fail), and those that measure
// time (the pace at the Mailgun stand-in: another file's load on the other core, a browser or a
// bench smoke, holds up the stand-in and the workers by 100 ms and more, bunching arrivals it
// counts in one second). Prints one closing line for both runs, `N passed, N failed, N skipped`,
// which CI reads, and exits non-zero if either failed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Files that take a shared service away while they run, or that measure time; the pacing test
 * first, since a broker restart that failed to bring RabbitMQ back would fail it too.
 */
const ALONE = ['dist/test/process/pacing.test.js', 'dist/test/process/rabbitmq-restart.test.js'];

const dir = mkdtempSync(join(tmpdir(), 'email-tests-'));
const counts = join(dir, 'counts.jsonl');
const env = { ...process.env, TEST_COUNTS_FILE: counts };
const mocha = (args) =>
  spawnSync(process.execPath, ['node_modules/mocha/bin/mocha.js', ...args], {
    stdio: 'inherit',
    env,
  }).status ?? 1;

const together = mocha(['--parallel', '--jobs', '2', ...ALONE.flatMap((f) => ['--ignore', f])]);
// Without the config file, whose spec (every file) would be added to the one given here.
const alone = mocha([
  '--no-config',
  '--reporter',
  './test/support/count-reporter.cjs',
  '--timeout',
  '20000',
  '--exit',
  '--enable-source-maps',
  ...ALONE,
]);

const total = { passes: 0, failures: 0, pending: 0 };
try {
  for (const line of readFileSync(counts, 'utf8').split('\n').filter(Boolean)) {
    const c = JSON.parse(line);
    total.passes += c.passes;
    total.failures += c.failures;
    total.pending += c.pending;
  }
} catch {
  // no counts: a run could not start; its exit status says so below
}
rmSync(dir, { recursive: true, force: true });
process.stdout.write(
  `\n${total.passes} passed, ${total.failures} failed, ${total.pending} skipped\n`,
);
process.exit(together !== 0 || alone !== 0 || total.failures > 0 ? 1 : 0);
