import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'control/**/*.test.ts', 'loader/**/*.test.ts'],
    // Root tests make netns, links and pins; forks keep each file in its own process
    // so the native addon and namespace state never leak between files.
    pool: 'forks',
    // --expose-gc lets the fd finalizer test force a collection.
    poolOptions: { forks: { execArgv: ['--expose-gc'] } },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
