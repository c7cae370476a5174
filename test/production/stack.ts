/**
 * The stack docker-compose.yml describes, run on this machine without Docker, every part a process
 * of its own, with compose's own settings (test/support/compose.ts) and this machine's addresses:
 *
 * - `postgresql`: the machine's PostgreSQL; three databases of this run's own (Temporal's
 *   persistence and visibility, and custody's), as deploy/postgres-init.sql creates them;
 * - `temporal-schema`: deploy/temporal-schema.sh, with the SQL tool built from the same server
 *   version (src/temporal/server.ts), run twice as compose does on every `up`;
 * - `temporal`: the real server, PostgreSQL persistence and SQL visibility, its image's config
 *   template filled in from compose's variables, and deploy/temporal-dynamicconfig.yaml; ready
 *   when compose's health check (`temporal operator cluster health`) says SERVING;
 * - `temporal-namespace`: deploy/temporal-namespace.sh with the Temporal CLI;
 * - `migrate`: `npm run dev:migrate`, compose's command from the TypeScript (the image runs the
 *   compiled `npm run migrate`);
 * - `worker` and `gateway`: two of each, as `node --import tsx src/bin/{worker,gateway}.ts` (what
 *   `npm run dev:worker|dev:gateway` runs, without npm in between, so that SIGKILL reaches the
 *   process; the image runs them compiled, `npm run worker|gateway`).
 *
 * Everything listens on 127.0.0.1. Nothing here is mocked.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { newSigningSeed } from '../../src/custody/identity.js';
import { createPool } from '../../src/db/pool.js';
import { locateTemporalCli } from '../../src/temporal/cli.js';
import { run } from '../../src/temporal/go-build.js';
import { locateTemporalServer, type TemporalServerBuild } from '../../src/temporal/server.js';
import { Api } from '../support/api.js';
import { localEnv, readCompose, REPO_ROOT, type ComposeFile } from '../support/compose.js';
import { ADMIN_DATABASE_URL } from '../support/database.js';
import { freePort } from '../global-setup.js';
import {
  baseEnv as faultBaseEnv,
  fileTail,
  KillableProcess,
  ServiceProcess,
  sleep,
  stopEach,
} from '../fault/harness.js';

const DYNAMIC_CONFIG = 'deploy/temporal-dynamicconfig.yaml';

/** Compose's services see only what compose gives them. */
const NOT_FROM_COMPOSE = ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'TEMPORAL_CLI_PATH', 'LOG_LEVEL'];
const baseEnv = () => faultBaseEnv(NOT_FROM_COMPOSE);

/**
 * A free port below 32768: Temporal keeps its services' ports in a smallint column
 * (cluster_membership), and the kernel's ephemeral ports are above it.
 */
async function freeLowPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) {
      taken.add(port);
      return port;
    }
  }
}

async function dropDatabases(names: string[]): Promise<void> {
  const c = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await c.connect();
  try {
    for (const name of names) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

/** A job (a compose service that runs once): its output is kept in `log`; fails with its last lines. */
async function job(
  name: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  log: string,
): Promise<number> {
  const started = Date.now();
  const { code, output } = await run(command, args, env, REPO_ROOT);
  const out = createWriteStream(log, { flags: 'a' });
  out.end(`----- ${name} (${command} ${args.join(' ')}) exited ${code}\n${output}\n`);
  if (code !== 0) throw new Error(`${name} failed (exit ${code}):\n${output.split('\n').slice(-20).join('\n')}`);
  return Date.now() - started;
}

/** The real Temporal server, one process for all its services: killable and restartable on its ports. */
export class TemporalServerProcess extends KillableProcess {
  constructor(
    private readonly build: TemporalServerBuild,
    private readonly cli: string,
    private readonly env: NodeJS.ProcessEnv,
    readonly address: string,
    readonly logFile: string,
  ) {
    super();
  }

  /** Starts it and waits for compose's health check to pass; returns how long that took. */
  async start(timeoutMs = 180_000): Promise<number> {
    const started = Date.now();
    this.starts++;
    this.expectingExit = false;
    const log = createWriteStream(this.logFile, { flags: 'a' });
    log.write(`\n----- temporal start #${this.starts} at ${new Date().toISOString()}\n`);
    // The server image's command: `temporal-server --env docker start` over its config folder.
    const child = spawn(
      this.build.server,
      ['--root', this.build.root, '--config', 'config', '--env', 'docker', 'start'],
      {
        env: this.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.once('exit', (code, signal) => {
      log.end(`----- temporal exited (code ${code}, signal ${signal}) at ${new Date().toISOString()}\n`);
      if (this.child === child && !this.expectingExit) {
        this.unexpectedExits.push(`temporal server exited by itself (code ${code}, signal ${signal})`);
      }
    });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`the Temporal server exited before it served:\n${this.logTail(30)}`);
      }
      // Compose's health check, word for word but for the address.
      const health = await run(
        this.cli,
        ['operator', 'cluster', 'health', '--address', this.address, '--command-timeout', '3s'],
        this.env,
      );
      if (health.code === 0 && health.output.includes('SERVING')) return Date.now() - started;
      if (Date.now() > deadline)
        throw new Error(`the Temporal server did not serve in ${timeoutMs} ms:\n${this.logTail(30)}`);
      await sleep(500);
    }
  }

  logTail(lines: number): string {
    return fileTail(this.logFile, lines);
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM', 15_000);
  }
}

export interface StackTimings {
  build_ms: number;
  schema_ms: number;
  schema_again_ms: number;
  temporal_start_ms: number;
  namespace_ms: number;
  migrate_ms: number;
  workflow_bundle_ms: number;
  workers_and_gateways_ms: number;
}

export class ProductionStack {
  readonly api: Api;
  private constructor(
    readonly dir: string,
    readonly compose: ComposeFile,
    readonly build: TemporalServerBuild,
    readonly cli: string,
    readonly temporal: TemporalServerProcess,
    readonly databases: { temporal: string; visibility: string; custody: string },
    readonly databaseUrl: string,
    readonly workers: ServiceProcess[],
    readonly gateways: ServiceProcess[],
    readonly gatewayUrls: string[],
    readonly pool: pg.Pool,
    readonly client: Client,
    readonly namespace: string,
    readonly timings: StackTimings,
  ) {
    this.api = new Api(gatewayUrls[0]);
  }

  static async start(options: { workers?: number; gateways?: number } = {}): Promise<ProductionStack> {
    const say = (line: string) => process.stderr.write(`[production] ${line}\n`);
    let t = Date.now();
    const [build, cli] = await Promise.all([locateTemporalServer({ log: say }), locateTemporalCli({ log: say })]);
    if (!build) throw new Error('no Temporal server: install Go so it can be built (npm run temporal:install-server)');
    if (!cli) throw new Error('no Temporal CLI: install Go so it can be built (npm run temporal:install)');
    const buildMs = Date.now() - t;
    const compose = readCompose();
    const dir = mkdtempSync(join(tmpdir(), 'custody-production-'));
    // What to undo if the stack fails to come up, last first.
    const undo: (() => Promise<unknown>)[] = [];
    try {
      const jobsLog = join(dir, 'jobs.log');

      // postgresql: this run's own three databases (deploy/postgres-init.sql's, with a prefix).
      const admin = new URL(ADMIN_DATABASE_URL);
      const prefix = `custody_prod_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}`;
      const databases = {
        temporal: `${prefix}_temporal`,
        visibility: `${prefix}_temporal_visibility`,
        custody: prefix,
      };
      const adminClient = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
      await adminClient.connect();
      try {
        for (const name of Object.values(databases)) await adminClient.query(`CREATE DATABASE ${name}`);
      } finally {
        await adminClient.end();
      }
      undo.push(() => dropDatabases(Object.values(databases)));
      const pgHost = admin.hostname;
      const pgPort = admin.port || '5432';
      const pgUser = decodeURIComponent(admin.username) || 'postgres';
      const pgPassword = decodeURIComponent(admin.password);

      // temporal-schema, twice: compose runs it on every `up`, so a second run must change nothing.
      t = Date.now();
      const schemaEnv = {
        ...baseEnv(),
        ...localEnv(
          compose,
          'temporal-schema',
          {
            SQL_HOST: pgHost,
            SQL_PORT: pgPort,
            SQL_USER: pgUser,
            SQL_PASSWORD: pgPassword,
            DBNAME: databases.temporal,
            VISIBILITY_DBNAME: databases.visibility,
          },
          { TEMPORAL_SQL_TOOL: build.sqlTool, TEMPORAL_SCHEMA_DIR: build.schemaDir },
        ),
      };
      const schemaMs = await job('temporal-schema', 'sh', ['deploy/temporal-schema.sh'], schemaEnv, jobsLog);
      const schemaAgainMs = await job(
        'temporal-schema (again)',
        'sh',
        ['deploy/temporal-schema.sh'],
        schemaEnv,
        jobsLog,
      );

      // temporal: the server on free ports, every service in one process (compose runs it so too).
      const taken = new Set<number>();
      const ports: Record<string, number> = {};
      for (const name of [
        'FRONTEND_GRPC_PORT',
        'FRONTEND_HTTP_PORT',
        'FRONTEND_MEMBERSHIP_PORT',
        'HISTORY_GRPC_PORT',
        'HISTORY_MEMBERSHIP_PORT',
        'MATCHING_GRPC_PORT',
        'MATCHING_MEMBERSHIP_PORT',
        'WORKER_GRPC_PORT',
        'WORKER_MEMBERSHIP_PORT',
      ])
        ports[name] = await freeLowPort(taken);
      const address = `127.0.0.1:${ports.FRONTEND_GRPC_PORT}`;
      const temporalEnv = {
        ...baseEnv(),
        ...localEnv(
          compose,
          'temporal',
          {
            POSTGRES_SEEDS: pgHost,
            DB_PORT: pgPort,
            POSTGRES_USER: pgUser,
            POSTGRES_PWD: pgPassword,
            DBNAME: databases.temporal,
            VISIBILITY_DBNAME: databases.visibility,
            // The file compose mounts at this variable's path (test/unit/compose-in-step.test.ts).
            DYNAMIC_CONFIG_FILE_PATH: join(REPO_ROOT, DYNAMIC_CONFIG),
          },
          {
            ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
            BIND_ON_IP: '127.0.0.1',
            // The server's own log (to a file): warnings and errors only.
            LOG_LEVEL: 'warn',
          },
        ),
      };
      const validation = await run(
        build.server,
        ['validate-dynamic-config', join(REPO_ROOT, DYNAMIC_CONFIG)],
        temporalEnv,
      );
      if (validation.code !== 0) throw new Error(`${DYNAMIC_CONFIG} is not valid:\n${validation.output}`);
      const temporal = new TemporalServerProcess(build, cli, temporalEnv, address, join(dir, 'temporal.log'));
      undo.push(() => temporal.stop());
      const temporalStartMs = await temporal.start();

      // temporal-namespace.
      const namespaceEnv = {
        ...baseEnv(),
        ...localEnv(compose, 'temporal-namespace', { TEMPORAL_ADDRESS: address }, { TEMPORAL_CLI: cli }),
      };
      const namespaceMs = await job(
        'temporal-namespace',
        'sh',
        ['deploy/temporal-namespace.sh'],
        namespaceEnv,
        jobsLog,
      );
      const namespace = namespaceEnv.TEMPORAL_NAMESPACE ?? 'default';

      // migrate, then the workers and the gateways, with compose's custody settings.
      const databaseUrl = (() => {
        const u = new URL(ADMIN_DATABASE_URL);
        u.pathname = `/${databases.custody}`;
        return u.toString();
      })();
      const keyRing = `production:${newSigningSeed()}`;
      const custody = (service: string, extra: Record<string, string> = {}) => ({
        ...baseEnv(),
        ...localEnv(
          compose,
          service,
          {
            TEMPORAL_ADDRESS: address,
            DATABASE_URL: databaseUrl,
            CUSTODY_SIGNING_KEYS: keyRing,
            CUSTODY_SIGNING_KEY: '',
          },
          extra,
        ),
      });
      const migrateMs = await job('migrate', 'npm', ['run', '-s', 'dev:migrate'], custody('migrate'), jobsLog);

      // The image builds the workflow bundle once (Dockerfile); so does this run.
      t = Date.now();
      const bundle = join(dir, 'workflow-bundle.js');
      await job(
        'bundle-workflows',
        process.execPath,
        ['--import', 'tsx', 'src/bin/bundle-workflows.ts', bundle],
        baseEnv(),
        jobsLog,
      );
      const bundleMs = Date.now() - t;

      t = Date.now();
      const workers: ServiceProcess[] = [];
      for (let i = 1; i <= (options.workers ?? 2); i++) {
        const metricsPort = String(await freePort());
        workers.push(
          new ServiceProcess(
            `worker-${i}`,
            'src/bin/worker.ts',
            () => custody('worker', { TEMPORAL_METRICS_PORT: metricsPort, WORKFLOW_BUNDLE_PATH: bundle }),
            join(dir, `worker-${i}.log`),
            /"msg":"worker polling"/,
          ),
        );
      }
      const gateways: ServiceProcess[] = [];
      const gatewayUrls: string[] = [];
      for (let i = 1; i <= (options.gateways ?? 2); i++) {
        const port = String(await freePort());
        gatewayUrls.push(`http://127.0.0.1:${port}`);
        gateways.push(
          new ServiceProcess(
            `gateway-${i}`,
            'src/bin/gateway.ts',
            () => custody('gateway', { PORT: port, HOST: '127.0.0.1' }),
            join(dir, `gateway-${i}.log`),
            /"msg":"gateway listening"/,
          ),
        );
      }
      for (const p of [...workers, ...gateways]) undo.push(() => p.stop());
      await Promise.all([...workers, ...gateways].map((p) => p.start(180_000)));
      const servicesMs = Date.now() - t;

      const pool = createPool(databaseUrl, 2);
      const connection = await Connection.connect({ address });
      const client = new Client({ connection, namespace });
      return new ProductionStack(
        dir,
        compose,
        build,
        cli,
        temporal,
        databases,
        databaseUrl,
        workers,
        gateways,
        gatewayUrls,
        pool,
        client,
        namespace,
        {
          build_ms: buildMs,
          schema_ms: schemaMs,
          schema_again_ms: schemaAgainMs,
          temporal_start_ms: temporalStartMs,
          namespace_ms: namespaceMs,
          migrate_ms: migrateMs,
          workflow_bundle_ms: bundleMs,
          workers_and_gateways_ms: servicesMs,
        },
      );
    } catch (err) {
      await stopEach(undo.reverse());
      if (!process.env.PRODUCTION_KEEP_DIR) rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** The most connections seen at once, per database of this run (sampled every 500 ms while sampling). */
  readonly peakConnections: Record<string, number> = {};
  private sampler: { client: pg.Client; timer: NodeJS.Timeout } | null = null;

  async startSampling(): Promise<void> {
    const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await client.connect();
    const names = Object.values(this.databases);
    const sample = async () => {
      const { rows } = await client.query<{ datname: string; n: number }>(
        'SELECT datname, count(*)::int AS n FROM pg_stat_activity WHERE datname = ANY ($1) GROUP BY datname',
        [names],
      );
      let total = 0;
      for (const { datname, n } of rows) {
        this.peakConnections[datname] = Math.max(this.peakConnections[datname] ?? 0, n);
        total += n;
      }
      this.peakConnections.all = Math.max(this.peakConnections.all ?? 0, total);
    };
    await sample();
    const timer = setInterval(() => void sample().catch(() => undefined), 500);
    this.sampler = { client, timer };
  }

  async stopSampling(): Promise<void> {
    if (!this.sampler) return;
    clearInterval(this.sampler.timer);
    await this.sampler.client.end().catch(() => undefined);
    this.sampler = null;
  }

  /** How many of these workflows have a row in this run's visibility database. */
  async visibilityRows(workflowIds: string[]): Promise<number> {
    const u = new URL(ADMIN_DATABASE_URL);
    u.pathname = `/${this.databases.visibility}`;
    const c = new pg.Client({ connectionString: u.toString() });
    await c.connect();
    try {
      const { rows } = await c.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM executions_visibility WHERE workflow_id = ANY ($1)',
        [workflowIds],
      );
      return rows[0].n;
    } finally {
      await c.end();
    }
  }

  /** Every exit that no test asked for, of any process of the stack. */
  unexpectedExits(): string[] {
    return [
      ...this.temporal.unexpectedExits,
      ...this.workers.flatMap((w) => w.unexpectedExits),
      ...this.gateways.flatMap((g) => g.unexpectedExits),
    ];
  }

  unexpectedExitSummaries(): string[] {
    return this.unexpectedExits().map((text) => text.split('\n')[0].replace(/; last lines:$/, ''));
  }

  logsTail(lines = 20): string {
    return [
      ...[...this.workers, ...this.gateways].flatMap((p) => [`--- ${p.name} (${p.logPath})`, p.lastLines(lines)]),
      `--- temporal (${this.temporal.logFile})`,
      this.temporal.logTail(lines),
    ].join('\n');
  }

  async stop(): Promise<void> {
    await stopEach([
      () => this.stopSampling(),
      ...this.gateways.map((gateway) => () => gateway.stop()),
      ...this.workers.map((worker) => () => worker.stop()),
      () => this.client.connection.close(),
      () => this.temporal.stop(),
      () => this.pool.end(),
      () => dropDatabases(Object.values(this.databases)),
    ]);
    if (!process.env.PRODUCTION_KEEP_DIR) rmSync(this.dir, { recursive: true, force: true });
  }
}
