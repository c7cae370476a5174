/**
 * The real service for an integration test file: its own database, its own task queue on the
 * run's Temporal dev server, a worker and a gateway on a free port. Nothing is mocked.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Client } from '@temporalio/client';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import type pg from 'pg';
import { inject } from 'vitest';
import { parseConfig } from '../../src/config.js';
import {
  keyRingOf,
  newSigningSeed,
  signingKeyFromSeed,
  type KeyRing,
  type SigningKey,
} from '../../src/custody/identity.js';
import {
  closeParts,
  connectParts,
  gatewayApp,
  storyCommands,
  storyWorkerOptions,
  type ServiceParts,
} from '../../src/composition.js';
import { createLogger } from '../../src/observability/log.js';
import type { StoryCommands } from '../../src/gateway/story-commands.js';
import { createStoryWorker, type StoryWorkers } from '../../src/worker.js';
import type { StoryWorkflowSettings } from '../../workflows/messages.js';
import { createTestDatabase } from './database.js';
import { Api } from './api.js';

let runtimeInstalled = false;

export interface Stack {
  baseUrl: string;
  /** Every log line the gateway wrote, as JSON text. */
  logs: string[];
  api: Api;
  pool: pg.Pool;
  client: Client;
  commands: StoryCommands;
  /** The ring's current key (the one the gateway signs with). */
  signingKey: SigningKey;
  keyRing: KeyRing;
  taskQueue: string;
  databaseUrl: string;
  /** Stops the worker (the gateway and Temporal stay up); `startWorker` brings a new one. */
  stopWorker(): Promise<void>;
  startWorker(): Promise<void>;
  /** What an operator does to rotate: restarts the worker and the gateway with a new ring (stories keep running). */
  useKeyRing(ring: KeyRing): Promise<void>;
  stop(): Promise<void>;
}

export interface StackOptions {
  workflowSettings?: Partial<StoryWorkflowSettings>;
  deadlineMs?: number;
  /** Outside vitest (scripts), the Temporal server and bundle to use; inside, the run's own. */
  temporalAddress?: string;
  workflowBundlePath?: string;
  /** At most one violation-count signal per story this often (the gateway's default: a minute). */
  violationSignalIntervalMs?: number;
  /** Settings of the gateway beyond the database and Temporal addresses (e.g. RATE_LIMIT_PER_MINUTE). */
  env?: Record<string, string>;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    runtimeInstalled = true;
  }
  const address = options.temporalAddress ?? inject('temporalAddress');
  const db = await createTestDatabase();
  const taskQueue = `custody-test-${randomBytes(4).toString('hex')}`;
  const bundlePath = options.workflowBundlePath ?? inject('workflowBundlePath');
  let keyRing = keyRingOf(signingKeyFromSeed(newSigningSeed(), 'k1'));
  // Tests deliver webhooks to receivers on this machine unless a test says otherwise.
  const config = parseConfig({
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    // Every test request comes from one address: per-address limits only where a test sets them.
    RATE_LIMIT_ADDRESS_PER_MINUTE: '1000000',
    RATE_LIMIT_FAILED_AUTH_PER_MINUTE: '1000000',
    // Fast webhook retries, so tests see several attempts in a second or two.
    WEBHOOK_RETRY_INITIAL_MS: '100',
    WEBHOOK_MAX_ATTEMPTS: '4',
    ...options.env,
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: address,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TASK_QUEUE: taskQueue,
  });
  const connected = await connectParts(config, { databaseUrl: db.url, temporalAddress: address, keyRing });
  const { pool, client } = connected;
  // The ring changes when a test rotates keys: the parts are read when a worker starts.
  const parts = (): ServiceParts => ({ ...connected, keyRing });
  let current: { worker: StoryWorkers; connection: { close(): Promise<void> }; running: Promise<void> } | null = null;
  const startWorker = async () => {
    const { worker, connection } = await createStoryWorker(
      storyWorkerOptions(parts(), { workflowBundle: { codePath: bundlePath }, deliverySweepMs: 1000 }),
    );
    current = { worker, connection, running: worker.run() };
  };
  const stopWorker = async () => {
    if (!current) return;
    await shutdownWorker(current.worker, current.running);
    await current.connection.close();
    current = null;
  };
  await startWorker();
  const commands = storyCommands(parts(), {
    deadlineMs: options.deadlineMs ?? 20_000,
    workflowSettings: options.workflowSettings,
    violationSignalIntervalMs: options.violationSignalIntervalMs,
  });
  const logs: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void logs.push(line) });
  const server: Server = gatewayApp(parts(), commands, { logger }).listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    baseUrl,
    logs,
    api: new Api(baseUrl),
    pool,
    client,
    commands,
    get signingKey() {
      return keyRing.current;
    },
    get keyRing() {
      return keyRing;
    },
    taskQueue,
    databaseUrl: db.url,
    stopWorker,
    startWorker,
    async useKeyRing(ring: KeyRing) {
      await stopWorker();
      keyRing = ring;
      commands.useKeyRing(ring);
      await startWorker();
    },
    async stop() {
      await new Promise((r) => server.close(() => r(undefined)));
      await stopWorker();
      await closeParts(connected);
      await db.drop();
    },
  };
}

async function shutdownWorker(worker: StoryWorkers, running: Promise<void>): Promise<void> {
  if (worker.getState() === 'RUNNING') worker.shutdown();
  await running.catch(() => undefined);
}
