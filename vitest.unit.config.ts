import { defineConfig } from 'vitest/config';

// Pure modules only: no Temporal dev server, no PostgreSQL.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    testTimeout: 30_000,
  },
});
