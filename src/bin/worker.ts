/** `npm run worker`: the story worker as its own process, configured by the environment only. */
import { closeParts, connectParts, storyWorkerOptions } from '../composition.js';
import { loadConfigOrExit, requireKeyRing, requireSetting } from '../config.js';
import { createLogger } from '../observability/log.js';
import { installTemporalRuntime } from '../temporal/runtime.js';
import { createStoryWorker } from '../worker.js';

const config = loadConfigOrExit();
const logger = createLogger(config.LOG_LEVEL);
installTemporalRuntime(logger, config.TEMPORAL_METRICS_PORT);
const parts = await connectParts(config, {
  databaseUrl: requireSetting(config, 'DATABASE_URL'),
  temporalAddress: requireSetting(config, 'TEMPORAL_ADDRESS'),
  // The gateway's key ring: the worker judges every envelope it persists, and signs dependency news.
  keyRing: requireKeyRing(config),
});
const { worker, connection } = await createStoryWorker(storyWorkerOptions(parts));
logger.info({ taskQueue: config.TEMPORAL_TASK_QUEUE, address: parts.temporalAddress }, 'worker polling');
await worker.run();
await connection.close();
await closeParts(parts);
