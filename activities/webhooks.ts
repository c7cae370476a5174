/** Webhook deliveries: each attempt signed with the webhook's secret and recorded. */
import { createHmac } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { AddressNotAllowedError, hostOf, isPrivateAddress, pinnedLookup } from '../src/webhooks/targets.js';
import type { WebhookActivities } from './types.js';

const ATTEMPT_TIMEOUT_MS = 10_000;

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export function createWebhookActivities(deps: { pool: pg.Pool; allowPrivateTargets: boolean }): WebhookActivities {
  const { pool } = deps;
  const finish = (deliveryId: string, status: 'delivered' | 'failed') =>
    pool.query(`UPDATE webhook_deliveries SET status = $2, finished_at = now() WHERE id = $1 AND status = 'pending'`, [
      deliveryId,
      status,
    ]);
  const recordAttempt = (
    deliveryId: string,
    attempt: number,
    statusCode: number | null,
    error: string | null,
    durationMs: number,
  ) =>
    pool.query(
      `INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (delivery_id, attempt) DO NOTHING`,
      [deliveryId, attempt, statusCode, error, durationMs],
    );
  return {
    async deliverWebhook(deliveryId: string): Promise<void> {
      const { rows } = await pool.query<{
        url: string;
        secret: string;
        event: string;
        payload: unknown;
        created_at: Date;
        status: string;
        removed: boolean;
      }>(
        `SELECT w.url, w.secret, d.event, d.payload, d.created_at, d.status, w.disabled_at IS NOT NULL AS removed
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1`,
        [deliveryId],
      );
      const delivery = rows[0];
      if (!delivery) throw ApplicationFailure.nonRetryable(`no delivery ${deliveryId}`, 'InvalidDelivery');
      if (delivery.status !== 'pending') return;
      // Its webhook was removed (perhaps after this event was written): nothing is sent, and the
      // delivery ends as failed, so it never reads as delivered.
      if (delivery.removed) {
        await finish(deliveryId, 'failed');
        return;
      }
      // loopctl's delivery format: receivers written for loopctl verify and read it unchanged.
      const body = JSON.stringify({
        id: deliveryId,
        event: delivery.event,
        timestamp: new Date(delivery.created_at).toISOString(),
        data: delivery.payload,
      });
      const attempt = Context.current().info.attempt;
      const started = Date.now();
      let statusCode: number | null = null;
      let error: string | null = null;
      try {
        statusCode = await post(
          delivery.url,
          body,
          {
            'content-type': 'application/json',
            'user-agent': 'custody-webhooks/1',
            'x-signature-256': signBody(delivery.secret, body),
            'x-webhook-id': deliveryId,
            'x-webhook-timestamp': String(Math.floor(Date.now() / 1000)),
            // custody's earlier names for the same, for receivers written against them.
            'x-signature': signBody(delivery.secret, body),
            'x-custody-event': delivery.event,
            'x-custody-delivery': deliveryId,
          },
          deps.allowPrivateTargets,
        );
      } catch (err) {
        if (err instanceof AddressNotAllowedError) {
          await recordAttempt(deliveryId, attempt, null, 'address_not_allowed', Date.now() - started);
          throw ApplicationFailure.nonRetryable(
            `the webhook URL points to a private or local address`,
            'AddressNotAllowed',
          );
        }
        error = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.name) : 'error';
      }
      await recordAttempt(deliveryId, attempt, statusCode, error, Date.now() - started);
      if (statusCode === null || statusCode < 200 || statusCode >= 300) {
        throw ApplicationFailure.retryable(`delivery attempt ${attempt} got ${statusCode ?? error}`, 'DeliveryFailed');
      }
    },

    async finishDelivery(deliveryId: string, status: 'delivered' | 'failed'): Promise<void> {
      await finish(deliveryId, status);
    },
  };
}

/**
 * One POST; resolves to the status code. Redirects are not followed. Unless private targets are
 * allowed, an address literal is checked here and a name is resolved by `pinnedLookup`, so the
 * connection goes only to an address that passed the check.
 */
function post(
  url: string,
  body: string,
  headers: Record<string, string>,
  allowPrivateTargets: boolean,
): Promise<number> {
  const target = new URL(url);
  const host = hostOf(target);
  if (!allowPrivateTargets && isIP(host) && isPrivateAddress(host))
    return Promise.reject(new AddressNotAllowedError(`${host} is a private address`));
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        ...(allowPrivateTargets ? {} : { lookup: pinnedLookup }),
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
