/** Webhook deliveries: each attempt signed with the webhook's secret and recorded. */
import { createHmac } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { WebhookDeliveryInput } from '../workflows/webhook-messages.js';
import type pg from 'pg';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { AddressNotAllowedError, hostOf, isPrivateAddress, pinnedLookup } from '../src/webhooks/targets.js';
import {
  deliveryTenant,
  deliveryToSend,
  finishDelivery,
  recordAttempt,
  recordedAttempts,
} from '../src/db/webhook-repo.js';
import { dispatchNext, type WebhookDispatch } from '../src/webhooks/outbox.js';
import type { WebhookActivities } from './types.js';

/** Bounds of one attempt: the configured timeout is held to these (the workflow allows 30 s per attempt). */
export const WEBHOOK_TIMEOUT_BOUNDS_MS = { min: 100, max: 25_000, default: 10_000 };

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export function createWebhookActivities(deps: {
  pool: pg.Pool;
  allowPrivateTargets: boolean;
  /** Deliveries of one tenant in flight at once in this worker (its share of the delivery slots). */
  tenantConcurrency?: number;
  /** The longest one attempt may take, connecting and waiting for the answer included. */
  attemptTimeoutMs?: number;
  /** Attempts per delivery in all (the retry budget); counted from the recorded attempts. */
  maximumAttempts?: number;
  /** Where a delivery that ends hands its tenant's place to the next one waiting (the outbox). */
  dispatch?: WebhookDispatch;
}): WebhookActivities {
  const { pool } = deps;
  const tenantConcurrency = deps.tenantConcurrency ?? 4;
  const { min, max } = WEBHOOK_TIMEOUT_BOUNDS_MS;
  const attemptTimeoutMs = Math.min(max, Math.max(min, deps.attemptTimeoutMs ?? WEBHOOK_TIMEOUT_BOUNDS_MS.default));
  // An attempt may wait for its tenant's slot as long as the activity's 30 s leave after the attempt.
  const slots = new TenantSlots(tenantConcurrency, tenantConcurrency * 4);
  const waitBudgetMs = Math.max(0, 28_000 - attemptTimeoutMs);
  const finish = (deliveryId: string, status: 'delivered' | 'failed') => finishDelivery(pool, deliveryId, status);
  return {
    async deliverWebhook(deliveryId: string, retry?: WebhookDeliveryInput['retry']): Promise<void> {
      const delivery = await deliveryToSend(pool, deliveryId);
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
      // One tenant's slow or hanging receivers hold at most its share of this worker's slots; a
      // few more of its deliveries wait here for a turn, the rest come back later (a retry kept on
      // the Temporal server, which spends no attempt of the budget: attempts are counted below).
      const tenant = delivery.tenant_id;
      if (!(await slots.acquire(tenant, waitBudgetMs))) {
        const busyRetry = Context.current().info.attempt;
        throw ApplicationFailure.create({
          message: "the tenant's share of deliveries is in flight; this one waits its turn",
          type: 'TenantBusy',
          nextRetryDelay: Math.min(1000 * 2 ** Math.min(busyRetry, 6), 60_000),
        });
      }
      try {
        await attemptDelivery(deliveryId, delivery, body, retry);
      } finally {
        slots.release(tenant);
      }
    },

    async finishDelivery(deliveryId: string, status: 'delivered' | 'failed'): Promise<void> {
      await finish(deliveryId, status);
      if (!deps.dispatch) return;
      const tenant = await deliveryTenant(pool, deliveryId);
      // A failed hand-over is not this delivery's failure: the sweeper starts the next one later.
      if (tenant) await dispatchNext(pool, deps.dispatch, tenant).catch(() => undefined);
    },
  };

  async function attemptDelivery(
    deliveryId: string,
    delivery: { url: string; secret: string; event: string },
    body: string,
    retry: WebhookDeliveryInput['retry'] | undefined,
  ): Promise<void> {
    // Numbered from the recorded attempts, not Temporal's attempt counter: a 'busy' answer ends
    // the activity, and the next one starts counting again from 1.
    const attempt = (await recordedAttempts(pool, deliveryId)) + 1;
    const budget = retry?.maximumAttempts ?? deps.maximumAttempts;
    if (budget !== undefined && attempt > budget)
      throw ApplicationFailure.nonRetryable(`the retry budget of ${budget} attempts is spent`, 'Spent');
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
        attemptTimeoutMs,
      );
    } catch (err) {
      if (err instanceof AddressNotAllowedError) {
        await recordAttempt(pool, {
          deliveryId,
          attempt,
          statusCode: null,
          error: 'address_not_allowed',
          durationMs: Date.now() - started,
        });
        throw ApplicationFailure.nonRetryable(
          `the webhook URL points to a private or local address`,
          'AddressNotAllowed',
        );
      }
      error = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.name) : 'error';
    }
    await recordAttempt(pool, { deliveryId, attempt, statusCode, error, durationMs: Date.now() - started });
    if (statusCode === null || statusCode < 200 || statusCode >= 300) {
      const message = `delivery attempt ${attempt} got ${statusCode ?? error}`;
      if (budget !== undefined && attempt >= budget) throw ApplicationFailure.nonRetryable(message, 'DeliveryFailed');
      // Backoff by real attempts (Temporal's attempt count includes turns waited).
      throw ApplicationFailure.create({
        message,
        type: 'DeliveryFailed',
        ...(retry ? { nextRetryDelay: Math.min(retry.initialIntervalMs * 2 ** (attempt - 1), 3_600_000) } : {}),
      });
    }
  }
}

/** At most `perTenant` holders per tenant; up to `waitersPerTenant` more wait in line (FIFO). */
class TenantSlots {
  private readonly held = new Map<string, number>();
  private readonly waiting = new Map<string, ((ok: boolean) => void)[]>();

  constructor(
    private readonly perTenant: number,
    private readonly waitersPerTenant: number,
  ) {}

  /** True once the caller holds a slot; false if the line is full or `maxWaitMs` passed first. */
  acquire(tenant: string, maxWaitMs: number): Promise<boolean> {
    const held = this.held.get(tenant) ?? 0;
    if (held < this.perTenant) {
      this.held.set(tenant, held + 1);
      return Promise.resolve(true);
    }
    const line = this.waiting.get(tenant) ?? [];
    if (line.length >= this.waitersPerTenant || maxWaitMs <= 0) return Promise.resolve(false);
    this.waiting.set(tenant, line);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        const at = line.indexOf(turn);
        if (at >= 0) line.splice(at, 1);
        resolve(false);
      }, maxWaitMs);
      const turn = (ok: boolean) => {
        clearTimeout(timer);
        resolve(ok);
      };
      line.push(turn);
    });
  }

  /** Hands the slot to the next in line, or frees it. */
  release(tenant: string): void {
    const next = this.waiting.get(tenant)?.shift();
    if (next) return next(true);
    if (this.waiting.get(tenant)?.length === 0) this.waiting.delete(tenant);
    const held = (this.held.get(tenant) ?? 1) - 1;
    if (held > 0) this.held.set(tenant, held);
    else this.held.delete(tenant);
  }
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
  timeoutMs: number,
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
        signal: AbortSignal.timeout(timeoutMs),
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
