/**
 * `npm start`: the whole service on one machine. Starts, unless pointed elsewhere, the Temporal
 * dev server (persistent SQLite, Web UI) and an embedded PostgreSQL, both keeping their data
 * under ./.data; applies migrations; runs the worker and the gateway. Ctrl-C stops everything.
 * Both servers are supervised: one that crashes is started again (with backoff, one log line),
 * and the worker and gateway reconnect to it by themselves.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import exitHook from 'async-exit-hook';
import { configuredKeyRing, webhookRetry, webhookWorkerSettings, loadConfigOrExit } from '../config.js';
import { keyRingOf, newSigningSeed, signingKeyFromSeed, type KeyRing } from '../custody/identity.js';
import { startEmbeddedPostgres } from '../db/embedded.js';
import { migrate } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { createApp } from '../gateway/app.js';
import { StoryCommands } from '../gateway/story-commands.js';
import { connectClient } from '../temporal/client.js';
import { startDevServer } from '../temporal/dev-server.js';
import { locateTemporalCli } from '../temporal/cli.js';
import { STORY_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes.js';
import { createStoryWorker } from '../worker.js';
import { createLogger } from '../observability/log.js';
import { installTemporalRuntime } from '../temporal/runtime.js';
import { Supervisor } from '../supervisor.js';

const say = (line: string) => process.stdout.write(`${line}\n`);
const config = loadConfigOrExit();
const logger = createLogger(config.LOG_LEVEL);
const sdkMetricsUrl = installTemporalRuntime(logger, config.TEMPORAL_METRICS_PORT);
const dataDir = resolve(config.CUSTODY_DATA_DIR);
mkdirSync(dataDir, { recursive: true });
const stops: (() => Promise<unknown>)[] = [];

async function temporalAddress(): Promise<{ address: string; ui: string | null }> {
  if (config.TEMPORAL_ADDRESS) return { address: config.TEMPORAL_ADDRESS, ui: null };
  const executable = await locateTemporalCli({ explicitPath: config.TEMPORAL_CLI_PATH, log: say });
  if (executable) {
    const options = {
      executable,
      port: config.TEMPORAL_PORT,
      uiPort: config.TEMPORAL_UI_PORT,
      dbFilename: resolve(dataDir, 'temporal.sqlite'),
      logFile: resolve(dataDir, 'temporal.log'),
    };
    const supervisor = await Supervisor.start({
      name: 'the Temporal dev server',
      start: () => startDevServer(options),
      log: say,
    });
    stops.push(() => supervisor.stop());
    return { address: `127.0.0.1:${config.TEMPORAL_PORT}`, ui: `http://localhost:${config.TEMPORAL_UI_PORT}` };
  }
  // Last resort, for machines with internet access: the SDK downloads and runs the dev server.
  say("no Temporal CLI found and no Go to build one: trying the SDK's own download of the dev server");
  try {
    const { TestWorkflowEnvironment } = await import('@temporalio/testing');
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'cached-download' },
        ip: '127.0.0.1',
        port: config.TEMPORAL_PORT,
        ui: true,
        uiPort: config.TEMPORAL_UI_PORT,
        dbFilename: resolve(dataDir, 'temporal.sqlite'),
        searchAttributes: STORY_SEARCH_ATTRIBUTES,
        extraArgs: ['--dynamic-config-value', 'history.maxInFlightUpdates=200'],
      },
    });
    stops.push(() => env.teardown());
    return { address: `127.0.0.1:${config.TEMPORAL_PORT}`, ui: `http://localhost:${config.TEMPORAL_UI_PORT}` };
  } catch {
    process.stderr.write(
      'cannot run Temporal: install Go 1.22+ (the dev server is then built automatically), or put the `temporal` CLI on PATH, or set TEMPORAL_CLI_PATH or TEMPORAL_ADDRESS\n',
    );
    process.exit(1);
  }
}

/** The configured key ring, else a key of this machine's own, kept under the data folder. */
function keyRing(): KeyRing {
  const configured = configuredKeyRing(config);
  if (configured) return configured;
  const file = resolve(dataDir, 'signing-key');
  if (!existsSync(file)) writeFileSync(file, newSigningSeed(), { mode: 0o600 });
  return keyRingOf(signingKeyFromSeed(readFileSync(file, 'utf8').trim()));
}

async function stopAll(): Promise<void> {
  while (stops.length > 0) await stops.pop()!().catch(() => undefined);
}

async function shutdown(code: number): Promise<never> {
  await stopAll();
  process.exit(code);
}

try {
  const temporal = await temporalAddress();
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    let url = '';
    const supervisor = await Supervisor.start({
      name: 'the embedded PostgreSQL',
      start: async () => {
        const db = await startEmbeddedPostgres(dataDir, config.EMBEDDED_POSTGRES_PORT);
        url = db.url;
        return db;
      },
      log: say,
    });
    stops.push(() => supervisor.stop());
    databaseUrl = url;
  }
  await migrate(databaseUrl);
  const pool = createPool(databaseUrl, config.DATABASE_POOL_SIZE);
  stops.push(() => pool.end());
  const client = await connectClient(temporal.address, config.TEMPORAL_NAMESPACE);
  stops.push(() => client.connection.close());
  // One key for the gateway's envelopes and the worker's dependency news: the trusted path.
  const ring = keyRing();
  const { worker, connection } = await createStoryWorker({
    keyRing: ring,
    address: temporal.address,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    pool,
    client,
    webhookRetry: webhookRetry(config),
    ...webhookWorkerSettings(config),
    maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
    allowPrivateWebhookTargets: config.WEBHOOK_ALLOW_PRIVATE_TARGETS,
    ...(config.WORKFLOW_BUNDLE_PATH ? { workflowBundle: { codePath: config.WORKFLOW_BUNDLE_PATH } } : {}),
  });
  const running = worker.run();
  stops.push(async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running.catch(() => undefined);
    await connection.close();
  });
  const commands = new StoryCommands({
    client,
    pool,
    keyRing: ring,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    deadlineMs: config.UPDATE_DEADLINE_MS,
    webhooks: { client, taskQueue: config.TEMPORAL_TASK_QUEUE, retry: webhookRetry(config) },
  });
  // The board links (for operators, BOARD_TEMPORAL_LINKS) to the UI this process started, unless told otherwise.
  const appConfig = process.env.TEMPORAL_UI_URL || !temporal.ui ? config : { ...config, TEMPORAL_UI_URL: temporal.ui };
  const server = createApp({ config: appConfig, pool, client, commands, logger, sdkMetricsUrl }).listen(
    config.PORT,
    config.HOST,
  );
  await new Promise<void>((ok, fail) => server.once('listening', ok).once('error', fail));
  stops.push(() => new Promise((r) => server.close(() => r(undefined))));
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
} catch (err) {
  process.stderr.write(`start-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
  await shutdown(1);
}

// The embedded PostgreSQL stops through async-exit-hook, which exits once every hook is done;
// registering there too makes Ctrl-C wait for the worker, gateway and Temporal to stop as well.
exitHook.forceExitTimeout(30_000);
exitHook((done) => {
  say('stopping...');
  void stopAll().then(done);
});
