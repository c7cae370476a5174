/**
 * The worker's memory budget (WORKER_MEMORY_MB): one number that sizes what grows with load. The
 * story workflows the worker keeps cached live in the workflow thread's V8 heap (about 0.5 MB
 * each, measured: bench/README.md), so the budget sets both that heap's cap and how many
 * workflows the cache holds, with room to spare between them: a cache that outgrew its heap would
 * end the worker (out of memory), where an evicted workflow only replays on its next task.
 */
import v8 from 'node:v8';

/** Heap one cached story workflow takes, measured (bench/README.md), with a margin. */
const MB_PER_CACHED_WORKFLOW = 0.6;

export interface WorkerMemoryPlan {
  budgetMb: number;
  /** The story workflows kept in memory between tasks. */
  maxCachedWorkflows: number;
  /** The cap of each workflow thread's V8 old space. */
  workflowHeapMb: number;
  /** The young generation's semi-space of each workflow thread (V8's default is 16 MB). */
  semiSpaceMb: number;
}

/**
 * The process's main thread (activities, pg, the SDK's core) and the code loaded in the workflow
 * threads take about half the budget; the cache gets a third; the rest is the heap's headroom.
 */
export function workerMemoryPlan(budgetMb: number, maxCachedWorkflows?: number): WorkerMemoryPlan {
  const workflowHeapMb = Math.max(64, Math.round(budgetMb * 0.6));
  return {
    budgetMb,
    maxCachedWorkflows: maxCachedWorkflows ?? Math.max(10, Math.floor(budgetMb / 3 / MB_PER_CACHED_WORKFLOW)),
    workflowHeapMb,
    semiSpaceMb: 2,
  };
}

/**
 * Applies the plan's V8 flags. They reach the isolates created after this call, which is what the
 * workflow threads are (the SDK starts them in Worker.create); the main thread's heap was sized
 * when the process started (the `worker` script's node flags).
 */
export function applyWorkflowHeapFlags(plan: WorkerMemoryPlan): void {
  v8.setFlagsFromString(`--max-old-space-size=${plan.workflowHeapMb}`);
  v8.setFlagsFromString(`--max-semi-space-size=${plan.semiSpaceMb}`);
}
