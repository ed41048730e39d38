import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure, fast, no processes) and `integration` (real control plane,
// registries, Prometheus started by the tests themselves). `npm test` runs both.
export default defineConfig({
  test: {
    reporters: ['default', './test/summary-reporter.ts'],
    // The AWS SDK's credential chain ends with the EC2 instance metadata service; tests never
    // reach for it (tests that want credentials give them: IRSA, Pod Identity, a fake).
    env: { AWS_EC2_METADATA_DISABLED: 'true' },
    projects: [
      {
        test: {
          name: 'unit',
          // Unit tests sit next to the code they test.
          include: ['**/*.test.ts'],
          // A guard against a hung test, not a speed check: the heavier in-memory operator runs
          // (150-change streams on the fake API server) took 5-16 s on a loaded 2-core machine.
          testTimeout: 30_000,
          exclude: ['test/integration/**', 'node_modules/**'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          // One control plane per file already uses both cores; files run one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
