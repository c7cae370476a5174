/** Tenants, agents and API keys. */
import { Router } from 'express';
import { z } from 'zod';
import { ROLES } from '../../custody/actions.js';
import * as repo from '../../db/identity-repo.js';
import { ApiError, notFound, parseOr400 } from '../errors.js';
import { callerOf, requireRole } from '../middleware.js';
import type { GatewayDeps } from '../app.js';
import { agentJson, keyJson, tenantJson } from '../views.js';
import { Uuid, withUuid } from './params.js';

export const TenantBody = z.strictObject({ name: z.string().trim().min(1).max(200) });
export const AgentBody = z.strictObject({ name: z.string().trim().min(1).max(200), role: z.enum(ROLES) });

/** Signup is the one call without a key; it is mounted before authentication. */
export function signupRouter(deps: GatewayDeps): Router {
  const router = Router();
  router.post('/tenants', async (req, res) => {
    if (!deps.config.SIGNUP_ENABLED) throw new ApiError('forbidden', 'Signup is disabled on this server.');
    const body = parseOr400(TenantBody, req.body);
    const { tenant, agent, key, raw } = await repo.createTenant(deps.pool, body.name);
    res.status(201).json({ data: { tenant: tenantJson(tenant), agent: agentJson(agent), api_key: { ...keyJson(key), key: raw } } });
  });
  return router;
}

export function identityRouter(deps: GatewayDeps): Router {
  const { pool } = deps;
  const router = Router();

  router.get('/tenants/me', async (_req, res) => {
    const tenant = await repo.getTenant(pool, callerOf(res).tenantId);
    if (!tenant) throw notFound('Tenant');
    res.json({ data: tenantJson(tenant) });
  });

  router.post('/agents/register', requireRole('admin'), async (req, res) => {
    const body = parseOr400(AgentBody, req.body);
    const { agent, key, raw } = await repo.registerAgent(pool, callerOf(res).tenantId, body.name, body.role);
    res.status(201).json({ data: { agent: agentJson(agent), api_key: { ...keyJson(key), key: raw } } });
  });

  router.get('/agents', requireRole('admin', 'orchestrator'), async (_req, res) => {
    const agents = await repo.listAgents(pool, callerOf(res).tenantId);
    res.json({ data: agents.map(agentJson), meta: { limit: agents.length, next_cursor: null } });
  });

  router.get('/agents/:id', requireRole('admin', 'orchestrator'), async (req, res) => {
    const caller = callerOf(res);
    const agent = await withUuid(req.params.id, (id) => repo.getAgent(pool, caller.tenantId, id));
    if (!agent) throw notFound('Agent');
    const keys = await repo.listKeys(pool, caller.tenantId, agent.id);
    res.json({ data: { ...agentJson(agent), api_keys: keys.map(keyJson) } });
  });

  router.post('/api_keys/:id/rotate', async (req, res) => {
    const caller = callerOf(res);
    const key = await withUuid(req.params.id, (id) => repo.getKey(pool, caller.tenantId, id));
    // Only the admin or the key's own agent may rotate it; to anyone else it does not exist.
    if (!key || (caller.role !== 'admin' && key.agent_id !== caller.agentId)) throw notFound('API key');
    if (key.revoked_at) throw new ApiError('conflict', 'This key is revoked; it cannot be rotated.');
    const rotated = await repo.rotateKey(pool, caller.tenantId, key.id);
    if (!rotated) throw new ApiError('conflict', 'This key is revoked; it cannot be rotated.');
    res.json({ data: { api_key: { ...keyJson(rotated.key), key: rotated.raw }, rotated_from: key.id } });
  });

  router.delete('/api_keys/:id', requireRole('admin'), async (req, res) => {
    const caller = callerOf(res);
    const key = await withUuid(req.params.id, (id) => repo.revokeKey(pool, caller.tenantId, id));
    if (!key) throw notFound('API key');
    res.json({ data: keyJson(key) });
  });

  return router;
}
