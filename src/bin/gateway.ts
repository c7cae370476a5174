/** `npm run gateway`: the HTTP gateway as its own process, configured by the environment only. */
import { loadConfigOrExit, requireKeyRing, requireSetting, webhookDispatchSettings } from '../config.js';
import { createPool } from '../db/pool.js';
import { createApp } from '../gateway/app.js';
import { StoryCommands } from '../gateway/story-commands.js';
import { connectClient } from '../temporal/client.js';
import { createLogger } from '../observability/log.js';

const config = loadConfigOrExit();
const logger = createLogger(config.LOG_LEVEL);
const pool = createPool(requireSetting(config, 'DATABASE_URL'), config.DATABASE_POOL_SIZE);
const client = await connectClient(requireSetting(config, 'TEMPORAL_ADDRESS'), config.TEMPORAL_NAMESPACE);
const commands = new StoryCommands({
  client,
  pool,
  keyRing: requireKeyRing(config),
  taskQueue: config.TEMPORAL_TASK_QUEUE,
  deadlineMs: config.UPDATE_DEADLINE_MS,
  webhooks: { client, ...webhookDispatchSettings(config) },
});
const server = createApp({ config, pool, client, commands, logger }).listen(config.PORT, config.HOST, () => {
  logger.info({ url: `http://${config.HOST}:${config.PORT}` }, 'gateway listening');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close(() => void Promise.all([pool.end(), client.connection.close()]).then(() => process.exit(0)));
    setTimeout(() => process.exit(0), 5000).unref();
  });
}
