import { defineConfig } from 'vitest/config';

// The unit tier only, for StrykerJS (make mutation): every mutant is judged by the fast,
// in-process tests; the integration and e2e tiers run processes a mutant cannot reach.
export default defineConfig({
  test: {
    include: ['test/crds/**/*.test.ts', 'test/sidecar/**/*.test.ts', 'test/operator/**/*.test.ts'],
    exclude: ['test/**/*.integration.test.ts', 'test/**/*.fuzz.test.ts', 'test/**/*.property.test.ts'],
  },
});
