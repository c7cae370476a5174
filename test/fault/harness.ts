/**
 * The real service as separate processes, one set per fault test, so that each piece can be
 * killed with SIGKILL and started again:
 *
 * - a Temporal dev server (the CLI, a child process) with its state in a SQLite file in a temp
 *   directory, so it can be killed and restarted on the same port with every workflow intact;
 * - a fresh, migrated database on the machine's PostgreSQL (test/support/database.ts), optionally
 *   reached by the worker and the gateway through a cuttable TCP proxy (./tcp-proxy.ts);
 * - the worker and the gateway as `node --import tsx src/bin/{worker,gateway}.ts`, configured by
 *   the environment only, exactly as production runs them; the gateway keeps its port and its
 *   signing key across restarts.
 *
 * Everything listens on 127.0.0.1. Nothing here is mocked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import type pg from 'pg';
import { newSigningSeed } from '../../src/custody/identity.js';
import { createPool } from '../../src/db/pool.js';
import { locateTemporalCli } from '../../src/temporal/cli.js';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server.js';
import { Api } from '../support/api.js';
import { createTestDatabase } from '../support/database.js';
import { freePort } from '../global-setup.js';
import { TcpProxy } from './tcp-proxy.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A uniformly random number in [lo, hi). */
export const between = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

/** The process environment for a child, without what vitest put there for itself nor the names in `without`. */
export function baseEnv(without: readonly string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('VITEST') || k === 'NODE_OPTIONS' || k === 'TEMPORAL_METRICS_PORT') continue;
    if (without.includes(k)) continue;
    env[k] = v;
  }
  return env;
}

/** A child process a test kills and starts again; an exit nobody asked for is kept. */
export abstract class KillableProcess {
  child: ChildProcess | null = null;
  starts = 0;
  kills = 0;
  /** Exits nobody asked for: who exited and how (a service adds its last log lines). */
  readonly unexpectedExits: string[] = [];
  protected expectingExit = false;

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends `sig` and waits for the exit; SIGKILL after `graceMs` if it is still running. */
  protected async signal(sig: NodeJS.Signals, graceMs: number): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.expectingExit = true;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(sig);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** SIGKILL: no shutdown hook, no drain, whatever was in flight is lost. */
  async kill(): Promise<void> {
    this.kills++;
    await this.signal('SIGKILL', 0);
  }
}

/** Runs every teardown step in order, each whatever happened to the others. */
export async function stopEach(steps: (() => Promise<unknown> | undefined)[]): Promise<void> {
  for (const step of steps) {
    try {
      await step();
    } catch {
      // Teardown goes on: each piece is stopped whatever happened to the others.
    }
  }
}

/** The last lines of a log file ('' if there is none yet). */
export function fileTail(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

const TAIL_LINES = 60;

/** One of our Node processes (worker or gateway): started, SIGKILLed, started again. */
export class ServiceProcess extends KillableProcess {
  private stopped = false;
  private restarting: Promise<unknown> | null = null;
  private readonly log: WriteStream;
  private readonly tail: string[] = [];

  constructor(
    readonly name: string,
    private readonly script: string,
    private readonly env: () => NodeJS.ProcessEnv,
    readonly logPath: string,
    private readonly readyPattern: RegExp,
    /** Start again by itself after an unexpected exit (a supervisor's restart policy). */
    public autoRestart = false,
  ) {
    super();
    this.log = createWriteStream(logPath, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last lines it wrote, without routine info lines (pino level 30: one per request). */
  lastLines(n = 25): string {
    return this.tail
      .filter((line) => !line.startsWith('{"level":30'))
      .slice(-n)
      .join('\n');
  }

  private remember(line: string): void {
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
  }

  /** Spawns the process and resolves once it logged that it is ready; returns how long that took. */
  async start(timeoutMs = 120_000): Promise<number> {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.stopped = false;
    this.expectingExit = false;
    const started = Date.now();
    this.starts++;
    const child = spawn(process.execPath, ['--import', 'tsx', this.script], {
      cwd: REPO_ROOT,
      env: this.env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.log.write(`\n----- ${this.name} start #${this.starts} pid ${child.pid} at ${new Date().toISOString()}\n`);
    const ready = new Promise<void>((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        if (!done) reject(new Error(`${this.name} was not ready in ${timeoutMs} ms:\n${this.lastLines()}`));
      }, timeoutMs);
      let buffered = '';
      const onData = (chunk: Buffer) => {
        this.log.write(chunk);
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) {
          this.remember(line);
          if (!done && this.readyPattern.test(line)) {
            done = true;
            clearTimeout(timer);
            resolve();
          }
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code, signal) => {
        this.log.write(
          `----- ${this.name} pid ${child.pid} exited (code ${code}, signal ${signal}) at ${new Date().toISOString()}\n`,
        );
        if (!done) {
          done = true;
          clearTimeout(timer);
          reject(
            new Error(`${this.name} exited (code ${code}, signal ${signal}) before it was ready:\n${this.lastLines()}`),
          );
        }
        if (this.child === child && !this.expectingExit) {
          this.unexpectedExits.push(
            `${this.name} pid ${child.pid} exited by itself (code ${code}, signal ${signal}); last lines:\n${this.lastLines()}`,
          );
          if (this.autoRestart && !this.stopped) {
            this.restarting = sleep(1000)
              .then(() => (this.running || this.stopped ? undefined : this.start()))
              .catch(() => undefined)
              .finally(() => (this.restarting = null));
          }
        }
      });
    });
    await ready;
    return Date.now() - started;
  }

  protected override async signal(sig: NodeJS.Signals, graceMs: number): Promise<void> {
    await this.restarting;
    await super.signal(sig, graceMs);
  }

  async restart(): Promise<number> {
    await this.kill();
    return this.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.signal('SIGTERM', 5000);
    await new Promise<void>((r) => this.log.end(() => r()));
  }
}

/** The Temporal dev server with a persistent SQLite file: killable and restartable on one port. */
export class TemporalServer {
  server: DevServer | null = null;
  starts = 0;
  kills = 0;
  readonly unexpectedExits: string[] = [];
  private expectingExit = false;

  constructor(
    private readonly executable: string,
    readonly port: number,
    readonly dbFilename: string,
    readonly logFile: string,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<number> {
    const started = Date.now();
    this.starts++;
    this.expectingExit = false;
    const server = await startDevServer(
      { executable: this.executable, port: this.port, dbFilename: this.dbFilename, logFile: this.logFile },
      90_000,
    );
    this.server = server;
    server.process.once('exit', (code, signal) => {
      if (this.server === server && !this.expectingExit) {
        this.unexpectedExits.push(`temporal dev server exited by itself (code ${code}, signal ${signal})`);
      }
    });
    return Date.now() - started;
  }

  async kill(): Promise<void> {
    const child = this.server?.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.kills++;
    this.expectingExit = true;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    this.expectingExit = true;
    await this.server?.stop();
  }
}

/** The application_name of each service's database connections. */
export const WORKER_APP = 'custody-fault-worker';
export const GATEWAY_APP = 'custody-fault-gateway';

/**
 * Moments of the service, as PostgreSQL sees its connections:
 * - `in-transaction` (worker): between BEGIN and COMMIT of a projection + audit write;
 * - `committing` (worker): sending COMMIT, or just after it (the post-commit webhook lookup, or
 *   idle for under 3 ms after either): the rows are in, the activity has not reported back yet;
 * - `answering` (gateway): storing a response under its Idempotency-Key, just before sending it
 *   (a kill then leaves the key reserved: retries hear "in progress" until the reservation is stale).
 */
export type DatabaseMoment = 'in-transaction' | 'committing' | 'answering';

const justNow = `(state = 'active' OR (state = 'idle' AND state_change > clock_timestamp() - interval '3 milliseconds'))`;
const MOMENTS: Record<DatabaseMoment, { application: string; sql: string }> = {
  'in-transaction': {
    application: WORKER_APP,
    sql: `state IN ('idle in transaction', 'idle in transaction (aborted)')
      OR (state = 'active' AND (query LIKE 'UPDATE stories SET%' OR query LIKE 'INSERT INTO audit_events%' OR query LIKE 'SELECT id FROM stories WHERE workflow_id%'))`,
  },
  committing: {
    application: WORKER_APP,
    sql: `(query = 'COMMIT' OR query LIKE 'SELECT id FROM webhook_deliveries WHERE source_key%') AND ${justNow}`,
  },
  answering: {
    application: GATEWAY_APP,
    sql: `query LIKE 'UPDATE idempotency_keys SET status%' AND ${justNow}`,
  },
};

/**
 * Polls pg_stat_activity (directly, not through any proxy) until a connection of the service is
 * at `moment`, for at most `timeoutMs`; true if seen. The caller acts on it at once (a kill, a
 * cut): the moment may be over by then, so a test reports that it aimed, never that it hit.
 */
export async function waitForDatabaseMoment(h: Harness, moment: DatabaseMoment, timeoutMs: number): Promise<boolean> {
  const database = new URL(h.databaseUrl).pathname.slice(1);
  const { application, sql: condition } = MOMENTS[moment];
  const sql = `SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid() AND (${condition})`;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await h.pool.query<{ n: number }>(sql, [database, application]);
    if (rows[0].n > 0) return true;
  }
  return false;
}

export interface HarnessOptions {
  /** Used in temp dir and task queue names. */
  name: string;
  /** Route the worker's and the gateway's database connections through a cuttable proxy. */
  proxyDatabase?: boolean;
  /** Restart the worker by itself if it dies unasked (recorded as an unexpected exit all the same). */
  autoRestartWorker?: boolean;
  autoRestartGateway?: boolean;
  /** Settings for both the worker and the gateway (e.g. WEBHOOK_ALLOW_PRIVATE_TARGETS). */
  env?: Record<string, string>;
}

export class Harness {
  private constructor(
    readonly dir: string,
    readonly temporal: TemporalServer,
    readonly databaseUrl: string,
    private readonly dropDatabase: () => Promise<void>,
    readonly proxy: TcpProxy | null,
    readonly worker: ServiceProcess,
    readonly gateway: ServiceProcess,
    readonly baseUrl: string,
    readonly pool: pg.Pool,
    readonly client: Client,
    readonly taskQueue: string,
  ) {
    this.api = new Api(baseUrl);
  }

  readonly api: Api;

  static async start(options: HarnessOptions): Promise<Harness> {
    const dir = mkdtempSync(join(tmpdir(), `custody-fault-${options.name}-`));
    const executable = await locateTemporalCli({ explicitPath: process.env.TEMPORAL_CLI_PATH || undefined });
    if (!executable)
      throw new Error('no Temporal CLI: install Go so the dev server can be built, or set TEMPORAL_CLI_PATH');
    const temporal = new TemporalServer(
      executable,
      await freePort(),
      join(dir, 'temporal.sqlite'),
      join(dir, 'temporal.log'),
    );
    const [, db] = await Promise.all([temporal.start(), createTestDatabase()]);

    let serviceDatabaseUrl = db.url;
    let proxy: TcpProxy | null = null;
    if (options.proxyDatabase) {
      const target = new URL(db.url);
      proxy = await TcpProxy.open(target.hostname, Number(target.port || 5432));
      const viaProxy = new URL(db.url);
      viaProxy.hostname = '127.0.0.1';
      viaProxy.port = String(proxy.port);
      serviceDatabaseUrl = viaProxy.toString();
    }

    const gatewayPort = await freePort();
    const taskQueue = `custody-fault-${options.name}-${randomBytes(3).toString('hex')}`;
    // One key for every gateway start: stories trust the key they were started with.
    const signingSeed = newSigningSeed();
    const common = {
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: taskQueue,
      DATABASE_URL: serviceDatabaseUrl,
      LOG_LEVEL: 'info',
      CUSTODY_SIGNING_KEY: signingSeed,
      ...options.env,
    };
    const worker = new ServiceProcess(
      'worker',
      'src/bin/worker.ts',
      // PGAPPNAME names its connections in pg_stat_activity (see waitForDatabaseMoment).
      () => ({ ...baseEnv(), ...common, PGAPPNAME: WORKER_APP }),
      join(dir, 'worker.log'),
      /"msg":"worker polling"/,
      options.autoRestartWorker ?? false,
    );
    const gateway = new ServiceProcess(
      'gateway',
      'src/bin/gateway.ts',
      () => ({
        ...baseEnv(),
        ...common,
        PGAPPNAME: GATEWAY_APP,
        HOST: '127.0.0.1',
        PORT: String(gatewayPort),
        RATE_LIMIT_PER_MINUTE: '0',
        UPDATE_DEADLINE_MS: '5000',
      }),
      join(dir, 'gateway.log'),
      /"msg":"gateway listening"/,
      options.autoRestartGateway ?? false,
    );
    await Promise.all([worker.start(), gateway.start()]);
    const pool = createPool(db.url, 5);
    const connection = await Connection.connect({ address: temporal.address });
    const client = new Client({ connection, namespace: 'default' });
    return new Harness(
      dir,
      temporal,
      db.url,
      () => db.drop(),
      proxy,
      worker,
      gateway,
      `http://127.0.0.1:${gatewayPort}`,
      pool,
      client,
      taskQueue,
    );
  }

  /** Every exit that no test asked for, of any process of the stack. */
  unexpectedExits(): string[] {
    return [...this.temporal.unexpectedExits, ...this.worker.unexpectedExits, ...this.gateway.unexpectedExits];
  }

  /** One line per unexpected exit: who, how, and the error it died of. */
  unexpectedExitSummaries(): string[] {
    return this.unexpectedExits().map((text) => {
      const lines = text.split('\n');
      const error = lines.find((l) => /^\w*Error\b|Error:/.test(l.trim()));
      return `${lines[0].replace(/; last lines:$/, '')}${error ? `: ${error.trim()}` : ''}`;
    });
  }

  /** The last lines each process wrote, for a failure message. */
  logsTail(lines = 20): string {
    return [
      `--- worker (${this.worker.logPath})`,
      this.worker.lastLines(lines),
      `--- gateway (${this.gateway.logPath})`,
      this.gateway.lastLines(lines),
      '--- temporal',
      fileTail(this.temporal.logFile, lines),
    ].join('\n');
  }

  async stop(): Promise<void> {
    await stopEach([
      () => this.gateway.stop(),
      () => this.worker.stop(),
      () => this.client.connection.close(),
      () => this.temporal.stop(),
      () => this.proxy?.close(),
      () => this.pool.end(),
      () => this.dropDatabase(),
    ]);
    if (!process.env.FAULT_KEEP_DIR) rmSync(this.dir, { recursive: true, force: true });
  }
}
