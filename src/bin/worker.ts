/** `npm run worker`: the story worker as its own process, configured by the environment only. */
import { loadConfigOrExit, requireSetting } from '../config.js';
import { createPool } from '../db/pool.js';
import { connectClient } from '../temporal/client.js';
import { createStoryWorker } from '../worker.js';

const config = loadConfigOrExit();
const address = requireSetting(config, 'TEMPORAL_ADDRESS');
const pool = createPool(requireSetting(config, 'DATABASE_URL'), config.DATABASE_POOL_SIZE);
const client = await connectClient(address, config.TEMPORAL_NAMESPACE);
const { worker, connection } = await createStoryWorker({
  address,
  namespace: config.TEMPORAL_NAMESPACE,
  taskQueue: config.TEMPORAL_TASK_QUEUE,
  pool,
  client,
});
process.stdout.write(`worker polling ${config.TEMPORAL_TASK_QUEUE} on ${address}\n`);
await worker.run();
await connection.close();
await client.connection.close();
await pool.end();
