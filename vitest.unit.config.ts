import { defineConfig } from 'vitest/config';

// Pure modules only: no Temporal dev server, no PostgreSQL. The files share their workers' module
// cache (no isolation): loading the modules again for each file cost more than the tests took.
// The OpenAPI document's test runs apart: zod-to-openapi patches the zod it first meets, so it
// must be loaded before any other file's schemas.
const ISOLATED = ['test/unit/openapi.test.ts'];

export default defineConfig({
  test: {
    maxWorkers: 2,
    testTimeout: 30_000,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], exclude: ISOLATED, isolate: false } },
      { test: { name: 'unit-isolated', include: ISOLATED } },
    ],
  },
});
