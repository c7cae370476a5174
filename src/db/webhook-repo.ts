/**
 * Webhooks in the database: subscriptions, the outbox of deliveries (one row per subscribed
 * webhook and cause, written in the cause's transaction), and each delivery's attempts.
 */
import type pg from 'pg';

type Queryable = pg.Pool | pg.PoolClient;

export interface WebhookRow {
  id: string;
  url: string;
  events: string[];
  /** Only this project's events (null: every event of the tenant). */
  project_id: string | null;
  created_at: Date;
}

const WEBHOOK_COLUMNS = 'id, url, events, project_id, created_at';

/**
 * Records `event` for every webhook of the tenant that subscribes to it: of a project (`projectId`),
 * for the tenant's webhooks and that project's; of no project (an agent registered), for the
 * tenant's webhooks only.
 */
export async function enqueueEvent(
  db: Queryable,
  scope: { tenantId: string; projectId: string | null },
  event: string,
  sourceKey: string,
  payload: unknown,
): Promise<void> {
  await enqueueEvents(db, scope, [event], sourceKey, payload);
}

/**
 * Records each of `events` (one cause's, one payload) as `enqueueEvent` does, in one statement.
 * Returns how many deliveries were written: none means there is nothing of this cause to dispatch.
 */
export async function enqueueEvents(
  db: Queryable,
  scope: { tenantId: string; projectId: string | null },
  events: string[],
  sourceKey: string,
  payload: unknown,
): Promise<number> {
  const { rowCount } = await db.query(
    `INSERT INTO webhook_deliveries (tenant_id, webhook_id, event, source_key, payload)
     SELECT $1, w.id, e.event, $3, $4 FROM webhooks w CROSS JOIN unnest($2::text[]) AS e(event)
     WHERE w.tenant_id = $1 AND w.disabled_at IS NULL AND e.event = ANY (w.events)
       AND (w.project_id IS NULL OR w.project_id = $5::uuid)
     ON CONFLICT (webhook_id, source_key, event) DO NOTHING`,
    [scope.tenantId, events, sourceKey, JSON.stringify(payload), scope.projectId],
  );
  return rowCount ?? 0;
}

/** A test delivery to one webhook, whatever it subscribes to. */
export async function enqueueTestDelivery(
  db: Queryable,
  tenantId: string,
  webhookId: string,
  sourceKey: string,
): Promise<void> {
  await db.query(
    `INSERT INTO webhook_deliveries (tenant_id, webhook_id, event, source_key, payload) VALUES ($1, $2, 'webhook.test', $3, $4)`,
    [tenantId, webhookId, sourceKey, JSON.stringify({ message: 'test delivery' })],
  );
}

/**
 * Deliveries waiting to be handed to a workflow that fit in their tenant's share of deliveries in
 * flight (handed over, not finished), oldest first within each tenant: those of the tenants that
 * these causes belong to, or of one tenant, or (the sweeper) of every tenant, the waiting ones
 * older than `olderThanMs`.
 */
export async function dispatchableDeliveryIds(
  db: Queryable,
  scope: { sourceKeys: string[] } | { tenantId: string } | { olderThanMs: number },
  perTenant: number,
  limit: number,
): Promise<string[]> {
  const [filter, value] =
    'sourceKeys' in scope
      ? [
          'tenant_id IN (SELECT tenant_id FROM webhook_deliveries WHERE source_key = ANY ($1::text[]))',
          scope.sourceKeys,
        ]
      : 'tenantId' in scope
        ? ['tenant_id = $1::uuid', scope.tenantId]
        : ['created_at < now() - make_interval(secs => $1::double precision)', scope.olderThanMs / 1000];
  const { rows } = await db.query<{ id: string }>(
    `WITH waiting AS (
       SELECT id, tenant_id, created_at, row_number() OVER (PARTITION BY tenant_id ORDER BY created_at, id) AS place
       FROM webhook_deliveries WHERE status = 'pending' AND dispatched_at IS NULL AND ${filter}
     ), in_flight AS (
       SELECT tenant_id, count(*) AS n FROM webhook_deliveries
       WHERE status = 'pending' AND dispatched_at IS NOT NULL AND tenant_id IN (SELECT tenant_id FROM waiting)
       GROUP BY tenant_id
     )
     SELECT w.id FROM waiting w LEFT JOIN in_flight f USING (tenant_id)
     WHERE w.place <= $2 - coalesce(f.n, 0) ORDER BY w.created_at, w.id LIMIT $3`,
    [value, perTenant, limit],
  );
  return rows.map((r) => r.id);
}

/** The tenant a delivery belongs to. */
export async function deliveryTenant(db: Queryable, deliveryId: string): Promise<string | null> {
  const { rows } = await db.query<{ tenant_id: string }>('SELECT tenant_id FROM webhook_deliveries WHERE id = $1', [
    deliveryId,
  ]);
  return rows[0]?.tenant_id ?? null;
}

/**
 * Deliveries holding a place in their tenant's share (handed to a workflow, not finished) for
 * longer than `olderThanMs`, those not looked at for as long first: whose workflow may have been
 * closed without them (terminated in the Temporal UI, say).
 */
export async function deliveriesInFlightToCheck(
  db: Queryable,
  olderThanMs: number,
  limit: number,
): Promise<{ id: string; tenant_id: string }[]> {
  const { rows } = await db.query<{ id: string; tenant_id: string }>(
    `SELECT id, tenant_id FROM webhook_deliveries
     WHERE status = 'pending' AND dispatched_at IS NOT NULL
       AND coalesce(slot_checked_at, dispatched_at) < now() - make_interval(secs => $1::double precision)
     ORDER BY coalesce(slot_checked_at, dispatched_at), id LIMIT $2`,
    [olderThanMs / 1000, limit],
  );
  return rows;
}

/** These deliveries' workflows still run: looked at now, they wait their turn to be looked at again. */
export async function markSlotsChecked(db: Queryable, ids: string[]): Promise<void> {
  if (ids.length > 0)
    await db.query('UPDATE webhook_deliveries SET slot_checked_at = now() WHERE id = ANY ($1::uuid[])', [ids]);
}

/**
 * Ends as failed the pending deliveries whose workflow closed without ending them, so their places
 * in their tenants' shares are free; returns the tenants that got a place back.
 */
export async function failAbandonedDeliveries(db: Queryable, ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const { rows } = await db.query<{ tenant_id: string }>(
    `UPDATE webhook_deliveries SET status = 'failed', finished_at = now()
     WHERE id = ANY ($1::uuid[]) AND status = 'pending' RETURNING tenant_id`,
    [ids],
  );
  return [...new Set(rows.map((r) => r.tenant_id))];
}

export async function markDispatched(db: Queryable, ids: string[]): Promise<void> {
  if (ids.length > 0)
    await db.query(
      'UPDATE webhook_deliveries SET dispatched_at = now() WHERE id = ANY ($1::uuid[]) AND dispatched_at IS NULL',
      [ids],
    );
}

export interface DeliveryToSend {
  tenant_id: string;
  url: string;
  secret: string;
  event: string;
  payload: unknown;
  created_at: Date;
  status: string;
  removed: boolean;
}

/** A delivery with its webhook's address and secret. */
export async function deliveryToSend(db: Queryable, deliveryId: string): Promise<DeliveryToSend | null> {
  const { rows } = await db.query<DeliveryToSend>(
    `SELECT d.tenant_id, w.url, w.secret, d.event, d.payload, d.created_at, d.status, w.disabled_at IS NOT NULL AS removed
     FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1`,
    [deliveryId],
  );
  return rows[0] ?? null;
}

/** Ends a pending delivery (a finished one stays as it ended). */
export async function finishDelivery(db: Queryable, deliveryId: string, status: 'delivered' | 'failed') {
  await db.query(
    `UPDATE webhook_deliveries SET status = $2, finished_at = now() WHERE id = $1 AND status = 'pending'`,
    [deliveryId, status],
  );
}

/** How many attempts of the delivery are recorded. */
export async function recordedAttempts(db: Queryable, deliveryId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT coalesce(max(attempt), 0)::int AS n FROM webhook_attempts WHERE delivery_id = $1',
    [deliveryId],
  );
  return rows[0].n;
}

export async function recordAttempt(
  db: Queryable,
  attempt: { deliveryId: string; attempt: number; statusCode: number | null; error: string | null; durationMs: number },
): Promise<void> {
  await db.query(
    `INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (delivery_id, attempt) DO NOTHING`,
    [attempt.deliveryId, attempt.attempt, attempt.statusCode, attempt.error, attempt.durationMs],
  );
}

export async function insertWebhook(
  db: Queryable,
  tenantId: string,
  hook: { url: string; events: string[]; secret: string; projectId: string | null },
): Promise<WebhookRow> {
  const { rows } = await db.query<WebhookRow>(
    `INSERT INTO webhooks (tenant_id, url, events, secret, project_id) VALUES ($1, $2, $3, $4, $5) RETURNING ${WEBHOOK_COLUMNS}`,
    [tenantId, hook.url, hook.events, hook.secret, hook.projectId],
  );
  return rows[0];
}

/** A webhook of the tenant; a removed one only `withRemoved`. */
export async function getWebhook(
  db: Queryable,
  tenantId: string,
  id: string,
  withRemoved: boolean,
): Promise<WebhookRow | null> {
  const { rows } = await db.query<WebhookRow>(
    `SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND id = $2 AND ($3 OR disabled_at IS NULL)`,
    [tenantId, id, withRemoved],
  );
  return rows[0] ?? null;
}

export async function listWebhooks(db: Queryable, tenantId: string): Promise<WebhookRow[]> {
  const { rows } = await db.query<WebhookRow>(
    `SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND disabled_at IS NULL ORDER BY created_at`,
    [tenantId],
  );
  return rows;
}

/** The webhook's latest deliveries, newest first, each with every attempt. */
export async function webhookDeliveries(
  db: Queryable,
  tenantId: string,
  webhookId: string,
  limit: number,
): Promise<Record<string, unknown>[]> {
  const { rows } = await db.query<Record<string, unknown>>(
    `SELECT d.id, d.event, d.status, d.payload, d.created_at, d.finished_at,
     coalesce(json_agg(json_build_object('attempt', a.attempt, 'status_code', a.status_code, 'error', a.error,
       'duration_ms', a.duration_ms, 'attempted_at', a.attempted_at) ORDER BY a.attempt) FILTER (WHERE a.id IS NOT NULL), '[]') AS attempts
   FROM webhook_deliveries d LEFT JOIN webhook_attempts a ON a.delivery_id = d.id
   WHERE d.tenant_id = $1 AND d.webhook_id = $2 GROUP BY d.id ORDER BY d.created_at DESC LIMIT $3`,
    [tenantId, webhookId, limit],
  );
  return rows;
}

/** Removes a webhook: nothing more is sent to it, its pending deliveries end as failed. */
export async function removeWebhook(db: pg.PoolClient, tenantId: string, webhookId: string): Promise<void> {
  await db.query('UPDATE webhooks SET disabled_at = now() WHERE tenant_id = $1 AND id = $2 AND disabled_at IS NULL', [
    tenantId,
    webhookId,
  ]);
  // A delivery between attempts finds itself finished at its next attempt, and stops.
  await db.query(
    `UPDATE webhook_deliveries SET status = 'failed', finished_at = now() WHERE tenant_id = $1 AND webhook_id = $2 AND status = 'pending'`,
    [tenantId, webhookId],
  );
}
