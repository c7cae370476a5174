/** Tenants, agents and API keys. Every function but signup and key lookup takes the tenant id. */
import { timingSafeEqual } from 'node:crypto';
import type pg from 'pg';
import type { Role } from '../custody/actions.js';
import type { AgentActor } from '../custody/actor.js';
import { recordCallerChange } from './change-audit.js';
import { keyDigest, keyLabel, newRawKey } from './keys.js';
import { inTransaction } from './pool.js';
import { enforceQuota, type Quotas } from './quotas.js';

export interface TenantRow {
  id: string;
  name: string;
  slug: string;
  created_at: Date;
}
export interface AgentRow {
  id: string;
  tenant_id: string;
  name: string;
  role: Role;
  created_at: Date;
}
export interface ApiKeyRow {
  id: string;
  agent_id: string;
  prefix: string;
  created_at: Date;
  revoked_at: Date | null;
}
/** The authenticated caller: an agent of a tenant in its role, and the key it used. */
export interface Caller extends AgentActor {
  tenantId: string;
  keyId: string;
  /** For display (the Temporal UI's identity, the board), never for decisions. */
  agentName?: string;
  tenantSlug?: string;
  /** The labels an admin gave the agent; signed into its actions (review policies require some). */
  labels?: string[];
}

type Queryable = pg.Pool | pg.PoolClient;

function slugify(name: string): string {
  const base = name
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 32);
  return base || 'tenant';
}

async function insertKey(db: Queryable, tenantId: string, agentId: string): Promise<{ key: ApiKeyRow; raw: string }> {
  const raw = newRawKey();
  const { rows } = await db.query<ApiKeyRow>(
    `INSERT INTO api_keys (tenant_id, agent_id, prefix, key_hash) VALUES ($1, $2, $3, $4)
     RETURNING id, agent_id, prefix, created_at, revoked_at`,
    [tenantId, agentId, keyLabel(raw), keyDigest(raw)],
  );
  return { key: rows[0], raw };
}

export async function createTenant(
  pool: pg.Pool,
  name: string,
): Promise<{ tenant: TenantRow; agent: AgentRow; key: ApiKeyRow; raw: string }> {
  return inTransaction(pool, async (db) => {
    const suffix = Math.random().toString(36).slice(2, 8);
    const { rows } = await db.query<TenantRow>(
      'INSERT INTO tenants (name, slug) VALUES ($1, $2) RETURNING id, name, slug, created_at',
      [name, `${slugify(name)}-${suffix}`],
    );
    const tenant = rows[0];
    const agent = (
      await db.query<AgentRow>(
        `INSERT INTO agents (tenant_id, name, role) VALUES ($1, $2, 'admin') RETURNING id, tenant_id, name, role, created_at`,
        [tenant.id, `${name} admin`],
      )
    ).rows[0];
    const { key, raw } = await insertKey(db, tenant.id, agent.id);
    return { tenant, agent, key, raw };
  });
}

export async function getTenant(pool: pg.Pool, tenantId: string): Promise<TenantRow | null> {
  const { rows } = await pool.query<TenantRow>('SELECT id, name, slug, created_at FROM tenants WHERE id = $1', [
    tenantId,
  ]);
  return rows[0] ?? null;
}

export async function registerAgent(
  pool: pg.Pool,
  tenantId: string,
  name: string,
  role: Role,
  quotas: Quotas,
): Promise<{ agent: AgentRow; key: ApiKeyRow; raw: string }> {
  return inTransaction(pool, async (db) => {
    await enforceQuota(db, tenantId, quotas, 'agents', 1);
    const agent = (
      await db.query<AgentRow>(
        'INSERT INTO agents (tenant_id, name, role) VALUES ($1, $2, $3) RETURNING id, tenant_id, name, role, created_at',
        [tenantId, name, role],
      )
    ).rows[0];
    const { key, raw } = await insertKey(db, tenantId, agent.id);
    return { agent, key, raw };
  });
}

export async function listAgents(pool: pg.Pool, tenantId: string): Promise<AgentRow[]> {
  const { rows } = await pool.query<AgentRow>(
    'SELECT id, tenant_id, name, role, created_at FROM agents WHERE tenant_id = $1 ORDER BY created_at, id',
    [tenantId],
  );
  return rows;
}

export async function getAgent(pool: pg.Pool, tenantId: string, agentId: string): Promise<AgentRow | null> {
  const { rows } = await pool.query<AgentRow>(
    'SELECT id, tenant_id, name, role, created_at FROM agents WHERE tenant_id = $1 AND id = $2',
    [tenantId, agentId],
  );
  return rows[0] ?? null;
}

export async function listKeys(pool: pg.Pool, tenantId: string, agentId: string): Promise<ApiKeyRow[]> {
  const { rows } = await pool.query<ApiKeyRow>(
    'SELECT id, agent_id, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = $1 AND agent_id = $2 ORDER BY created_at',
    [tenantId, agentId],
  );
  return rows;
}

export async function getKey(pool: pg.Pool, tenantId: string, keyId: string): Promise<ApiKeyRow | null> {
  const { rows } = await pool.query<ApiKeyRow>(
    'SELECT id, agent_id, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = $1 AND id = $2',
    [tenantId, keyId],
  );
  return rows[0] ?? null;
}

/**
 * Issues a new key for the key's own agent and revokes the old one, with its audit row, atomically.
 * Only that agent may: nobody else ever receives its secret (null for anyone else's key).
 */
export async function rotateKey(
  pool: pg.Pool,
  caller: Caller,
  keyId: string,
): Promise<{ key: ApiKeyRow; raw: string } | null> {
  return inTransaction(pool, async (db) => {
    const { rows } = await db.query<{ agent_id: string; prefix: string }>(
      `UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND id = $2 AND agent_id = $3 AND revoked_at IS NULL
       RETURNING agent_id, prefix`,
      [caller.tenantId, keyId, caller.agentId],
    );
    if (!rows[0]) return null;
    const rotated = await insertKey(db, caller.tenantId, rows[0].agent_id);
    await recordCallerChange(db, caller, {
      action: 'api_key.rotated',
      payload: {
        api_key_id: keyId,
        prefix: rows[0].prefix,
        agent_id: rows[0].agent_id,
        new_api_key_id: rotated.key.id,
      },
    });
    return rotated;
  });
}

/** Revokes a key (once; revoking it again changes nothing and writes no second audit row). */
export async function revokeKey(pool: pg.Pool, caller: Caller, keyId: string): Promise<ApiKeyRow | null> {
  return inTransaction(pool, async (db) => {
    const { rows } = await db.query<ApiKeyRow & { newly: boolean }>(
      `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = $1 AND id = $2
       RETURNING id, agent_id, prefix, created_at, revoked_at, (revoked_at = now()) AS newly`,
      [caller.tenantId, keyId],
    );
    const row = rows[0];
    if (!row) return null;
    if (row.newly) {
      await recordCallerChange(db, caller, {
        action: 'api_key.revoked',
        payload: { api_key_id: row.id, prefix: row.prefix, agent_id: row.agent_id },
      });
    }
    return {
      id: row.id,
      agent_id: row.agent_id,
      prefix: row.prefix,
      created_at: row.created_at,
      revoked_at: row.revoked_at,
    };
  });
}

/** The caller a raw key stands for, or null for an unknown or revoked key. */
export async function callerForKey(pool: pg.Pool, rawKey: string): Promise<Caller | null> {
  const digest = keyDigest(rawKey);
  const { rows } = await pool.query<{
    id: string;
    key_hash: Buffer;
    tenant_id: string;
    agent_id: string;
    role: Role;
    agent_name: string;
    tenant_slug: string;
    labels: string[];
  }>(
    `SELECT k.id, k.key_hash, k.tenant_id, k.agent_id, a.role, a.name AS agent_name, t.slug AS tenant_slug, a.labels
     FROM api_keys k JOIN agents a ON a.id = k.agent_id AND a.tenant_id = k.tenant_id
     JOIN tenants t ON t.id = k.tenant_id
     WHERE k.key_hash = $1 AND k.revoked_at IS NULL`,
    [digest],
  );
  const row = rows[0];
  if (!row || row.key_hash.length !== digest.length || !timingSafeEqual(row.key_hash, digest)) return null;
  return {
    tenantId: row.tenant_id,
    agentId: row.agent_id,
    role: row.role,
    keyId: row.id,
    agentName: row.agent_name,
    tenantSlug: row.tenant_slug,
    labels: row.labels ?? [],
  };
}
