/**
 * The story worker: runs story workflows and their persistence activities on the stories' task
 * queue, and, in the same process, a second Temporal worker with its own task queue and slots for
 * webhook deliveries, so a tenant's slow receivers never hold a slot story persistence needs.
 * The workflow bundle is built by ./temporal/workflow-bundle.ts; forgotten deliveries are swept
 * by ./webhooks/delivery-sweeper.ts.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type pg from 'pg';
import { createStoryActivities } from '../activities/persistence.js';
import { createWebhookActivities } from '../activities/webhooks.js';
import type { WebhookDeliveryInput } from '../workflows/webhook-messages.js';
import type { KeyRing } from './custody/identity.js';
import { bundleWorkflowsInChild } from './temporal/workflow-bundle.js';
import { sweepForgottenDeliveries } from './webhooks/delivery-sweeper.js';
import { DEFAULT_TENANT_SHARE, webhookTaskQueueOf, type WebhookDispatch } from './webhooks/outbox.js';
import { applyWorkflowHeapFlags, type WorkerMemoryPlan } from './worker-memory.js';

/** The project's root (where package.json is), whether this runs from src/ or compiled into dist/. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
/** The workflow bundle `npm run build` writes beside the compiled entry points. */
export const BUILT_WORKFLOW_BUNDLE = join(projectRoot(), 'dist', 'workflow-bundle.js');
/** Running compiled (dist/, plain Node): the workflows were bundled by the same build, not at start. */
const COMPILED = import.meta.url.endsWith('.js');

/** The bundle a worker runs: the one given, the build's when compiled, else none (bundled at start). */
function builtBundle(given: WorkerOptions['workflowBundle']): WorkerOptions['workflowBundle'] | undefined {
  if (given || !COMPILED) return given;
  if (!existsSync(BUILT_WORKFLOW_BUNDLE)) {
    throw new Error(`no workflow bundle at ${BUILT_WORKFLOW_BUNDLE}: run \`npm run build\` (it builds both)`);
  }
  return { codePath: BUILT_WORKFLOW_BUNDLE };
}

export interface StoryWorkerOptions {
  address: string;
  namespace: string;
  taskQueue: string;
  pool: pg.Pool;
  client: Client;
  /** A prebuilt bundle (tests build one per run); otherwise the worker bundles `workflows/`. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  webhookRetry: WebhookDeliveryInput['retry'];
  /** Deliver webhooks to loopback and private addresses too (WEBHOOK_ALLOW_PRIVATE_TARGETS). */
  allowPrivateWebhookTargets?: boolean;
  /**
   * The gateway's key ring: every envelope in a batch must be signed by one of its keys before
   * anything is written; dependency news sent to stories is signed with its current key.
   */
  keyRing: KeyRing;
  /** Workflows kept in memory between tasks (about 0.5 MB each); an evicted one is replayed when next needed. */
  maxCachedWorkflows?: number;
  /** The process's memory budget (WORKER_MEMORY_MB): the cache (unless given above) and the workflow heap's flags. */
  memory?: WorkerMemoryPlan;
  /** What the workflow sandbox does beside running workflows (default: neither; see `WorkflowSandbox`). */
  sandbox?: WorkflowSandbox;
  /** How often webhook deliveries committed but never started are looked for (default 30 s). */
  deliverySweepMs?: number;
  /** Webhook deliveries in flight at once in this process, all tenants (default 100). */
  webhookConcurrency?: number;
  /** Webhook deliveries of one tenant in flight at once in this process (default 4). */
  webhookTenantConcurrency?: number;
  /** The longest one delivery attempt may take (default 10 s, at most 25 s). */
  webhookTimeoutMs?: number;
}

/**
 * Two things the SDK's workflow sandbox does on every entry, each off unless asked for (settings
 * WORKFLOW_ACTIVATION_TIMEOUT_MS, WORKFLOW_STACK_TRACES). Measured together, they were a third of
 * the worker's CPU per transition (bench/README.md, round 4):
 * - a time limit: Node enforces `vm` timeouts with a new watchdog thread per call, and a workflow
 *   task enters the sandbox many times. Without one, workflow code that never returns would hold
 *   its thread; ours has no unbounded loop (the custody rules are pure and exhaustively tested);
 * - a stack captured (and source-mapped) for every promise workflow code creates, for the Temporal
 *   UI's stack trace query. Off, that query answers that stack traces are off; history, queries
 *   of the story and failures' own stacks are unchanged.
 * Both switches are a few lines the SDK lacks options for, applied to it at install
 * (patches/@temporalio+worker+*.patch, by patch-package).
 */
export interface WorkflowSandbox {
  /** 0: no limit (no watchdog thread per entry). */
  activationTimeoutMs: number;
  stackTraces: boolean;
}

/**
 * Whether the installed SDK has the switches (patch-package applies them at install). Without
 * them Node refuses a time limit of 0 in every workflow task, which would fail each story's tasks
 * forever: the worker refuses to start instead.
 */
function sdkHasSandboxSwitches(): boolean {
  const lib = dirname(createRequire(import.meta.url).resolve('@temporalio/worker'));
  const text = (file: string) => readFileSync(join(lib, 'workflow', file), 'utf8');
  return (
    text('reusable-vm.js').includes('isolateExecutionTimeoutMs > 0 ?') &&
    text('vm.js').includes('isolateExecutionTimeoutMs > 0 ?') &&
    text('vm-shared.js').includes('TEMPORAL_WORKFLOW_STACK_TRACES')
  );
}

/**
 * The SDK's worker options for the sandbox. The stack trace switch is an environment variable the
 * workflow threads read when they are created: one setting per process (the last worker created
 * sets it for all), which is what a worker process is.
 */
function sandboxOptions(sandbox: WorkflowSandbox = { activationTimeoutMs: 0, stackTraces: false }) {
  if (!sdkHasSandboxSwitches()) {
    throw new Error(
      'the Temporal SDK in node_modules lacks patches/@temporalio+worker+*.patch: run `npm ci` (it applies it)',
    );
  }
  process.env.TEMPORAL_WORKFLOW_STACK_TRACES = sandbox.stackTraces ? 'on' : 'off';
  return { isolateExecutionTimeout: sandbox.activationTimeoutMs };
}

/** How this worker hands deliveries to their workflows: each tenant's share is its slots here. */
function webhookDispatch(options: StoryWorkerOptions): WebhookDispatch {
  return {
    client: options.client,
    taskQueue: options.taskQueue,
    retry: options.webhookRetry,
    perTenant: options.webhookTenantConcurrency ?? DEFAULT_TENANT_SHARE,
  };
}

/** What runs and stops the story worker and the webhook worker together. */
export interface StoryWorkers {
  run(): Promise<void>;
  shutdown(): void;
  getState(): ReturnType<Worker['getState']>;
}

/** Runs both workers; when either stops (or fails), the other is shut down too. */
function together(stories: Worker, webhooks: Worker): StoryWorkers {
  const shutdown = () => {
    for (const w of [stories, webhooks]) if (w.getState() === 'RUNNING') w.shutdown();
  };
  return {
    async run() {
      const results = await Promise.allSettled(
        [stories, webhooks].map((w) =>
          w.run().finally(() => {
            shutdown();
          }),
        ),
      );
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
    shutdown,
    getState() {
      const webhookState = webhooks.getState();
      return webhookState === 'FAILED' ? webhookState : stories.getState();
    },
  };
}

export async function createStoryWorker(
  options: StoryWorkerOptions,
): Promise<{ worker: StoryWorkers; connection: NativeConnection }> {
  const connection = await NativeConnection.connect({ address: options.address });
  const given = builtBundle(options.workflowBundle);
  const builtHere = given ? null : await bundleWorkflowsInChild();
  // Once the worker has read the bundle (or failed to), one built for this start is not needed again.
  const workflowBundle = given ?? { codePath: builtHere! };
  // Before the workflow threads exist: their heaps are sized as they are created.
  if (options.memory) applyWorkflowHeapFlags(options.memory);
  const maxCachedWorkflows = options.maxCachedWorkflows ?? options.memory?.maxCachedWorkflows;
  const sandbox = sandboxOptions(options.sandbox);
  const [stories, webhooks] = await Promise.all([
    Worker.create({
      connection,
      namespace: options.namespace,
      taskQueue: options.taskQueue,
      workflowBundle,
      ...sandbox,
      ...(maxCachedWorkflows !== undefined ? { maxCachedWorkflows } : {}),
      activities: createStoryActivities({
        pool: options.pool,
        client: options.client,
        webhooks: webhookDispatch(options),
        keyRing: options.keyRing,
      }),
    }),
    Worker.create({
      connection,
      namespace: options.namespace,
      taskQueue: webhookTaskQueueOf(options.taskQueue),
      workflowBundle,
      ...sandbox,
      // Delivery workflows are short: a small cache, and slots of their own.
      maxCachedWorkflows: 100,
      maxConcurrentActivityTaskExecutions: options.webhookConcurrency ?? 100,
      activities: createWebhookActivities({
        pool: options.pool,
        allowPrivateTargets: options.allowPrivateWebhookTargets ?? false,
        tenantConcurrency: options.webhookTenantConcurrency ?? DEFAULT_TENANT_SHARE,
        attemptTimeoutMs: options.webhookTimeoutMs,
        maximumAttempts: options.webhookRetry.maximumAttempts,
        dispatch: webhookDispatch(options),
      }),
    }),
  ]).finally(() => {
    if (builtHere) rmSync(dirname(builtHere), { recursive: true, force: true });
  });
  const worker = together(stories, webhooks);
  sweepForgottenDeliveries(worker, options.pool, webhookDispatch(options), options.deliverySweepMs);
  return { worker, connection };
}
