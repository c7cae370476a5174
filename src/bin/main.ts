/**
 * `npm start`: the whole service on one machine. Starts, unless pointed elsewhere, the Temporal
 * dev server (persistent SQLite, Web UI) and an embedded PostgreSQL, both keeping their data
 * under ./.data; applies migrations; runs the worker and the gateway. Ctrl-C stops everything.
 * Both servers are supervised: one that crashes is started again (with backoff, one log line),
 * and the worker and gateway reconnect to it by themselves.
 *
 * A start that cannot finish (a port in use, no Temporal CLI, a data folder it cannot write or
 * that another start holds) prints one line naming the part and the next step, stops everything
 * it had started, and exits with code 1.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  gatewayApp,
  poolFor,
  storyCommands,
  storyWorkerOptions,
  temporalClientFor,
  type ServiceParts,
} from '../composition.js';
import { configuredKeyRing, loadConfigOrExit } from '../config.js';
import { keyRingOf, newSigningSeed, signingKeyFromSeed, type KeyRing } from '../custody/identity.js';
import { nativeSigningRing } from '../custody/native-sign.js';
import { startEmbeddedPostgres } from '../db/embedded.js';
import { migrate } from '../db/migrate.js';
import { startDevServer } from '../temporal/dev-server.js';
import { locateTemporalCli } from '../temporal/cli.js';
import { createLogger } from '../observability/log.js';
import { installTemporalRuntime } from '../temporal/runtime.js';
import { Supervisor } from '../supervisor.js';
import { createStoryWorker } from '../worker.js';
import { claimDataFolder } from '../startup/data-folder.js';
import { endDescendants } from '../startup/descendants.js';
import { inPart, oneLine, StartupError } from '../startup/failure.js';
import { assertPortsFree, portInUse, type PlannedPort } from '../startup/ports.js';
import { stopOrphans, TEMPORAL_PID_FILE } from '../startup/orphans.js';

const say = (line: string) => process.stdout.write(`${line}\n`);
const config = loadConfigOrExit();
const logger = createLogger(config.LOG_LEVEL);
const dataDir = resolve(config.CUSTODY_DATA_DIR);
const stops: (() => Promise<unknown>)[] = [];
/** Ends a first build of the Temporal CLI when start-up is abandoned. */
const abandon = new AbortController();
let phase: 'starting' | 'running' | 'stopping' = 'starting';

const gatewayPort: PlannedPort = { port: config.PORT, host: config.HOST, part: 'the gateway', setting: 'PORT' };

/** Every port this start will listen on, with who listens and the setting that moves it. */
function plannedPorts(): PlannedPort[] {
  const ports = [gatewayPort];
  if (!config.TEMPORAL_ADDRESS) {
    ports.push(
      { port: config.TEMPORAL_PORT, host: '127.0.0.1', part: 'the Temporal dev server', setting: 'TEMPORAL_PORT' },
      { port: config.TEMPORAL_UI_PORT, host: '127.0.0.1', part: 'the Temporal UI', setting: 'TEMPORAL_UI_PORT' },
    );
  }
  if (!config.DATABASE_URL) {
    ports.push({
      port: config.EMBEDDED_POSTGRES_PORT,
      host: '127.0.0.1',
      part: 'the embedded PostgreSQL',
      setting: 'EMBEDDED_POSTGRES_PORT',
    });
  }
  if (config.TEMPORAL_METRICS_PORT) {
    ports.push({
      port: config.TEMPORAL_METRICS_PORT,
      host: '127.0.0.1',
      part: "the Temporal SDK's metrics",
      setting: 'TEMPORAL_METRICS_PORT',
    });
  }
  return ports;
}

async function temporalAddress(): Promise<{ address: string; ui: string | null }> {
  if (config.TEMPORAL_ADDRESS) return { address: config.TEMPORAL_ADDRESS, ui: null };
  const executable = await inPart(
    'the Temporal CLI',
    () => locateTemporalCli({ explicitPath: config.TEMPORAL_CLI_PATH, log: say, signal: abandon.signal }),
    'or set TEMPORAL_CLI_PATH to a working `temporal` binary',
  );
  if (!executable) {
    throw new StartupError(
      'the Temporal dev server',
      'no Temporal CLI found, and no Go to build one',
      'install Go 1.22+ (https://go.dev/dl), or set TEMPORAL_CLI_PATH to a `temporal` binary',
    );
  }
  const logFile = resolve(dataDir, 'temporal.log');
  const options = {
    executable,
    port: config.TEMPORAL_PORT,
    uiPort: config.TEMPORAL_UI_PORT,
    dbFilename: resolve(dataDir, 'temporal.sqlite'),
    logFile,
    pidFile: resolve(dataDir, TEMPORAL_PID_FILE),
  };
  const supervisor = await inPart('the Temporal dev server', () =>
    Supervisor.start({ name: 'the Temporal dev server', start: () => startDevServer(options), log: say }),
  );
  stops.push(() => supervisor.stop());
  return { address: `127.0.0.1:${config.TEMPORAL_PORT}`, ui: `http://localhost:${config.TEMPORAL_UI_PORT}` };
}

/** The configured key ring, else a key of this machine's own, kept under the data folder. */
function keyRing(): KeyRing {
  const configured = configuredKeyRing(config);
  if (configured) return configured;
  const file = resolve(dataDir, 'signing-key');
  if (!existsSync(file)) writeFileSync(file, newSigningSeed(), { mode: 0o600 });
  return nativeSigningRing(keyRingOf(signingKeyFromSeed(readFileSync(file, 'utf8').trim())));
}

async function stopAll(): Promise<void> {
  while (stops.length > 0) await stops.pop()!().catch(() => undefined);
  // Whatever a phase had spawned and not yet handed over (or a grandchild) goes too.
  await endDescendants();
}

/** Any failure, in start-up or later: one line, everything stopped, exit code 1. */
async function fail(err: unknown): Promise<void> {
  if (phase === 'stopping') return;
  const heading = phase === 'starting' ? 'start-up failed' : 'custody stopped';
  phase = 'stopping';
  abandon.abort();
  const line = err instanceof StartupError ? err.message : `unexpected error: ${oneLine(err)}`;
  process.stderr.write(`${heading}: ${line}\n`);
  if (!(err instanceof StartupError)) logger.debug({ err }, 'the failure in full');
  await stopAll();
  process.exit(1);
}

/** Ctrl-C (or a service manager's SIGTERM): everything stops in order, then the process ends. */
async function stopOnSignal(code: number): Promise<void> {
  if (phase === 'stopping') return;
  phase = 'stopping';
  abandon.abort();
  say('stopping...');
  setTimeout(() => process.exit(code), 30_000).unref();
  await stopAll();
  process.exit(code);
}

process.on('uncaughtException', (err) => void fail(err));
process.on('unhandledRejection', (err) => void fail(err));
process.on('SIGINT', () => void stopOnSignal(130));
process.on('SIGTERM', () => void stopOnSignal(143));
process.on('SIGHUP', () => void stopOnSignal(129));

async function start(): Promise<void> {
  // First the data folder (writable, and no other npm start on it), then every port, before anything is started.
  const release = claimDataFolder(dataDir);
  stops.push(() => Promise.resolve(release()));
  // Servers an earlier start on this folder could not stop (it was SIGKILLed) hold its ports and files.
  await inPart('the servers an earlier npm start left running', () => stopOrphans(dataDir, say));
  await assertPortsFree(plannedPorts());
  const sdkMetricsUrl = installTemporalRuntime(logger, config.TEMPORAL_METRICS_PORT);
  const temporal = await temporalAddress();
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    let url = '';
    const supervisor = await inPart(
      'the embedded PostgreSQL',
      () =>
        Supervisor.start({
          name: 'the embedded PostgreSQL',
          start: async () => {
            const db = await startEmbeddedPostgres(dataDir, config.EMBEDDED_POSTGRES_PORT, { log: say });
            url = db.url;
            return db;
          },
          log: say,
        }),
      `its log is ${join(dataDir, 'postgres.log')}; or set DATABASE_URL to use another PostgreSQL`,
    );
    stops.push(() => supervisor.stop());
    databaseUrl = url;
  }
  await inPart(
    config.DATABASE_URL ? 'the database at DATABASE_URL' : 'the database migrations',
    () => migrate(databaseUrl),
    config.DATABASE_URL ? 'start that PostgreSQL, or correct DATABASE_URL' : undefined,
  );
  const pool = poolFor(config, databaseUrl);
  stops.push(() => pool.end());
  const client = await inPart(
    config.TEMPORAL_ADDRESS ? `Temporal at TEMPORAL_ADDRESS (${temporal.address})` : 'the Temporal client',
    () => temporalClientFor(config, temporal.address),
    config.TEMPORAL_ADDRESS ? 'start that Temporal, or correct TEMPORAL_ADDRESS' : undefined,
  );
  stops.push(() => client.connection.close());
  // One key for the gateway's envelopes and the worker's dependency news: the trusted path.
  const ring = await inPart('the signing key', () => keyRing());
  const parts: ServiceParts = { config, keyRing: ring, pool, client, temporalAddress: temporal.address };
  const { worker, connection } = await inPart('the story worker', () => createStoryWorker(storyWorkerOptions(parts)));
  const running = worker.run();
  stops.push(async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running.catch(() => undefined);
    await connection.close();
  });
  // A worker that stops by itself (not asked to) takes the service down with it, tidily.
  running.then(
    () => {
      if (phase === 'running') void fail(new StartupError('the story worker', 'stopped by itself'));
    },
    (err: unknown) => void fail(err),
  );
  // The board links (for operators, BOARD_TEMPORAL_LINKS) to the UI this process started, unless told otherwise.
  const appConfig = process.env.TEMPORAL_UI_URL || !temporal.ui ? config : { ...config, TEMPORAL_UI_URL: temporal.ui };
  const server = gatewayApp(parts, storyCommands(parts), { config: appConfig, logger, sdkMetricsUrl }).listen(
    config.PORT,
    config.HOST,
  );
  await new Promise<void>((ok, fail) => server.once('listening', ok).once('error', fail)).catch(
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') throw portInUse(gatewayPort, err.code);
      throw new StartupError('the gateway', oneLine(err));
    },
  );
  stops.push(() => new Promise((r) => server.close(() => r(undefined))));
  if (phase !== 'starting') return;
  phase = 'running';
  const gatewayUrl = `http://localhost:${config.PORT}`;
  say('');
  say(`custody is running`);
  say(`  gateway      ${gatewayUrl}   (health: ${gatewayUrl}/health)`);
  say(`  Temporal UI  ${temporal.ui ?? '(external Temporal at ' + temporal.address + ')'}`);
  say(`  data         ${dataDir}${config.DATABASE_URL ? ' (Temporal only; database at DATABASE_URL)' : ''}`);
  say(
    `first API key: curl -s -X POST ${gatewayUrl}/api/v1/tenants -H 'content-type: application/json' -d '{"name":"my-team"}'`,
  );
  say('Ctrl-C stops everything; the next start keeps every story.');
}

await start().catch(fail);
