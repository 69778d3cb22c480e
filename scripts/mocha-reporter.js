// Mocha's spec reporter, plus the reason under every skipped test (recorded by test/support/skip.ts) and one plain
// closing line ("N passed, N failed, N skipped") that CI can read.
'use strict';
const Mocha = require('mocha');

/** The reason recorded on the test or the nearest suite above it. */
function skipReason(test) {
  for (let r = test; r; r = r.parent) if (r.skipReason) return r.skipReason;
  return undefined;
}

class SpecWithTotals extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const { EVENT_TEST_PENDING, EVENT_RUN_END } = Mocha.Runner.constants;
    const reasons = new Map();
    runner.on(EVENT_TEST_PENDING, (test) => {
      const reason = skipReason(test) || 'no reason given (use skipBecause from test/support/skip.ts)';
      reasons.set(reason, (reasons.get(reason) || 0) + 1);
      process.stdout.write(`      skipped: ${reason}\n`);
    });
    runner.once(EVENT_RUN_END, () => {
      const { passes, failures, pending } = this.stats;
      for (const [reason, count] of reasons) process.stdout.write(`\nskipped ${count}: ${reason}`);
      process.stdout.write(`\n${reasons.size ? '\n' : ''}mocha: ${passes} passed, ${failures} failed, ${pending} skipped\n`);
    });
  }
}

module.exports = SpecWithTotals;
