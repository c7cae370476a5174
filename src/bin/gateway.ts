/** `npm run gateway`: the HTTP gateway as its own process, configured by the environment only. */
import { closeParts, connectParts, gatewayApp, storyCommands } from '../composition.js';
import { loadConfigOrExit, requireKeyRing, requireSetting } from '../config.js';
import { createLogger } from '../observability/log.js';

const config = loadConfigOrExit();
const logger = createLogger(config.LOG_LEVEL);
const parts = await connectParts(config, {
  databaseUrl: requireSetting(config, 'DATABASE_URL'),
  temporalAddress: requireSetting(config, 'TEMPORAL_ADDRESS'),
  keyRing: requireKeyRing(config),
});
const server = gatewayApp(parts, storyCommands(parts), { logger }).listen(config.PORT, config.HOST, () => {
  logger.info({ url: `http://${config.HOST}:${config.PORT}` }, 'gateway listening');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close(() => void closeParts(parts).then(() => process.exit(0)));
    setTimeout(() => process.exit(0), 5000).unref();
  });
}
