import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The JSON report lets CI print a one-line summary of the run.
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results.json' },
  },
});
