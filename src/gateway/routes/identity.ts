/** Tenants, agents and API keys. */
import { z } from 'zod';
import { ROLES } from '../../custody/actions.js';
import * as repo from '../../db/identity-repo.js';
import { ApiError, notFound, parseOr400 } from '../errors.js';
import { callerOf } from '../middleware.js';
import type { RouteBook } from '../route-book.js';
import type { GatewayDeps } from '../app.js';
import { agentJson, keyJson, tenantJson } from '../views.js';
import { withUuid } from './params.js';

export const TenantBody = z.strictObject({ name: z.string().trim().min(1).max(200) });
export const AgentBody = z.strictObject({ name: z.string().trim().min(1).max(200), role: z.enum(ROLES) });

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
    },
    async (req, res) => {
      const body = parseOr400(AgentBody, req.body);
      const { agent, key, raw } = await repo.registerAgent(pool, callerOf(res).tenantId, body.name, body.role);
      res.status(201).json({ data: { agent: agentJson(agent), api_key: { ...keyJson(key), key: raw } } });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/agents',
      summary: 'Agents of the tenant',
      tag: 'Agents',
      roles: ['admin', 'orchestrator'],
    },
    async (_req, res) => {
      const agents = await repo.listAgents(pool, callerOf(res).tenantId);
      res.json({ data: agents.map(agentJson), meta: { limit: agents.length, next_cursor: null } });
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
      summary: 'Rotate a key: a new raw key for the same agent; the old one stops working',
      tag: 'Keys',
      errors: ['conflict'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const key = await withUuid(req.params.id, (id) => repo.getKey(pool, caller.tenantId, id));
      // Only the admin or the key's own agent may rotate it; to anyone else it does not exist.
      if (!key || (caller.role !== 'admin' && key.agent_id !== caller.agentId)) throw notFound('API key');
      if (key.revoked_at) throw new ApiError('conflict', 'This key is revoked; it cannot be rotated.');
      const rotated = await repo.rotateKey(pool, caller.tenantId, key.id);
      if (!rotated) throw new ApiError('conflict', 'This key is revoked; it cannot be rotated.');
      res.json({ data: { api_key: { ...keyJson(rotated.key), key: rotated.raw }, rotated_from: key.id } });
    },
  );

  book.add(
    { method: 'delete', path: '/api_keys/:id', summary: 'Revoke a key', tag: 'Keys', roles: ['admin'] },
    async (req, res) => {
      const caller = callerOf(res);
      const key = await withUuid(req.params.id, (id) => repo.revokeKey(pool, caller.tenantId, id));
      if (!key) throw notFound('API key');
      res.json({ data: keyJson(key) });
    },
  );
}
