/** The Express gateway: authenticate, validate, then read the read model or act through a workflow. */
import type { Client, Connection } from '@temporalio/client';
import express, { type Express, type RequestHandler } from 'express';
import { ipKeyGenerator, rateLimit, type Store } from 'express-rate-limit';
import type pg from 'pg';
import { ping } from '../db/pool.js';
import swaggerUi from 'swagger-ui-express';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { Config } from '../config.js';
import { checkStorableBody } from '../custody/rules.js';
import { unstorableTextPath } from '../custody/storable-text.js';
import { PostgresRateLimitStore } from '../db/rate-limits.js';
import { createLogger } from '../observability/log.js';
import { httpSeconds, metricsText } from '../observability/metrics.js';
import { ApiError, errorMiddleware } from './errors.js';
import { authenticate, idempotency } from './middleware.js';
import { idempotencySealKey } from './idempotency-seal.js';
import { buildOpenApiDocument } from './openapi.js';
import { boardRoutes } from './board.js';
import { reviewPolicyRoutes } from './routes/review-policy.js';
import { RouteBook } from './route-book.js';
import { identityRoutes, signupRoutes } from './routes/identity.js';
import { setCursorSecret } from './routes/params.js';
import { projectRoutes } from './routes/projects.js';
import { storyRoutes } from './routes/stories.js';
import { webhookRoutes } from './routes/webhooks.js';
import type { StoryCommands } from './story-commands.js';

export interface GatewayDeps {
  config: Config;
  pool: pg.Pool;
  client: Client;
  commands: StoryCommands;
  logger?: Logger;
  /** The Temporal SDK's Prometheus exporter of a worker in this process, appended to /metrics. */
  sdkMetricsUrl?: string;
}

export const API_PREFIX = '/api/v1';

async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A budget of requests per minute per `keyOf` (an agent, a tenant, a client address: never a raw
 * key). `onlyFailures` counts only the answers it names (refused keys), yet refuses every request
 * from that key once spent. With a `store` (PostgresRateLimitStore) the budget is one across every
 * gateway process; without, each process counts in its own memory.
 */
function limiter(
  store: Store | undefined,
  perMinute: number,
  scope: string,
  keyOf: (req: express.Request, res: express.Response) => string,
  onlyFailures?: (res: express.Response) => boolean,
): RequestHandler {
  if (perMinute === 0) return (_req, _res, next) => next();
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    ...(store ? { store } : {}),
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: keyOf,
    ...(onlyFailures ? { skipSuccessfulRequests: true, requestWasSuccessful: (_req, res) => !onlyFailures(res) } : {}),
    handler: (_req, res, next) => {
      const retryAfter = String(res.getHeader('Retry-After') ?? '60');
      next(
        new ApiError(
          'rate_limited',
          `Too many requests for this ${scope}; retry later.`,
          { scope },
          { 'Retry-After': retryAfter },
        ),
      );
    },
  });
}

/** Whether an Authorization header carries `Bearer <token>`, compared in constant time. */
function bearerMatches(header: string | undefined, token: string): boolean {
  const given = typeof header === 'string' ? /^Bearer (\S+)$/.exec(header)?.[1] : undefined;
  if (given === undefined) return false;
  const digest = (v: string) => createHash('sha256').update(v).digest();
  return timingSafeEqual(digest(given), digest(token));
}

const MAX_BODY_DEPTH = 32;

/** Whether a parsed JSON value nests deeper than `max` arrays or objects (walked without recursion). */
export function jsonDepthExceeds(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth + 1 > max) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}

/** The API's routes: the public ones (no key) and the rest. Declaring them touches none of `deps`. */
export function routeBooks(deps: GatewayDeps): [RouteBook, RouteBook] {
  const publicBook = new RouteBook(API_PREFIX);
  const book = new RouteBook(API_PREFIX);
  signupRoutes(publicBook, deps);
  identityRoutes(book, deps);
  projectRoutes(book, deps);
  storyRoutes(book, deps);
  webhookRoutes(book, deps);
  reviewPolicyRoutes(book, deps);
  return [publicBook, book];
}

export function createApp(deps: GatewayDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.set('trust proxy', false);

  const logger = deps.logger ?? createLogger(deps.config.LOG_LEVEL);
  app.use(
    pinoHttp({
      logger,
      genReqId: (req, res) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      // Only what helps to follow a request: never headers, bodies or keys.
      serializers: {
        req: (req: { id: unknown; method: string; url: string }) => ({
          id: req.id,
          method: req.method,
          url: req.url.split('?')[0],
        }),
        res: (res: { statusCode: number }) => ({ status: res.statusCode }),
      },
      customProps: (req, res) => {
        const caller = (res as express.Response).locals?.caller as { tenantId?: string; agentId?: string } | undefined;
        const storyId = (req as express.Request).params?.id;
        return { tenant_id: caller?.tenantId, agent_id: caller?.agentId, ...(storyId ? { story_id: storyId } : {}) };
      },
    }),
  );
  app.use((req, res, next) => {
    const end = httpSeconds.startTimer({ method: req.method });
    res.once('finish', () => {
      // The API router's mount path as seen inside it: an error that left the router reset req.baseUrl.
      const base = (res.locals.routeBase as string | undefined) ?? req.baseUrl;
      const route = req.route?.path ? `${base}${req.route.path}` : 'unmatched';
      end({ route, status: String(res.statusCode) });
    });
    next();
  });

  setCursorSecret(deps.commands.signingSecret);
  const [publicBook, book] = routeBooks(deps);
  const document = buildOpenApiDocument([publicBook, book]);

  app.get('/health', async (_req, res) => {
    const [database, temporal] = await Promise.all([
      within(2000, ping(deps.pool)).then(
        () => 'ok',
        () => 'unavailable',
      ),
      within(2000, (deps.client.connection as Connection).healthService.check({})).then(
        () => 'ok',
        () => 'unavailable',
      ),
    ]);
    const ok = database === 'ok' && temporal === 'ok';
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks: { database, temporal } });
  });
  boardRoutes(app, deps);
  // Every tenant's activity shows in the metrics: with METRICS_TOKEN set, only its bearer reads them.
  const metricsToken = deps.config.METRICS_TOKEN;
  app.get('/metrics', async (req, res, next) => {
    if (metricsToken !== undefined && !bearerMatches(req.headers.authorization, metricsToken)) {
      return next(new ApiError('unauthorized', 'The metrics need Authorization: Bearer <METRICS_TOKEN>.'));
    }
    res.type('text/plain; version=0.0.4').send(await metricsText(deps.sdkMetricsUrl));
  });
  app.get(`${API_PREFIX}/openapi`, (_req, res) => {
    res.json(document);
  });
  app.use('/docs', swaggerUi.serve);
  app.get('/docs', swaggerUi.setup(document as swaggerUi.JsonObject, { customSiteTitle: 'custody API' }));

  const api = express.Router();
  api.use((req, res, next) => {
    res.locals.routeBase = req.baseUrl;
    next();
  });
  // Imports carry a whole backlog (loopctl's clients send up to 5 MiB); everything else is small.
  const jsonTypes = ['application/json', 'application/*+json'];
  const smallJson = express.json({ limit: '256kb', type: jsonTypes });
  const importJson = express.json({ limit: '5mb', type: jsonTypes });
  api.use((req, res, next) =>
    (req.method === 'POST' && /^\/projects\/[^/]+\/import\/?$/.test(req.path) ? importJson : smallJson)(req, res, next),
  );
  api.use((req, _res, next) => {
    // No valid body nests deeper than a few levels; a deeper one is refused before anything
    // walks it recursively (hashing, validation, logging).
    if (jsonDepthExceeds(req.body, MAX_BODY_DEPTH))
      return next(new ApiError('invalid_body', `The request body nests deeper than ${MAX_BODY_DEPTH} levels.`));
    // Text the database cannot store is refused here, for every route, rather than failing later.
    const unstorable = checkStorableBody(req.body);
    if (unstorable) return next(new ApiError(unstorable.code, unstorable.message, unstorable.context));
    if (unstorableTextPath(req.query) !== null)
      return next(new ApiError('invalid_query', 'The query string holds a NUL character or an unpaired surrogate.'));
    next();
  });
  api.use((req, _res, next) => {
    // A body in anything but JSON is refused rather than silently ignored.
    const length = Number(req.headers['content-length'] ?? 0);
    if ((length > 0 || req.headers['transfer-encoding']) && !req.is(['application/json', 'application/*+json'])) {
      return next(new ApiError('unsupported_media_type', 'Request bodies must be application/json.'));
    }
    next();
  });
  const { config } = deps;
  const perMinute = config.RATE_LIMIT_PER_MINUTE;
  // 0 turns every limit off (benchmarks, the fuzz suite).
  const limitOr0 = (n: number) => (perMinute === 0 ? 0 : n);
  const address = (req: express.Request) => `ip:${ipKeyGenerator(req.ip ?? '')}`;
  // Budgets one across every gateway: counted in PostgreSQL, under the limiter's name.
  const shared = (name: string) => new PostgresRateLimitStore(deps.pool, name);
  // Before authentication, per client address: neither a flood nor a stream of made-up keys reaches
  // the database once its budget is spent. These two count in each gateway's memory, on purpose:
  // they run for every request (the refused-key one writes twice: a hit, then taking back each
  // answer that was not a 401), all on one counter per address (behind a proxy, one for all), so
  // in PostgreSQL they would put a write on one hot row in front of every request, which is what
  // they exist to spare the database. With N gateways an address gets N times these budgets.
  api.use(limiter(undefined, limitOr0(config.RATE_LIMIT_ADDRESS_PER_MINUTE), 'address', address));
  // Signup, the one call without a key, is limited per client address, across gateways.
  api.post('/tenants', limiter(shared('signup'), Math.min(perMinute, 60), 'address', address));
  api.use(publicBook.router);
  api.use(
    limiter(
      undefined,
      limitOr0(config.RATE_LIMIT_FAILED_AUTH_PER_MINUTE),
      'address',
      address,
      (res) => res.statusCode === 401,
    ),
  );
  api.use(authenticate(deps.pool));
  // Per agent, all its keys together (a rotated key keeps the budget), then per tenant.
  api.use(limiter(shared('agent'), perMinute, 'agent', (_req, res) => `agent:${String(res.locals.caller?.agentId)}`));
  api.use(
    limiter(shared('tenant'), limitOr0(config.RATE_LIMIT_TENANT_PER_MINUTE), 'tenant', (_req, res) => {
      return `tenant:${String(res.locals.caller?.tenantId)}`;
    }),
  );
  // A reservation older than any request can run (the update deadline, and a margin) was abandoned.
  api.use(
    idempotency(deps.pool, {
      staleAfterMs: deps.config.UPDATE_DEADLINE_MS + 5000,
      sealKey: idempotencySealKey(deps.commands.signingSecret),
    }),
  );
  api.use(book.router);
  api.use((_req, _res, next) => next(new ApiError('not_found', 'No such route.')));
  app.use(API_PREFIX, api);
  app.use((_req, _res, next) => next(new ApiError('not_found', 'No such route.')));
  app.use(errorMiddleware((err) => logger.error({ err }, 'unexpected error')));
  return app;
}

export { RouteBook };
