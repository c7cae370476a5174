/**
 * One change at a time per project: imports, dependency changes, withdrawals and epic creation
 * each run in a transaction that holds the project row's lock until it commits.
 *
 * A waiter does not hold a database connection while it waits: the lock is tried without waiting
 * (NOWAIT), and a busy project means rolling back, giving the connection back and trying again
 * shortly. The holder may be waiting on a story workflow whose persistence needs a connection of
 * the same pool; waiters queued on the lock inside their transactions could take every one.
 *
 * NO KEY UPDATE: the workflows' own writes (rows referencing the project take KEY SHARE) go
 * through while the holder waits on one of them.
 */
import type pg from 'pg';
import { ApiError } from '../gateway/errors.js';
import { inTransaction } from './pool.js';

const LOCK_NOT_AVAILABLE = '55P03';

class ProjectBusy extends Error {}

export interface ProjectLockOptions {
  /** How long to keep trying before answering 503 (default a minute: a large merge takes a while). */
  waitMs?: number;
}

export async function withProjectLock<T>(
  pool: pg.Pool,
  projectId: string,
  fn: (db: pg.PoolClient) => Promise<T>,
  options: ProjectLockOptions = {},
): Promise<T> {
  const deadline = Date.now() + (options.waitMs ?? 60_000);
  for (let attempt = 0; ; attempt++) {
    try {
      return await inTransaction(pool, async (db) => {
        try {
          await db.query('SELECT id FROM projects WHERE id = $1 FOR NO KEY UPDATE NOWAIT', [projectId]);
        } catch (err) {
          if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) throw new ProjectBusy();
          throw err;
        }
        return fn(db);
      });
    } catch (err) {
      if (!(err instanceof ProjectBusy)) throw err;
      if (Date.now() >= deadline) {
        throw new ApiError(
          'unavailable',
          'The project is busy with another change; try again shortly.',
          {
            project_id: projectId,
          },
          { 'retry-after': '1' },
        );
      }
      const backoff = Math.min(10 * 2 ** attempt, 250) * (0.5 + Math.random());
      await new Promise((resolve) => setTimeout(resolve, backoff));
    }
  }
}
