/**
 * The gateway's rate-limit store on the real PostgreSQL: two stores stand for two gateway
 * processes sharing one database, and must count as one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Options } from 'express-rate-limit';
import type pg from 'pg';
import { createPool } from '../../src/db/pool.js';
import { PostgresRateLimitStore } from '../../src/db/rate-limits.js';
import { createTestDatabase } from '../support/database.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let poolA: pg.Pool;
let poolB: pg.Pool;

const storeOn = (pool: pg.Pool, prefix: string, windowMs = 60_000) => {
  const store = new PostgresRateLimitStore(pool, prefix);
  store.init({ windowMs } as Options);
  return store;
};

beforeAll(async () => {
  db = await createTestDatabase();
  poolA = createPool(db.url, 4);
  poolB = createPool(db.url, 4);
});
afterAll(async () => {
  await poolA?.end();
  await poolB?.end();
  await db?.drop();
});

describe('PostgresRateLimitStore', () => {
  it('counts one budget across two gateways, atomically', async () => {
    const [a, b] = [storeOn(poolA, 'agent'), storeOn(poolB, 'agent')];
    const totals = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).increment('agent:1').then((r) => r.totalHits)),
    );
    expect(totals.sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect((await a.get('agent:1'))?.totalHits).toBe(40);
    expect((await b.get('agent:1'))?.totalHits).toBe(40);
  });

  it('keeps limiters apart by name, and keys apart within one', async () => {
    const agent = storeOn(poolA, 'agent-2');
    const tenant = storeOn(poolA, 'tenant-2');
    await agent.increment('x');
    await agent.increment('x');
    expect((await tenant.increment('x')).totalHits).toBe(1);
    expect((await agent.increment('y')).totalHits).toBe(1);
    expect((await agent.get('x'))?.totalHits).toBe(2);
  });

  it('starts a new window once the old one is over, and reports when it resets', async () => {
    const store = storeOn(poolA, 'short', 300);
    const first = await store.increment('k');
    await store.increment('k');
    expect((await store.increment('k')).totalHits).toBe(3);
    expect(first.resetTime!.getTime()).toBeGreaterThan(Date.now() - 1000);
    await new Promise((r) => setTimeout(r, 450));
    expect(await store.get('k')).toBeUndefined();
    const fresh = await store.increment('k');
    expect(fresh.totalHits).toBe(1);
    expect(fresh.resetTime!.getTime()).toBeGreaterThan(first.resetTime!.getTime());
  });

  it('takes back a hit (a request that did not count) and forgets a key on reset', async () => {
    const store = storeOn(poolB, 'failed-auth');
    await store.increment('ip:1');
    await store.increment('ip:1');
    await store.decrement('ip:1');
    expect((await store.get('ip:1'))?.totalHits).toBe(1);
    await store.decrement('ip:1');
    await store.decrement('ip:1');
    expect((await store.get('ip:1'))?.totalHits).toBe(0);
    await store.resetKey('ip:1');
    expect(await store.get('ip:1')).toBeUndefined();
    expect((await store.increment('ip:1')).totalHits).toBe(1);
  });
});
