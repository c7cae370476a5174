/**
 * The production topology (`npm run test:production`): the real Temporal server on PostgreSQL,
 * two workers, two gateways, each its own process (test/production/stack.ts). Separate from
 * `npm test` (no globalSetup, files named `*.prod.ts`): it builds the server once per machine and
 * takes minutes.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../../', import.meta.url)),
  test: {
    // Worker threads have crashed the Temporal SDK's native module; forks are safe.
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    include: ['test/production/**/*.prod.ts'],
    testTimeout: 900_000,
    // The first run on a machine builds the Temporal server from its Go modules.
    hookTimeout: 2_400_000,
    teardownTimeout: 120_000,
    // The test prints its figures; keep them in the output.
    silent: false,
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'test-results/production.json' }]] : ['default'],
  },
});
