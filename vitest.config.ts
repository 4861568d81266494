import { defineConfig } from 'vitest/config';

// Test tiers (DESIGN.md "Testing tiers"): unit tests are in-process and fast; integration
// tests spawn the built sidecar against fake upstreams; e2e tests run a real kube-apiserver.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/crds/**/*.test.ts', 'test/sidecar/**/*.test.ts', 'test/operator/**/*.test.ts', 'test/charts/**/*.test.ts'],
          exclude: ['test/**/*.integration.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.integration.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
