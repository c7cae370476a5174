/**
 * Webhook events: written in the same transaction as what caused them (one row per subscribed
 * webhook, keyed by the cause), then handed to one delivery workflow each. Both steps are
 * idempotent, so whoever retries (an activity, the gateway) never delivers twice.
 */
import { WorkflowIdConflictPolicy, type Client } from '@temporalio/client';
import type pg from 'pg';
import { EVENT_OF_ACTION } from '../custody/actions.js';
import { WEBHOOK_DELIVERY_WORKFLOW_TYPE, type WebhookDeliveryInput } from '../../workflows/webhook-messages.js';

export const WEBHOOK_EVENTS = [...new Set([...Object.values(EVENT_OF_ACTION), 'custody.violation'])] as [string, ...string[]];

type Queryable = pg.Pool | pg.PoolClient;

export interface WebhookDispatch {
  client: Client;
  taskQueue: string;
  retry: WebhookDeliveryInput['retry'];
}

/** Records `event` for every webhook of the tenant that subscribes to it. */
export async function enqueueEvent(db: Queryable, tenantId: string, event: string, sourceKey: string, payload: unknown): Promise<void> {
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
  return rows.length;
}

export async function startDelivery(dispatch: WebhookDispatch, deliveryId: string): Promise<void> {
  const input: WebhookDeliveryInput = { deliveryId, retry: dispatch.retry };
  await dispatch.client.workflow.start(WEBHOOK_DELIVERY_WORKFLOW_TYPE, {
    workflowId: `webhook-delivery/${deliveryId}`,
    taskQueue: dispatch.taskQueue,
    args: [input],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    staticSummary: `webhook delivery ${deliveryId}`,
  });
}
