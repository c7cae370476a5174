/** Idempotency keys: one row per (tenant, agent, key), reserved before the request runs. */
import type pg from 'pg';

const IDEMPOTENCY_TTL_HOURS = 24;

type KeyIds = [tenantId: string, agentId: string, key: string];

export async function deleteExpiredKeys(pool: pg.Pool): Promise<void> {
  await pool.query('DELETE FROM idempotency_keys WHERE expires_at < now()');
}

/**
 * Reserves the key for this request: taken when new, expired, or (for the same request only)
 * released or left stale (older than `staleAfterMs`) by a gateway that died mid-request. A key
 * taken after it expired starts a new generation; a released or stale one keeps its own, so the
 * retry of a request that may have been applied carries the same update id. Null when not taken.
 */
export async function reserveKey(
  pool: pg.Pool,
  ids: KeyIds,
  reservation: { requestHash: string; staleAfterMs: number; id: string },
): Promise<{ generation: string } | null> {
  const { rows } = await pool.query<{ generation: string }>(
    `INSERT INTO idempotency_keys (tenant_id, agent_id, key, request_hash, status, response, expires_at, reservation)
     VALUES ($1, $2, $3, $4, NULL, NULL, now() + make_interval(hours => $5), $7)
     ON CONFLICT (tenant_id, agent_id, key) DO UPDATE SET request_hash = excluded.request_hash,
       status = NULL, response = NULL, released = false, created_at = now(), expires_at = excluded.expires_at,
       reservation = excluded.reservation,
       generation = CASE WHEN idempotency_keys.expires_at <= now() THEN excluded.generation
                         ELSE idempotency_keys.generation END
     WHERE idempotency_keys.expires_at <= now()
        OR (idempotency_keys.status IS NULL AND idempotency_keys.request_hash = excluded.request_hash
            AND (idempotency_keys.released OR idempotency_keys.created_at < now() - make_interval(secs => $6)))
     RETURNING generation`,
    [...ids, reservation.requestHash, IDEMPOTENCY_TTL_HOURS, reservation.staleAfterMs / 1000, reservation.id],
  );
  return rows[0] ?? null;
}

export async function storedKey(
  pool: pg.Pool,
  ids: KeyIds,
): Promise<{ request_hash: string; status: number | null; response: unknown } | null> {
  const { rows } = await pool.query<{ request_hash: string; status: number | null; response: unknown }>(
    `SELECT request_hash, status, response FROM idempotency_keys WHERE tenant_id = $1 AND agent_id = $2 AND key = $3`,
    ids,
  );
  return rows[0] ?? null;
}

/** Gives the reservation up so a retry of the same request runs again. */
export async function releaseKey(pool: pg.Pool, ids: KeyIds, reservation: string): Promise<void> {
  await pool.query(
    `UPDATE idempotency_keys SET released = true
     WHERE tenant_id = $1 AND agent_id = $2 AND key = $3 AND status IS NULL AND reservation = $4`,
    [...ids, reservation],
  );
}

/** Stores the (sealed) response of the reservation's request. */
export async function storeResponse(
  pool: pg.Pool,
  ids: KeyIds,
  reservation: string,
  status: number,
  response: unknown,
): Promise<void> {
  await pool.query(
    `UPDATE idempotency_keys SET status = $5, response = $6
     WHERE tenant_id = $1 AND agent_id = $2 AND key = $3 AND status IS NULL AND reservation = $4`,
    [...ids, reservation, status, JSON.stringify(response)],
  );
}
