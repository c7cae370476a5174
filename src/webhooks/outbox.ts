/**
 * Webhook events: written in the same transaction as what caused them (one row per subscribed
 * webhook, keyed by the cause: src/db/webhook-repo.ts), then handed to one delivery workflow each,
 * a few per tenant at a time. Both steps are idempotent, so whoever retries (an activity, the
 * gateway) never delivers twice.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  type Client,
} from '@temporalio/client';
import type pg from 'pg';
import { workflowStanding } from '../temporal/client.js';
import { EVENT_OF_ACTION, LOOPCTL_EVENTS } from '../custody/actions.js';
import {
  deliveriesInFlightToCheck,
  dispatchableDeliveryIds,
  failAbandonedDeliveries,
  markDispatched,
  markSlotsChecked,
} from '../db/webhook-repo.js';
import { WEBHOOK_DELIVERY_WORKFLOW_TYPE, type WebhookDeliveryInput } from '../../workflows/webhook-messages.js';

export const WEBHOOK_EVENTS = [
  ...new Set([...Object.values(EVENT_OF_ACTION), 'custody.violation', ...LOOPCTL_EVENTS]),
] as [string, ...string[]];

type Queryable = pg.Pool | pg.PoolClient;

/** Deliveries run on their own task queue, next to the stories' (its own worker and slots). */
export function webhookTaskQueueOf(storyTaskQueue: string): string {
  return `${storyTaskQueue}-webhooks`;
}

/** A tenant's deliveries in flight at once when not configured (WEBHOOK_TENANT_CONCURRENCY). */
export const DEFAULT_TENANT_SHARE = 4;

export interface WebhookDispatch {
  client: Client;
  taskQueue: string;
  retry: WebhookDeliveryInput['retry'];
  /**
   * A tenant's deliveries in flight at once (each a workflow on the Temporal server); the others
   * wait in the outbox and cost the server nothing until one of the tenant's deliveries ends.
   */
  perTenant?: number;
}

const share = (dispatch: WebhookDispatch) => dispatch.perTenant ?? DEFAULT_TENANT_SHARE;

async function startAll(db: Queryable, dispatch: WebhookDispatch, ids: string[]): Promise<number> {
  await Promise.all(ids.map((id) => startDelivery(dispatch, id)));
  await markDispatched(db, ids);
  return ids.length;
}

/**
 * Hands the deliveries of these causes' tenants to delivery workflows, as many as each tenant's
 * share leaves room for, oldest first (a no-op for started ones). A tenant whose receivers hang
 * keeps its backlog here, so it never fills the Temporal server with deliveries waiting a turn.
 */
export async function dispatchPending(db: Queryable, dispatch: WebhookDispatch, sourceKeys: string[]): Promise<number> {
  if (sourceKeys.length === 0) return 0;
  return startAll(db, dispatch, await dispatchableDeliveryIds(db, { sourceKeys }, share(dispatch), 200));
}

/** Called when one of the tenant's deliveries ended: the next ones waiting take its place. */
export async function dispatchNext(db: Queryable, dispatch: WebhookDispatch, tenantId: string): Promise<number> {
  return startAll(db, dispatch, await dispatchableDeliveryIds(db, { tenantId }, share(dispatch), 200));
}

/**
 * Starts the deliveries that were committed but never started: the start failed after the commit
 * (Temporal unreachable for a moment), the process died in between, or a delivery's end did not
 * get to hand over its place. Run by every worker now and then, within each tenant's share;
 * starting an already started delivery is a no-op, so two sweepers do no harm.
 */
export async function dispatchForgotten(
  db: Queryable,
  dispatch: WebhookDispatch,
  olderThanMs = 60_000,
  limit = 200,
): Promise<number> {
  const ids = await dispatchableDeliveryIds(db, { olderThanMs }, share(dispatch), limit);
  for (const id of ids) await startDelivery(dispatch, id);
  await markDispatched(db, ids);
  return ids.length;
}

/**
 * Frees the places of deliveries whose workflow is closed though they never ended: a workflow
 * terminated (or cancelled) from outside, in the Temporal UI say, never runs its last activity.
 * Such a delivery ends as failed (its id cannot run again: REJECT_DUPLICATE), and the next ones of
 * its tenant take its place. Looks at up to `limit` of those in flight longer than `olderThanMs`,
 * the ones not looked at for longest first; returns how many it freed.
 */
export async function reclaimClosedDeliveries(
  db: Queryable,
  dispatch: WebhookDispatch,
  olderThanMs = 60_000,
  limit = 50,
): Promise<number> {
  const candidates = await deliveriesInFlightToCheck(db, olderThanMs, limit);
  const closed: string[] = [];
  const running: string[] = [];
  for (const { id } of candidates) {
    // Gone from the server (past its retention) is closed long ago.
    const standing = await workflowStanding(dispatch.client, deliveryWorkflowId(id));
    (standing === 'running' ? running : closed).push(id);
  }
  await markSlotsChecked(db, running);
  const tenants = await failAbandonedDeliveries(db, closed);
  for (const tenant of tenants) await dispatchNext(db, dispatch, tenant);
  return closed.length;
}

/** The delivery's workflow id: one run per delivery, ever. */
function deliveryWorkflowId(deliveryId: string): string {
  return `webhook-delivery/${deliveryId}`;
}

export async function startDelivery(dispatch: WebhookDispatch, deliveryId: string): Promise<void> {
  const input: WebhookDeliveryInput = { deliveryId, retry: dispatch.retry };
  try {
    await dispatch.client.workflow.start(WEBHOOK_DELIVERY_WORKFLOW_TYPE, {
      workflowId: deliveryWorkflowId(deliveryId),
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
