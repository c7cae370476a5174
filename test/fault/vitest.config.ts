/**
 * Fault tests (`npm run test:fault`): real processes killed with SIGKILL, one test at a time.
 * Deliberately separate from the main config: no globalSetup (each test starts its own Temporal
 * dev server, worker and gateway as child processes, test/fault/harness.ts), and the files are
 * named `*.fault.ts` so that `npm test` (which runs test/**\/*.test.ts) never picks them up.
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
    include: ['test/fault/**/*.fault.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    teardownTimeout: 60_000,
    // Each test prints its figures; keep them in the output.
    silent: false,
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'test-results/fault.json' }]] : ['default'],
  },
});
