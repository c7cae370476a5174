/** Tenants, agents and API keys. */
import { z } from 'zod';
import { ROLES } from '../../custody/actions.js';
import { agentActor } from '../../custody/actor.js';
import * as repo from '../../db/identity-repo.js';
import { quotasOf } from '../../db/quotas.js';
import { ApiError, notFound, parseOr400 } from '../errors.js';
import { callerOf } from '../middleware.js';
import type { RouteBook } from '../route-book.js';
import type { GatewayDeps } from '../app.js';
import { agentJson, keyJson, tenantJson } from '../views.js';
import { WholeListQuery, notBlank, wholeListReply, withUuid } from './params.js';
import { recordCallerChange, recordChange } from '../../db/change-audit.js';
import { enqueueEvent } from '../../db/webhook-repo.js';
import { dispatchPending } from '../../webhooks/outbox.js';

export const TenantBody = z.strictObject({ name: notBlank(200, true) });
export const AgentBody = z.strictObject({ name: notBlank(200, true), role: z.enum(ROLES) });

/** Signup is the one call without a key; its book is mounted before authentication. */
export function signupRoutes(book: RouteBook, deps: GatewayDeps): void {
  book.add(
    {
      method: 'post',
      path: '/tenants',
      summary: 'Sign up: a new tenant and its admin key (shown once)',
      tag: 'Tenants',
      auth: false,
      body: TenantBody,
      status: 201,
    },
    async (req, res) => {
      if (!deps.config.SIGNUP_ENABLED) throw new ApiError('forbidden', 'Signup is disabled on this server.');
      const body = parseOr400(TenantBody, req.body);
      const { tenant, agent, key, raw } = await repo.createTenant(deps.pool, body.name);
      await recordChange(deps.pool, {
        tenantId: tenant.id,
        action: 'tenant.created',
        actor: agentActor({ agentId: agent.id, role: agent.role }),
        payload: { name: tenant.name, admin_agent_id: agent.id, api_key_id: key.id },
      });
      res.status(201).json({
        data: { tenant: tenantJson(tenant), agent: agentJson(agent), api_key: { ...keyJson(key), key: raw } },
      });
    },
  );
}

export function identityRoutes(book: RouteBook, deps: GatewayDeps): void {
  const { pool } = deps;

  book.add(
    { method: 'get', path: '/tenants/me', summary: "The caller's tenant", tag: 'Tenants' },
    async (_req, res) => {
      const tenant = await repo.getTenant(pool, callerOf(res).tenantId);
      if (!tenant) throw notFound('Tenant');
      res.json({ data: tenantJson(tenant) });
    },
  );

  book.add(
    {
      method: 'post',
      path: '/agents/register',
      summary: 'Register an agent with a role; its key is shown once',
      tag: 'Agents',
      roles: ['admin'],
      body: AgentBody,
      status: 201,
      errors: ['quota_exceeded'],
    },
    async (req, res) => {
      const body = parseOr400(AgentBody, req.body);
      const caller = callerOf(res);
      const { agent, key, raw } = await repo.registerAgent(
        pool,
        caller.tenantId,
        body.name,
        body.role,
        quotasOf(deps.config),
      );
      const sourceKey = await recordCallerChange(pool, caller, {
        action: 'agent.registered',
        payload: { agent_id: agent.id, name: agent.name, role: agent.role, api_key_id: key.id },
      });
      await enqueueEvent(pool, { tenantId: caller.tenantId, projectId: null }, 'agent.registered', sourceKey, {
        agent: agentJson(agent),
        registered_by: caller.agentId,
      });
      await dispatchPending(pool, deps.commands.webhooks, [sourceKey]).catch(() => undefined);
      res.status(201).json({ data: { agent: agentJson(agent), api_key: { ...keyJson(key), key: raw } } });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/agents',
      summary: "Agents of the tenant: all, or a page (limit/offset, loopctl's page/page_size, cursor)",
      tag: 'Agents',
      roles: ['admin', 'orchestrator'],
      query: WholeListQuery,
    },
    async (req, res) => {
      const tenantId = callerOf(res).tenantId;
      res.json(
        await wholeListReply(
          req.query,
          () => repo.listAgents(pool, tenantId),
          (a) => [a.created_at.toISOString(), a.id],
          agentJson,
        ),
      );
    },
  );

  // Before `/agents/:id`, which would take `me` for an id.
  book.add(
    { method: 'get', path: '/agents/me', summary: "The caller's own agent and key (whoami)", tag: 'Agents' },
    async (_req, res) => {
      const caller = callerOf(res);
      const agent = await repo.getAgent(pool, caller.tenantId, caller.agentId);
      if (!agent) throw notFound('Agent');
      res.json({ data: { ...agentJson(agent), tenant_id: caller.tenantId, key_id: caller.keyId } });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/agents/:id',
      summary: 'One agent, with its keys (never raw)',
      tag: 'Agents',
      roles: ['admin', 'orchestrator'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const agent = await withUuid(req.params.id, (id) => repo.getAgent(pool, caller.tenantId, id));
      if (!agent) throw notFound('Agent');
      const keys = await repo.listKeys(pool, caller.tenantId, agent.id);
      res.json({ data: { ...agentJson(agent), api_keys: keys.map(keyJson) } });
    },
  );

  book.add(
    {
      method: 'post',
      path: '/api_keys/:id/rotate',
      summary: "Rotate one of the caller's own keys: a new raw key; the old one stops working",
      tag: 'Keys',
      errors: ['conflict'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const key = await withUuid(req.params.id, (id) => repo.getKey(pool, caller.tenantId, id));
      // Only the key's own agent may rotate it, an admin included: a new secret goes to nobody else
      // (an admin revokes other agents' keys). To anyone else it does not exist.
      if (!key || key.agent_id !== caller.agentId) throw notFound('API key');
      if (key.revoked_at) throw new ApiError('conflict', 'This key is revoked; it cannot be rotated.');
      const rotated = await repo.rotateKey(pool, caller, key.id);
      if (!rotated) throw new ApiError('conflict', 'This key is revoked; it cannot be rotated.');
      res.json({ data: { api_key: { ...keyJson(rotated.key), key: rotated.raw }, rotated_from: key.id } });
    },
  );

  book.add(
    {
      method: 'delete',
      path: '/api_keys/:id',
      summary: "Revoke a key (an admin, or the key's own agent)",
      tag: 'Keys',
    },
    async (req, res) => {
      const caller = callerOf(res);
      const found = await withUuid(req.params.id, (id) => repo.getKey(pool, caller.tenantId, id));
      if (!found || (caller.role !== 'admin' && found.agent_id !== caller.agentId)) throw notFound('API key');
      const key = await repo.revokeKey(pool, caller, found.id);
      if (!key) throw notFound('API key');
      res.json({ data: keyJson(key) });
    },
  );
}
