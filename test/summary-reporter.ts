// Prints one plain closing line, "N passed, N failed, N skipped", that CI
// systems read regardless of the runner (stdout writes to pipes and files
// are synchronous on Linux, so an exit handler's line is not lost).
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of modules) {
      let failedHere = 0;
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === 'passed') passed++;
        else if (s === 'failed') failedHere++;
        else skipped++;
      }
      // A file that failed to load, or whose beforeAll/afterAll threw, fails
      // even when none of its tests did (they show as skipped).
      if (failedHere === 0 && m.state() === 'failed') failedHere = 1;
      for (const s of m.children.allSuites()) if (s.state() === 'failed' && failedHere === 0) failedHere = 1;
      failed += failedHere;
    }
    // Printed at exit so it comes after vitest's own summary: the last line.
    const line = `\n${passed} passed, ${failed} failed, ${skipped} skipped\n`;
    process.once('exit', () => process.stdout.write(line));
  }
}
