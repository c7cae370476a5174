/**
 * Configuration: read from the environment once, at start, validated with zod. A bad value stops
 * the process with one readable line instead of a failure somewhere later.
 */
import { z } from 'zod';
import { keyRingOf, parseKeyRing, signingKeyFromSeed, type KeyRing } from './custody/identity.js';
import { nativeSigningRing } from './custody/native-sign.js';

const port = z.coerce.number().int().min(0).max(65_535);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const schema = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('custody-stories'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: port.default(3000),
  /** Base64url Ed25519 seed (32 bytes) the gateway signs each caller's identity with. */
  CUSTODY_SIGNING_KEY: z
    .string()
    .regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes in base64url (43 characters)')
    .optional(),
  /**
   * The key ring, `id:seed,id:seed,...` with the current (signing) key first; every key in it is
   * accepted. Takes the place of CUSTODY_SIGNING_KEY, which is a ring of one key named `default`.
   */
  CUSTODY_SIGNING_KEYS: z
    .string()
    .regex(
      /^\s*[A-Za-z0-9._-]{1,64}:[A-Za-z0-9_-]{43}(\s*[,\s]\s*[A-Za-z0-9._-]{1,64}:[A-Za-z0-9_-]{43})*\s*$/,
      'must be id:seed pairs (seed: 32 bytes in base64url), comma-separated, the current key first',
    )
    .optional(),
  SIGNUP_ENABLED: bool.default(true),
  /** Let webhooks target loopback, private and link-local addresses (a receiver on this machine). */
  WEBHOOK_ALLOW_PRIVATE_TARGETS: bool.default(false),
  /** Requests per minute per agent, all its keys together (rotating a key keeps the budget); 0 turns every limit off. */
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).max(1_000_000).default(1200),
  /** Requests per minute per tenant, all its agents together. */
  RATE_LIMIT_TENANT_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(6000),
  /** Requests per minute per client address, counted before authentication. */
  RATE_LIMIT_ADDRESS_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(6000),
  /** Refused keys (401) per minute per client address; past it the address is refused before any key lookup. */
  RATE_LIMIT_FAILED_AUTH_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(60),
  /** Per-tenant quotas; past one, creates answer 403 quota_exceeded (stored bytes: story and audit rows as written). */
  QUOTA_AGENTS: z.coerce.number().int().min(1).max(1_000_000).default(200),
  QUOTA_PROJECTS: z.coerce.number().int().min(1).max(1_000_000).default(100),
  QUOTA_STORIES: z.coerce.number().int().min(1).max(100_000_000).default(50_000),
  QUOTA_WEBHOOKS: z.coerce.number().int().min(1).max(10_000).default(25),
  QUOTA_STORED_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(2 ** 50)
    .default(1024 ** 3),
  /** Webhook retries: first delay, doubling after, and the budget of attempts per delivery. */
  WEBHOOK_RETRY_INITIAL_MS: z.coerce.number().int().min(10).max(3_600_000).default(1000),
  WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(10),
  /** The longest one delivery attempt may take (connect, send, first answer). */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(25_000).default(10_000),
  /**
   * Deliveries in flight per worker process (their own task queue and slots), and per tenant: a
   * tenant's deliveries past its share wait in the outbox (PostgreSQL), not on the Temporal server.
   */
  WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(100),
  WEBHOOK_TENANT_CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(4),
  UPDATE_DEADLINE_MS: z.coerce.number().int().min(100).max(600_000).default(15_000),
  CUSTODY_DATA_DIR: z.string().min(1).default('.data'),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  /** Port of the embedded PostgreSQL that `npm start` runs when DATABASE_URL is not set. */
  EMBEDDED_POSTGRES_PORT: port.default(54329),
  /** Where the board links each story's history (the Temporal Web UI), when BOARD_TEMPORAL_LINKS is on. */
  TEMPORAL_UI_URL: z.url().default('http://localhost:8233'),
  /** Whether the board links each story to its history in the Temporal UI: for operators only (that UI has no login). */
  BOARD_TEMPORAL_LINKS: bool.default(false),
  /** How long a board sign-in lasts. */
  BOARD_SESSION_HOURS: z.coerce
    .number()
    .min(0.01)
    .max(24 * 30)
    .default(8),
  TEMPORAL_CLI_PATH: z.string().min(1).optional(),
  /** Where a worker process exports the Temporal SDK's Prometheus metrics (127.0.0.1:PORT); unset: off. */
  TEMPORAL_METRICS_PORT: port.optional(),
  /** A workflow bundle built beforehand (`npm run build:workflows`); unset: the worker bundles at start, in a child process. */
  WORKFLOW_BUNDLE_PATH: z.string().min(1).optional(),
  /**
   * What a worker process may hold (MB): sizes its workflow cache and its workflow thread's V8 heap
   * (src/worker-memory.ts). The default is the least allowed: 71 cached story workflows (more than
   * the bench's 50 agents keep busy) in a 77 MB workflow heap, to keep a worker and a gateway
   * within 400 MB together (bench/README.md, round 3).
   */
  WORKER_MEMORY_MB: z.coerce.number().int().min(128).max(1_000_000).default(128),
  /**
   * The longest one entry into a workflow's sandbox may run (ms) before it fails; 0: no limit.
   * A limit costs a watchdog thread per entry, several per workflow task (bench/README.md, round 4).
   */
  WORKFLOW_ACTIVATION_TIMEOUT_MS: z.coerce.number().int().min(0).max(60_000).default(0),
  /** `on`: the Temporal UI's stack trace of a running story (a stack captured per promise); `off`: not kept. */
  WORKFLOW_STACK_TRACES: z.enum(['on', 'off']).default('off'),
  /** Story workflows a worker keeps in memory between tasks (about 0.5 MB each); unset: from WORKER_MEMORY_MB. */
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(1).max(100_000).optional(),
  /** When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` (the metrics show every tenant's activity). */
  METRICS_TOKEN: z
    .string()
    .regex(/^\S{16,}$/, 'must be at least 16 characters, no spaces')
    .optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {}

export function parseConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings count as unset, as they do in most shells' `VAR= cmd`.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ConfigError(`configuration error: ${issue.path.join('.')} ${issue.message}`);
  }
  return result.data;
}

/** Parses the configuration or ends the process with one readable line. */
export function loadConfigOrExit(env: Record<string, string | undefined> = process.env): Config {
  try {
    return parseConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

export function requireSetting<K extends keyof Config>(config: Config, key: K): NonNullable<Config[K]> {
  const value = config[key];
  if (value === undefined || value === null) {
    process.stderr.write(`configuration error: ${String(key)} is required for this process\n`);
    process.exit(1);
  }
  return value;
}

/** The webhook worker's settings, as `createStoryWorker` takes them. */
export function webhookWorkerSettings(config: Config) {
  return {
    webhookConcurrency: config.WEBHOOK_CONCURRENCY,
    webhookTenantConcurrency: config.WEBHOOK_TENANT_CONCURRENCY,
    webhookTimeoutMs: config.WEBHOOK_TIMEOUT_MS,
  };
}

/** How deliveries are handed to their workflows (`WebhookDispatch` without the client). */
export function webhookDispatchSettings(config: Config) {
  return {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    retry: webhookRetry(config),
    perTenant: config.WEBHOOK_TENANT_CONCURRENCY,
  };
}

/** The webhook retry policy the configuration asks for. */
export function webhookRetry(config: Config): { initialIntervalMs: number; maximumAttempts: number } {
  return { initialIntervalMs: config.WEBHOOK_RETRY_INITIAL_MS, maximumAttempts: config.WEBHOOK_MAX_ATTEMPTS };
}

/** The configured key ring (CUSTODY_SIGNING_KEYS, else CUSTODY_SIGNING_KEY as a ring of one), if any. */
export function configuredKeyRing(config: Config): KeyRing | undefined {
  if (config.CUSTODY_SIGNING_KEYS) return nativeSigningRing(parseKeyRing(config.CUSTODY_SIGNING_KEYS));
  if (config.CUSTODY_SIGNING_KEY) return nativeSigningRing(keyRingOf(signingKeyFromSeed(config.CUSTODY_SIGNING_KEY)));
  return undefined;
}

/** The key ring, or the process ends with one readable line when neither setting is there. */
export function requireKeyRing(config: Config): KeyRing {
  const ring = configuredKeyRing(config);
  if (!ring) {
    process.stderr.write('configuration error: CUSTODY_SIGNING_KEYS (or CUSTODY_SIGNING_KEY) is required\n');
    process.exit(1);
  }
  return ring;
}
