/** The worker's memory budget: what WORKER_MEMORY_MB sizes. Pure, no worker. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { workerMemoryPlan } from '../../src/worker-memory.js';

describe('workerMemoryPlan', () => {
  it('sizes the cache and the workflow heap from the budget, the cache well inside the heap', () => {
    for (const budget of [128, 256, 512, 2048]) {
      const plan = workerMemoryPlan(budget);
      expect(plan.workflowHeapMb).toBeLessThan(budget);
      // 0.5 MB a cached workflow (measured) must leave the heap room for what is not the cache.
      expect(plan.maxCachedWorkflows * 0.5).toBeLessThan(plan.workflowHeapMb * 0.6);
      expect(plan.maxCachedWorkflows).toBeGreaterThanOrEqual(10);
    }
    expect(workerMemoryPlan(512).maxCachedWorkflows).toBeGreaterThan(workerMemoryPlan(256).maxCachedWorkflows);
  });

  it('keeps a cache size given explicitly', () => {
    expect(workerMemoryPlan(256, 40).maxCachedWorkflows).toBe(40);
  });

  it('defaults to 128 MB and refuses a budget too small to run in', () => {
    expect(parseConfig({}).WORKER_MEMORY_MB).toBe(128);
    expect(parseConfig({}).WORKER_MAX_CACHED_WORKFLOWS).toBeUndefined();
    expect(() => parseConfig({ WORKER_MEMORY_MB: '64' })).toThrow(/WORKER_MEMORY_MB/);
  });
});
