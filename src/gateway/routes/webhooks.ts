/** Webhooks: subscriptions, their deliveries (every attempt), and a test delivery. */
import { randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { dispatchPending, WEBHOOK_EVENTS } from '../../webhooks/outbox.js';
import type { GatewayDeps } from '../app.js';
import { ApiError, notFound, parseOr400 } from '../errors.js';
import { inTransaction } from '../../db/pool.js';
import * as hooks from '../../db/webhook-repo.js';
import type { WebhookRow } from '../../db/webhook-repo.js';
import { enforceQuota, quotasOf } from '../../db/quotas.js';
import { callerOf } from '../middleware.js';
import type { RouteBook } from '../route-book.js';
import { webhookTargetProblem } from '../../webhooks/targets.js';
import { Uuid, withUuid } from './params.js';
import { getProject } from '../../db/story-repo.js';

export const WebhookBody = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).max(2000),
  events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).max(WEBHOOK_EVENTS.length),
  // Only this project's events (a project of the caller's tenant); absent or null: every event.
  project_id: Uuid.nullable().optional(),
});

const webhookJson = (w: WebhookRow) => ({
  id: w.id,
  url: w.url,
  events: w.events,
  project_id: w.project_id,
  created_at: w.created_at,
});

export function webhookRoutes(book: RouteBook, deps: GatewayDeps): void {
  const { pool } = deps;

  /** A webhook of the tenant; a removed one only where its past is read (`withRemoved`). */
  const webhookOr404 = async (tenantId: string, id: unknown, withRemoved = false) => {
    const hook = await withUuid(id, (id) => hooks.getWebhook(pool, tenantId, id, withRemoved));
    if (!hook) throw notFound('Webhook');
    return hook;
  };

  book.add(
    {
      method: 'post',
      path: '/webhooks',
      summary: 'Subscribe a URL to events; the signing secret is shown once',
      tag: 'Webhooks',
      roles: ['admin'],
      body: WebhookBody,
      status: 201,
      errors: ['quota_exceeded', 'not_found'],
    },
    async (req, res) => {
      const body = parseOr400(WebhookBody, req.body);
      if (!deps.config.WEBHOOK_ALLOW_PRIVATE_TARGETS) {
        const problem = await webhookTargetProblem(body.url, { refuseUnresolved: false });
        if (problem)
          throw new ApiError(
            'invalid_body',
            `The webhook URL points to ${problem}; webhooks go to public addresses only.`,
            { field: 'url' },
          );
      }
      const tenantId = callerOf(res).tenantId;
      // Another tenant's project, like one that does not exist, is not found (never named as foreign).
      const project = body.project_id == null ? null : await getProject(pool, tenantId, body.project_id);
      if (body.project_id != null && !project) throw notFound('Project');
      const secret = `whsec_${randomBytes(24).toString('base64url')}`;
      const hook = await inTransaction(pool, async (db) => {
        // Every transition fans out to each subscribed webhook: a bound keeps one tenant from
        // flooding the shared delivery workers. Counted under a per-tenant lock, so concurrent
        // subscriptions cannot all pass the count.
        await enforceQuota(db, tenantId, quotasOf(deps.config), 'webhooks', 1);
        return hooks.insertWebhook(db, tenantId, {
          url: body.url,
          events: [...new Set(body.events)],
          secret,
          projectId: project?.id ?? null,
        });
      });
      res.status(201).json({ data: { ...webhookJson(hook), secret } });
    },
  );

  book.add(
    { method: 'get', path: '/webhooks', summary: 'Webhooks of the tenant', tag: 'Webhooks', roles: ['admin'] },
    async (_req, res) => {
      const rows = await hooks.listWebhooks(pool, callerOf(res).tenantId);
      res.json({ data: rows.map(webhookJson), meta: { limit: rows.length, next_cursor: null } });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/webhooks/:id/deliveries',
      summary: 'Deliveries of a webhook, newest first, with every attempt',
      tag: 'Webhooks',
      roles: ['admin'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const hook = await webhookOr404(caller.tenantId, req.params.id, true);
      const rows = await hooks.webhookDeliveries(pool, caller.tenantId, hook.id, 200);
      res.json({ data: rows, meta: { limit: 200, next_cursor: null } });
    },
  );

  book.add(
    {
      method: 'post',
      path: '/webhooks/:id/test',
      summary: 'Send a test delivery to this webhook',
      tag: 'Webhooks',
      roles: ['admin'],
      status: 201,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const hook = await webhookOr404(caller.tenantId, req.params.id);
      const sourceKey = `test:${randomUUID()}`;
      await hooks.enqueueTestDelivery(pool, caller.tenantId, hook.id, sourceKey);
      // The delivery is committed: if Temporal cannot take it now, the worker's sweep starts it.
      await dispatchPending(pool, deps.commands.webhooks, [sourceKey]).catch(() => undefined);
      res.status(201).json({ data: { webhook_id: hook.id, event: 'webhook.test', source_key: sourceKey } });
    },
  );

  book.add(
    {
      method: 'delete',
      path: '/webhooks/:id',
      summary: 'Remove a webhook: nothing more is sent to it, pending deliveries included',
      tag: 'Webhooks',
      roles: ['admin'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const hook = await webhookOr404(caller.tenantId, req.params.id);
      await inTransaction(pool, (db) => hooks.removeWebhook(db, caller.tenantId, hook.id));
      res.json({ data: webhookJson(hook) });
    },
  );
}
