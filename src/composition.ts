/**
 * How the service is put together from its configuration: the database pool and the Temporal
 * client, the story worker (and its webhook worker), the story commands and the gateway. The
 * entry points (src/bin/), the integration tests' stack (test/support/stack.ts) and, through the
 * entry points, the bench and the fault tests wire the service here and nowhere else.
 */
import type { Client } from '@temporalio/client';
import type { Express } from 'express';
import type pg from 'pg';
import type { Logger } from 'pino';
import { webhookDispatchSettings, webhookRetry, webhookWorkerSettings, type Config } from './config.js';
import type { KeyRing } from './custody/identity.js';
import { createPool } from './db/pool.js';
import { createApp } from './gateway/app.js';
import { StoryCommands, type StoryCommandsOptions } from './gateway/story-commands.js';
import { connectClient } from './temporal/client.js';
// Types only: the gateway's process never loads the worker's modules (the Temporal core, webpack).
import type { StoryWorkerOptions } from './worker.js';
import { workerMemoryPlan } from './worker-memory.js';

/** What every part of the service shares: its configuration, its signing keys, and its connections. */
export interface ServiceParts {
  config: Config;
  keyRing: KeyRing;
  pool: pg.Pool;
  client: Client;
  /** The Temporal server's address (a worker opens its own connection to it). */
  temporalAddress: string;
}

/** The database pool, sized as configured. */
export function poolFor(config: Config, databaseUrl: string): pg.Pool {
  return createPool(databaseUrl, config.DATABASE_POOL_SIZE);
}

/** A Temporal client on the configured namespace. */
export function temporalClientFor(config: Config, address: string): Promise<Client> {
  return connectClient(address, config.TEMPORAL_NAMESPACE);
}

/** Opens the database pool and the Temporal client (the entry points that run one part each). */
export async function connectParts(
  config: Config,
  where: { databaseUrl: string; temporalAddress: string; keyRing: KeyRing },
): Promise<ServiceParts> {
  const pool = poolFor(config, where.databaseUrl);
  const client = await temporalClientFor(config, where.temporalAddress);
  return { config, keyRing: where.keyRing, pool, client, temporalAddress: where.temporalAddress };
}

/** Closes what `connectParts` opened. */
export async function closeParts(parts: ServiceParts): Promise<void> {
  await Promise.all([parts.pool.end(), parts.client.connection.close()]);
}

/**
 * The story worker and its webhook worker as the configuration sets them up, for
 * `createStoryWorker` (src/worker.ts), which the entry points that run a worker import themselves.
 */
export function storyWorkerOptions(
  parts: ServiceParts,
  overrides: Partial<StoryWorkerOptions> = {},
): StoryWorkerOptions {
  const { config } = parts;
  return {
    // The gateway's key ring: it judges every envelope it persists, and signs dependency news.
    keyRing: parts.keyRing,
    address: parts.temporalAddress,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    pool: parts.pool,
    client: parts.client,
    webhookRetry: webhookRetry(config),
    ...webhookWorkerSettings(config),
    // The cache and the workflow threads' heap, from WORKER_MEMORY_MB (src/worker-memory.ts).
    memory: workerMemoryPlan(config.WORKER_MEMORY_MB, config.WORKER_MAX_CACHED_WORKFLOWS),
    sandbox: {
      activationTimeoutMs: config.WORKFLOW_ACTIVATION_TIMEOUT_MS,
      stackTraces: config.WORKFLOW_STACK_TRACES === 'on',
    },
    allowPrivateWebhookTargets: config.WEBHOOK_ALLOW_PRIVATE_TARGETS,
    ...(config.WORKFLOW_BUNDLE_PATH ? { workflowBundle: { codePath: config.WORKFLOW_BUNDLE_PATH } } : {}),
    ...overrides,
  };
}

/** The gateway's way into the stories' workflows. */
export function storyCommands(parts: ServiceParts, overrides: Partial<StoryCommandsOptions> = {}): StoryCommands {
  const { config, client } = parts;
  return new StoryCommands({
    client,
    pool: parts.pool,
    keyRing: parts.keyRing,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    deadlineMs: config.UPDATE_DEADLINE_MS,
    webhooks: { client, ...webhookDispatchSettings(config) },
    ...overrides,
  });
}

/** The HTTP gateway (not listening yet). */
export function gatewayApp(
  parts: ServiceParts,
  commands: StoryCommands,
  options: { logger?: Logger; sdkMetricsUrl?: string; config?: Config } = {},
): Express {
  const { pool, client } = parts;
  return createApp({ config: options.config ?? parts.config, pool, client, commands, ...options });
}
