/** Migrations: safe to run twice, and from several processes at once. */
import { readdirSync } from 'node:fs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.js';

const MIGRATION_COUNT = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).length;
import { ADMIN_DATABASE_URL } from '../support/database.js';

async function emptyDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `custody_migrate_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

describe('migrations', () => {
  it('apply once when four processes migrate at the same time, and again find nothing to do', async () => {
    const db = await emptyDatabase();
    try {
      const results = await Promise.all([1, 2, 3, 4].map(() => migrate(db.url)));
      const appliedCounts = results.map((r) => r.length).sort();
      // One process applies every migration; the others wait for it and find nothing left.
      expect(appliedCounts).toEqual([0, 0, 0, MIGRATION_COUNT]);
      expect(await migrate(db.url)).toEqual([]);
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM pgmigrations`);
      const tables = await client.query(
        `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('stories', 'audit_events', 'api_keys')`,
      );
      await client.end();
      expect(rows[0].n).toBe(MIGRATION_COUNT);
      expect(tables.rows[0].n).toBe(3);
    } finally {
      await db.drop();
    }
  });
});
