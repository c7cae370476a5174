/**
 * The Idempotency-Key middleware on the real PostgreSQL, behind a small app whose answers the test
 * scripts: what is stored, what is replayed, and what a retry may do after a failure.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/pool.js';
import { errorMiddleware } from '../../src/gateway/errors.js';
import { idempotency } from '../../src/gateway/middleware.js';
import { createTestDatabase } from '../support/database.js';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let pool: pg.Pool;
const servers: Server[] = [];
const caller = { tenantId: randomUUID(), agentId: randomUUID(), role: 'admin' };

/**
 * An app whose POST /thing answers, in turn, each status of `script` (then 200), with `payload`.
 * A status given as a promise holds the request until it settles.
 */
async function app(
  sealKey: Buffer,
  script: (number | Promise<number>)[],
  payload: Record<string, unknown> = {},
  staleAfterMs = 60_000,
) {
  const ran: unknown[] = [];
  const a = express();
  a.use(express.json());
  a.use((_req, res, next) => {
    res.locals.caller = caller;
    next();
  });
  a.use(idempotency(pool, { staleAfterMs, sealKey }));
  a.post('/thing', async (req, res) => {
    ran.push(req.body);
    const n = ran.length;
    res.status(await (script.shift() ?? 200)).json({ data: { ...payload, n } });
  });
  a.use(errorMiddleware(() => undefined));
  const server = a.listen(0);
  servers.push(server);
  await new Promise((r) => server.once('listening', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/thing`;
  const post = async (key: string, body: unknown) => {
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
    });
    return {
      status: r.status,
      replayed: r.headers.get('idempotent-replayed') === 'true',
      body: (await r.json()) as any,
    };
  };
  return { post, ran };
}

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 4);
});
afterAll(async () => {
  for (const s of servers) s.close();
  await pool?.end();
  await db?.drop();
});

describe('Idempotency-Key', () => {
  it('deletes expired keys now and then', async () => {
    await pool.query(
      `INSERT INTO idempotency_keys (tenant_id, agent_id, key, request_hash, status, response, expires_at)
       VALUES ($1, $2, 'long-gone', 'h', 200, '{}', now() - interval '1 hour')`,
      [caller.tenantId, caller.agentId],
    );
    const { post } = await app(randomBytes(32), []);
    await post(`k-${randomUUID()}`, {});
    let left = 1;
    for (let i = 0; i < 50 && left > 0; i++) {
      left = (await pool.query(`SELECT count(*)::int AS n FROM idempotency_keys WHERE key = 'long-gone'`)).rows[0].n;
      if (left > 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(left).toBe(0);
  });

  it('lets only the request holding a reservation settle it: one that outlived it cannot release the key under its successor', async () => {
    let finishA!: (status: number) => void;
    let finishB!: (status: number) => void;
    const a = new Promise<number>((r) => (finishA = r));
    const b = new Promise<number>((r) => (finishB = r));
    const { post, ran } = await app(randomBytes(32), [a, b], {}, 300);
    const key = `k-${randomUUID()}`;
    const first = post(key, { x: 1 });
    await new Promise((r) => setTimeout(r, 600)); // A's reservation is now stale
    const second = post(key, { x: 1 }); // B takes it over
    await new Promise((r) => setTimeout(r, 100));
    expect(ran).toHaveLength(2);
    finishA(500);
    expect((await first).status).toBe(500);
    // A's failure must not free B's reservation: C is told B is still in progress.
    const third = await post(key, { x: 1 });
    expect(third.status).toBe(409);
    expect(third.body.error).toMatchObject({ code: 'conflict', context: { retryable: true } });
    expect(ran).toHaveLength(2);
    finishB(200);
    expect((await second).status).toBe(200);
    const fourth = await post(key, { x: 1 });
    expect(fourth).toMatchObject({ status: 200, replayed: true, body: { data: { n: 2 } } });
  });

  it('does not spend a key on a 429 or a 5xx: the retry runs, and its answer is the one kept', async () => {
    const { post, ran } = await app(randomBytes(32), [429, 503]);
    const key = `k-${randomUUID()}`;
    expect((await post(key, { a: 1 })).status).toBe(429);
    expect((await post(key, { a: 1 })).status).toBe(503);
    const third = await post(key, { a: 1 });
    expect(third).toMatchObject({ status: 200, replayed: false, body: { data: { n: 3 } } });
    const fourth = await post(key, { a: 1 });
    expect(fourth).toMatchObject({ status: 200, replayed: true, body: { data: { n: 3 } } });
    expect(ran).toHaveLength(3);
  });

  it('refuses a different request under a key whose first request failed', async () => {
    const { post, ran } = await app(randomBytes(32), [500]);
    const key = `k-${randomUUID()}`;
    expect((await post(key, { a: 1 })).status).toBe(500);
    const other = await post(key, { a: 2 });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    expect((await post(key, { a: 1 })).status).toBe(200);
    expect(ran).toEqual([{ a: 1 }, { a: 1 }]);
  });

  it('stores responses sealed: a secret in an answer is replayed but not readable in the database', async () => {
    const sealKey = randomBytes(32);
    const secret = `cust_${randomBytes(24).toString('base64url')}`;
    const { post } = await app(sealKey, [], { key: secret });
    const key = `k-${randomUUID()}`;
    const first = await post(key, {});
    expect(first.body.data.key).toBe(secret);
    const { rows } = await pool.query('SELECT response::text AS text FROM idempotency_keys WHERE key = $1', [key]);
    expect(rows).toHaveLength(1);
    expect(rows[0].text).not.toContain(secret);
    expect(rows[0].text).toContain('sealed');
    const replay = await post(key, {});
    expect(replay).toMatchObject({ status: 200, replayed: true });
    expect(replay.body).toEqual(first.body);
    // A gateway with another signing key cannot open it, and says so rather than failing.
    const other = await app(randomBytes(32), []);
    const refused = await other.post(key, {});
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe('idempotency_key_reused');
  });
});
