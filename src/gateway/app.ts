/** The Express gateway: authenticate, validate, then read the read model or act through a workflow. */
import type { Client, Connection } from '@temporalio/client';
import express, { type Express } from 'express';
import type pg from 'pg';
import type { Config } from '../config.js';
import { ApiError, errorMiddleware } from './errors.js';
import { authenticate, idempotency } from './middleware.js';
import { identityRouter, signupRouter } from './routes/identity.js';
import { projectsRouter } from './routes/projects.js';
import { storiesRouter } from './routes/stories.js';
import type { StoryCommands } from './story-commands.js';

export interface GatewayDeps {
  config: Config;
  pool: pg.Pool;
  client: Client;
  commands: StoryCommands;
  log?: (err: unknown) => void;
}

async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export function createApp(deps: GatewayDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.get('/health', async (_req, res) => {
    const [database, temporal] = await Promise.all([
      within(2000, deps.pool.query('SELECT 1')).then(() => 'ok', () => 'unavailable'),
      within(2000, (deps.client.connection as Connection).healthService.check({})).then(() => 'ok', () => 'unavailable'),
    ]);
    const ok = database === 'ok' && temporal === 'ok';
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks: { database, temporal } });
  });

  const api = express.Router();
  api.use(express.json({ limit: '256kb', type: ['application/json', 'application/*+json'] }));
  api.use((req, _res, next) => {
    // A body in anything but JSON is refused rather than silently ignored.
    const length = Number(req.headers['content-length'] ?? 0);
    if ((length > 0 || req.headers['transfer-encoding']) && !req.is(['application/json', 'application/*+json'])) {
      return next(new ApiError('unsupported_media_type', 'Request bodies must be application/json.'));
    }
    next();
  });
  api.use(signupRouter(deps));
  api.use(authenticate(deps.pool));
  api.use(idempotency(deps.pool));
  api.use(identityRouter(deps));
  api.use(projectsRouter(deps));
  api.use(storiesRouter(deps));
  api.use((_req, _res, next) => next(new ApiError('not_found', 'No such route.')));
  app.use('/api/v1', api);
  app.use((_req, _res, next) => next(new ApiError('not_found', 'No such route.')));
  app.use(errorMiddleware(deps.log ?? ((err) => process.stderr.write(`gateway error: ${String((err as Error)?.stack ?? err)}\n`))));
  return app;
}
