/** The story worker: runs story workflows and their persistence activities. */
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type pg from 'pg';
import { createStoryActivities } from '../activities/persistence.js';
import { createWebhookActivities } from '../activities/webhooks.js';
import type { WebhookDeliveryInput } from '../workflows/webhook-messages.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface StoryWorkerOptions {
  address: string;
  namespace: string;
  taskQueue: string;
  pool: pg.Pool;
  client: Client;
  /** A prebuilt bundle (tests build one per run); otherwise the worker bundles `workflows/`. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  webhookRetry: WebhookDeliveryInput['retry'];
}

export async function createStoryWorker(options: StoryWorkerOptions): Promise<{ worker: Worker; connection: NativeConnection }> {
  const connection = await NativeConnection.connect({ address: options.address });
  const worker = await Worker.create({
    connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: {
      ...createStoryActivities({
        pool: options.pool,
        client: options.client,
        webhooks: { client: options.client, taskQueue: options.taskQueue, retry: options.webhookRetry },
      }),
      ...createWebhookActivities({ pool: options.pool }),
    },
  });
  return { worker, connection };
}
