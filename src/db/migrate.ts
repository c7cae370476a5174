/**
 * Schema migrations with node-pg-migrate: plain SQL files in `migrations/`, applied in order,
 * recorded in `pgmigrations`. Its advisory lock makes two processes migrating at once safe.
 */
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));

export async function migrate(databaseUrl: string): Promise<string[]> {
  const silent = { debug() {}, info() {}, warn() {}, error() {} };
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    checkOrder: true,
    singleTransaction: true,
    logger: silent,
  });
  return applied.map((m) => m.name);
}
