/** Webhook deliveries: each attempt signed with the webhook's secret and recorded. */
import { createHmac } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import type { WebhookActivities } from './types.js';

const ATTEMPT_TIMEOUT_MS = 10_000;

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export function createWebhookActivities(deps: { pool: pg.Pool }): WebhookActivities {
  const { pool } = deps;
  return {
    async deliverWebhook(deliveryId: string): Promise<void> {
      const { rows } = await pool.query<{ url: string; secret: string; event: string; payload: unknown; created_at: Date; status: string }>(
        `SELECT w.url, w.secret, d.event, d.payload, d.created_at, d.status
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1`,
        [deliveryId],
      );
      const delivery = rows[0];
      if (!delivery) throw ApplicationFailure.nonRetryable(`no delivery ${deliveryId}`, 'InvalidDelivery');
      if (delivery.status !== 'pending') return;
      const body = JSON.stringify({ id: deliveryId, event: delivery.event, created_at: delivery.created_at, data: delivery.payload });
      const attempt = Context.current().info.attempt;
      const started = Date.now();
      let statusCode: number | null = null;
      let error: string | null = null;
      try {
        const res = await fetch(delivery.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'custody-webhooks/1',
            'x-signature': signBody(delivery.secret, body),
            'x-custody-event': delivery.event,
            'x-custody-delivery': deliveryId,
          },
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        });
        statusCode = res.status;
        await res.body?.cancel();
      } catch (err) {
        error = err instanceof Error ? err.name : 'error';
      }
      await pool.query(
        `INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (delivery_id, attempt) DO NOTHING`,
        [deliveryId, attempt, statusCode, error, Date.now() - started],
      );
      if (statusCode === null || statusCode < 200 || statusCode >= 300) {
        throw ApplicationFailure.retryable(`delivery attempt ${attempt} got ${statusCode ?? error}`, 'DeliveryFailed');
      }
    },

    async finishDelivery(deliveryId: string, status: 'delivered' | 'failed'): Promise<void> {
      await pool.query(`UPDATE webhook_deliveries SET status = $2, finished_at = now() WHERE id = $1 AND status = 'pending'`, [deliveryId, status]);
    },
  };
}
