// Mocha's spec output plus one closing line, `N passed, N failed, N skipped`, which CI reads.
const fs = require('node:fs');
const Mocha = require('mocha');

const { EVENT_RUN_END } = Mocha.Runner.constants;

class CountReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats ?? {};
      const counts = { passes: s.passes ?? 0, failures: s.failures ?? 0, pending: s.pending ?? 0 };
      // Run by test/support/run-all.mjs: it adds up its runs and prints one line for them all.
      if (process.env.TEST_COUNTS_FILE) {
        fs.appendFileSync(process.env.TEST_COUNTS_FILE, `${JSON.stringify(counts)}\n`);
        return;
      }
      process.stdout.write(
        `\n${counts.passes} passed, ${counts.failures} failed, ${counts.pending} skipped\n`,
      );
    });
  }
}

module.exports = CountReporter;
