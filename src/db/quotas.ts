/**
 * Per-tenant quotas: agents, projects, stories, webhooks and stored bytes. A create counts under a
 * per-tenant lock held until its transaction ends, so concurrent creates cannot all pass the count.
 * Over the limit: 403 `quota_exceeded`, with the resource, the limit and the current use.
 */
import type pg from 'pg';
import type { Config } from '../config.js';
import { CustodyError } from '../custody/errors.js';

export type QuotaResource = 'agents' | 'projects' | 'stories' | 'webhooks' | 'stored_bytes';

export type Quotas = Record<QuotaResource, number>;

export function quotasOf(config: Config): Quotas {
  return {
    agents: config.QUOTA_AGENTS,
    projects: config.QUOTA_PROJECTS,
    stories: config.QUOTA_STORIES,
    webhooks: config.QUOTA_WEBHOOKS,
    stored_bytes: config.QUOTA_STORED_BYTES,
  };
}

const COUNTS: Record<Exclude<QuotaResource, 'stored_bytes'>, string> = {
  agents: 'SELECT count(*)::bigint AS n FROM agents WHERE tenant_id = $1',
  projects: 'SELECT count(*)::bigint AS n FROM projects WHERE tenant_id = $1',
  stories: 'SELECT count(*)::bigint AS n FROM stories WHERE tenant_id = $1',
  webhooks: 'SELECT count(*)::bigint AS n FROM webhooks WHERE tenant_id = $1 AND disabled_at IS NULL',
};

export function quotaExceeded(resource: QuotaResource, limit: number, used: number, requested: number): CustodyError {
  return new CustodyError(
    'quota_exceeded',
    `This tenant's quota of ${resource.replace('_', ' ')} (${limit}) would be exceeded.`,
    { resource, limit, used, requested },
  );
}

/** The tenant's stored bytes (story and audit rows as written). */
export async function storedBytes(db: pg.Pool | pg.PoolClient, tenantId: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT stored_bytes AS n FROM tenant_usage WHERE tenant_id = $1', [
    tenantId,
  ]);
  return Number(rows[0]?.n ?? 0);
}

/**
 * Refuses `adding` more of `resource` past the tenant's quota. Call it inside the transaction that
 * creates them: it takes the tenant's quota lock for that resource until the commit. With
 * `lock: false` it only checks (an early answer; the creating transaction still enforces).
 */
export async function enforceQuota(
  db: pg.PoolClient,
  tenantId: string,
  quotas: Quotas,
  resource: Exclude<QuotaResource, 'stored_bytes'>,
  adding: number,
  options: { lock?: boolean } = {},
): Promise<void> {
  if (adding <= 0) return;
  if (options.lock !== false) {
    await db.query(`SELECT pg_advisory_xact_lock(hashtextextended('custody-quota:' || $1 || ':' || $2, 0))`, [
      resource,
      tenantId,
    ]);
  }
  const used = Number((await db.query<{ n: string }>(COUNTS[resource], [tenantId])).rows[0].n);
  if (used + adding > quotas[resource]) throw quotaExceeded(resource, quotas[resource], used, adding);
  // Whatever is created also takes room: nothing is created once the byte quota is spent.
  await enforceStoredBytes(db, tenantId, quotas);
}

/** Refuses anything that would store more once the tenant's stored bytes have reached the quota. */
export async function enforceStoredBytes(db: pg.Pool | pg.PoolClient, tenantId: string, quotas: Quotas): Promise<void> {
  const used = await storedBytes(db, tenantId);
  if (used >= quotas.stored_bytes) throw quotaExceeded('stored_bytes', quotas.stored_bytes, used, 0);
}
