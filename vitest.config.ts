import { defineConfig } from 'vitest/config';

// Test tiers (DESIGN.md "Testing tiers"): unit tests are in-process and fast; integration
// tests spawn the built sidecar against fake upstreams; e2e tests run a real kube-apiserver;
// e2e-node tests run real pods on a real single-node cluster (make test's last tier, as root; make e2e-node).
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
      {
        // A real single-node cluster (test/support/node: kubelet, containerd, CoreDNS) with paygo
        // installed from the chart; `make test` (its last tier) and `make e2e-node` run it (root, Linux).
        test: {
          name: 'e2e-node',
          include: ['test/e2e-node/**/*.test.ts'],
          globalSetup: ['test/e2e-node/global-setup.ts'],
          testTimeout: 600_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
