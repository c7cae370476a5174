/**
 * Schema migrations with node-pg-migrate: plain SQL files in `migrations/`, applied in order,
 * recorded in `pgmigrations`. node-pg-migrate's own lock makes a second process fail at once;
 * here a blocking advisory lock makes it wait instead, then find nothing left to apply.
 */
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import pg from 'pg';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));
/** Any constant shared by every process migrating this schema. */
const MIGRATION_LOCK_KEY = 7_300_511_042;

export async function migrate(databaseUrl: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const silent = { debug() {}, info() {}, warn() {}, error() {} };
    const applied = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      migrationsTable: 'pgmigrations',
      checkOrder: true,
      singleTransaction: true,
      noLock: true,
      logger: silent,
    });
    return applied.map((m) => m.name);
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await client.end();
  }
}
