/**
 * Webhook events: written in the same transaction as what caused them (one row per subscribed
 * webhook, keyed by the cause: src/db/webhook-repo.ts), then handed to one delivery workflow each. Both steps are
 * idempotent, so whoever retries (an activity, the gateway) never delivers twice.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  type Client,
} from '@temporalio/client';
import type pg from 'pg';
import { EVENT_OF_ACTION, LOOPCTL_EVENTS } from '../custody/actions.js';
import { markDispatched, pendingDeliveryIds, undispatchedDeliveryIds } from '../db/webhook-repo.js';
import { WEBHOOK_DELIVERY_WORKFLOW_TYPE, type WebhookDeliveryInput } from '../../workflows/webhook-messages.js';

export const WEBHOOK_EVENTS = [
  ...new Set([...Object.values(EVENT_OF_ACTION), 'custody.violation', ...LOOPCTL_EVENTS]),
] as [string, ...string[]];

type Queryable = pg.Pool | pg.PoolClient;

/** Deliveries run on their own task queue, next to the stories' (its own worker and slots). */
export function webhookTaskQueueOf(storyTaskQueue: string): string {
  return `${storyTaskQueue}-webhooks`;
}

export interface WebhookDispatch {
  client: Client;
  taskQueue: string;
  retry: WebhookDeliveryInput['retry'];
}

/** Starts a delivery workflow for each pending delivery of these causes (a no-op for started ones). */
export async function dispatchPending(db: Queryable, dispatch: WebhookDispatch, sourceKeys: string[]): Promise<number> {
  if (sourceKeys.length === 0) return 0;
  const ids = await pendingDeliveryIds(db, sourceKeys);
  await Promise.all(ids.map((id) => startDelivery(dispatch, id)));
  await markDispatched(db, ids);
  return ids.length;
}

/**
 * Starts the deliveries that were committed but never started: the start failed after the commit
 * (Temporal unreachable for a moment) or the process died in between. Run by every worker now and
 * then; starting an already started delivery is a no-op, so two sweepers do no harm.
 */
export async function dispatchForgotten(
  db: Queryable,
  dispatch: WebhookDispatch,
  olderThanMs = 60_000,
  limit = 200,
): Promise<number> {
  const ids = await undispatchedDeliveryIds(db, olderThanMs, limit);
  for (const id of ids) await startDelivery(dispatch, id);
  await markDispatched(db, ids);
  return ids.length;
}

export async function startDelivery(dispatch: WebhookDispatch, deliveryId: string): Promise<void> {
  const input: WebhookDeliveryInput = { deliveryId, retry: dispatch.retry };
  try {
    await dispatch.client.workflow.start(WEBHOOK_DELIVERY_WORKFLOW_TYPE, {
      workflowId: `webhook-delivery/${deliveryId}`,
      taskQueue: webhookTaskQueueOf(dispatch.taskQueue),
      args: [input],
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      // A delivery that already ran to its end is not run (and delivered) a second time.
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      staticSummary: `webhook delivery ${deliveryId}`,
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
}
