/** `npm run worker`: the story worker as its own process, configured by the environment only. */
import { webhookRetry, webhookWorkerSettings, loadConfigOrExit, requireKeyRing, requireSetting } from '../config.js';
import { createPool } from '../db/pool.js';
import { connectClient } from '../temporal/client.js';
import { createStoryWorker } from '../worker.js';
import { createLogger } from '../observability/log.js';
import { installTemporalRuntime } from '../temporal/runtime.js';

const config = loadConfigOrExit();
const logger = createLogger(config.LOG_LEVEL);
installTemporalRuntime(logger, config.TEMPORAL_METRICS_PORT);
const address = requireSetting(config, 'TEMPORAL_ADDRESS');
const pool = createPool(requireSetting(config, 'DATABASE_URL'), config.DATABASE_POOL_SIZE);
const client = await connectClient(address, config.TEMPORAL_NAMESPACE);
const { worker, connection } = await createStoryWorker({
  // The gateway's key ring: it judges every envelope it persists, and signs dependency news.
  keyRing: requireKeyRing(config),
  address,
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
logger.info({ taskQueue: config.TEMPORAL_TASK_QUEUE, address }, 'worker polling');
await worker.run();
await connection.close();
await client.connection.close();
await pool.end();
