/**
 * Webhook events: written in the same transaction as what caused them (one row per subscribed
 * webhook, keyed by the cause), then handed to one delivery workflow each. Both steps are
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

/** Records `event` for every webhook of the tenant that subscribes to it. */
export async function enqueueEvent(
  db: Queryable,
  tenantId: string,
  event: string,
  sourceKey: string,
  payload: unknown,
): Promise<void> {
  await db.query(
    `INSERT INTO webhook_deliveries (tenant_id, webhook_id, event, source_key, payload)
     SELECT $1, w.id, $2, $3, $4 FROM webhooks w
     WHERE w.tenant_id = $1 AND w.disabled_at IS NULL AND $2 = ANY (w.events)
     ON CONFLICT (webhook_id, source_key, event) DO NOTHING`,
    [tenantId, event, sourceKey, JSON.stringify(payload)],
  );
}

/** Starts a delivery workflow for each pending delivery of these causes (a no-op for started ones). */
export async function dispatchPending(db: Queryable, dispatch: WebhookDispatch, sourceKeys: string[]): Promise<number> {
  if (sourceKeys.length === 0) return 0;
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM webhook_deliveries WHERE source_key = ANY ($1::text[]) AND status = 'pending'`,
    [sourceKeys],
  );
  await Promise.all(rows.map((row) => startDelivery(dispatch, row.id)));
  await markDispatched(
    db,
    rows.map((row) => row.id),
  );
  return rows.length;
}

async function markDispatched(db: Queryable, ids: string[]): Promise<void> {
  if (ids.length > 0)
    await db.query(
      'UPDATE webhook_deliveries SET dispatched_at = now() WHERE id = ANY ($1::uuid[]) AND dispatched_at IS NULL',
      [ids],
    );
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
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM webhook_deliveries
     WHERE status = 'pending' AND dispatched_at IS NULL AND created_at < now() - make_interval(secs => $1)
     ORDER BY created_at LIMIT $2`,
    [olderThanMs / 1000, limit],
  );
  for (const row of rows) await startDelivery(dispatch, row.id);
  await markDispatched(
    db,
    rows.map((row) => row.id),
  );
  return rows.length;
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
