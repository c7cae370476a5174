/**
 * The OpenAPI 3.1 document, generated from the route declarations and the very zod schemas that
 * validate requests (zod-to-openapi), so what is documented is what is enforced.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { ERROR_STATUS } from '../custody/errors.js';
import { HealthJson, OPERATIONS } from './response-schemas.js';
import type { RouteBook, RouteSpec } from './route-book.js';

// zod-to-openapi reads metadata through `.openapi()`, which it adds to zod's types.
extendZodWithOpenApi(z);

const ErrorBody = z
  .object({
    error: z.object({
      status: z.number().int().openapi({ example: 409 }),
      code: z.enum(Object.keys(ERROR_STATUS) as [string, ...string[]]).openapi({ example: 'invalid_transition' }),
      message: z.string().openapi({ example: 'Cannot start a story that is contracted.' }),
      context: z.record(z.string(), z.unknown()).openapi({
        example: {
          current_agent_status: 'contracted',
          current_verified_status: 'unverified',
          attempted_action: 'start',
        },
      }),
    }),
  })
  .openapi('Error');
/** A route with no declared shape yet (one added without an entry in OPERATIONS; the unit test says which). */
const DataBody = z.object({
  data: z.unknown(),
  meta: z.object({ limit: z.number(), next_cursor: z.string().nullable() }).optional(),
});

/** Operational routes outside the API router, declared here for the document and the route test. */
export const OPERATIONAL_ROUTES: {
  method: 'get' | 'post';
  path: string;
  summary: string;
  operationId: string;
  content: Record<string, { schema: z.ZodType }>;
  unavailable?: boolean;
  /** A form post answers with a redirect (303) instead of a page. */
  redirects?: boolean;
  /** The 4xx answers of the route, by status. */
  refusals?: Record<number, string>;
}[] = [
  {
    method: 'get',
    path: '/',
    summary: 'The board (HTML; sign in with an API key)',
    operationId: 'getBoard',
    content: { 'text/html': { schema: z.string() } },
  },
  {
    method: 'get',
    path: '/board/stories/{id}',
    summary: "A story's page on the board: its custody chain and every attempt (HTML)",
    operationId: 'getBoardStory',
    content: { 'text/html': { schema: z.string() } },
    refusals: { 404: 'No such story in the signed-in tenant' },
  },
  {
    method: 'post',
    path: '/board/login',
    summary: 'Signs in to the board with an API key (form field `key`); sets the session cookie',
    operationId: 'boardLogin',
    content: { 'text/html': { schema: z.string() } },
    redirects: true,
    refusals: { 401: 'The key is not valid', 403: 'The form was posted from another site' },
  },
  {
    method: 'post',
    path: '/board/logout',
    summary: "Ends the board session (form field `csrf`: the session's token)",
    operationId: 'boardLogout',
    content: { 'text/html': { schema: z.string() } },
    redirects: true,
    refusals: { 403: 'The CSRF token is missing or wrong, or the form came from another site' },
  },
  {
    method: 'get',
    path: '/board/board.css',
    summary: "The board's style sheet",
    operationId: 'getBoardCss',
    content: { 'text/css': { schema: z.string() } },
  },
  {
    method: 'get',
    path: '/board/board.js',
    summary: "The board's script",
    operationId: 'getBoardJs',
    content: { 'text/javascript': { schema: z.string() } },
  },
  {
    method: 'get',
    path: '/health',
    summary: '200 when Temporal and the database answer, else 503',
    operationId: 'getHealth',
    content: { 'application/json': { schema: HealthJson } },
    unavailable: true,
  },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics (text format)',
    operationId: 'getMetrics',
    content: { 'text/plain': { schema: z.string() } },
  },
  {
    method: 'get',
    path: '/api/v1/openapi',
    summary: 'This document',
    operationId: 'getOpenApiDocument',
    content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
  },
  {
    method: 'get',
    path: '/docs',
    summary: 'A rendered reference of this document',
    operationId: 'getDocs',
    content: { 'text/html': { schema: z.string() } },
  },
];

const COMMON_ERRORS = [
  'invalid_body',
  'unauthorized',
  'forbidden',
  'not_found',
  'idempotency_key_reused',
  'rate_limited',
];

/** `/stories/:id` → `/stories/{id}`, with the parameter names. */
export function toOpenApiPath(path: string): { path: string; params: string[] } {
  const params: string[] = [];
  const converted = path.replace(/:([A-Za-z_]+)/g, (_, name: string) => {
    params.push(name);
    return `{${name}}`;
  });
  return { path: converted, params };
}

function register(registry: OpenAPIRegistry, prefix: string, spec: RouteSpec): void {
  const { path, params } = toOpenApiPath(prefix + spec.path);
  const publicRoute = spec.auth === false;
  // A route that takes no key never answers 401 or 403 for one.
  const common = publicRoute ? COMMON_ERRORS.filter((c) => c !== 'unauthorized' && c !== 'forbidden') : COMMON_ERRORS;
  const errorCodes = [...new Set([...common, ...(spec.errors ?? [])])];
  const operation = OPERATIONS[`${spec.method.toUpperCase()} ${spec.path}`];
  const byStatus = new Map<number, string[]>();
  for (const code of errorCodes) {
    const status = ERROR_STATUS[code as keyof typeof ERROR_STATUS];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  registry.registerPath({
    method: spec.method,
    path,
    operationId: operation?.operationId ?? derivedOperationId(spec),
    summary: spec.summary,
    description: spec.roles ? `Roles: ${spec.roles.join(', ')}.` : undefined,
    tags: [spec.tag],
    security: publicRoute ? [] : [{ bearer: [] }],
    request: {
      params: params.length ? z.object(Object.fromEntries(params.map((p) => [p, z.string()]))) : undefined,
      query: spec.query as z.ZodObject | undefined,
      headers:
        spec.method === 'post'
          ? z.object({
              'idempotency-key': z
                .string()
                .max(128)
                .optional()
                .describe('A retry with the same key and body returns the first response'),
            })
          : undefined,
      body: spec.body ? { content: { 'application/json': { schema: spec.body } } } : undefined,
    },
    responses: {
      [spec.status ?? 200]: {
        description: 'Success',
        content: { 'application/json': { schema: operation?.response ?? DataBody } },
      },
      ...Object.fromEntries(
        [...byStatus].map(([status, codes]) => [
          status,
          { description: `Error: ${codes.join(', ')}`, content: { 'application/json': { schema: ErrorBody } } },
        ]),
      ),
    },
  });
}

export function buildOpenApiDocument(books: RouteBook[]): Record<string, unknown> {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key',
  });
  for (const book of books) for (const spec of book.specs) register(registry, book.prefix, spec);
  for (const route of OPERATIONAL_ROUTES) {
    registry.registerPath({
      method: route.method,
      path: route.path,
      operationId: route.operationId,
      summary: route.summary,
      tags: ['Operations'],
      security: [],
      ...(route.path.includes('{id}')
        ? { request: { params: z.object({ id: z.string().uuid().openapi({ description: "The story's id" }) }) } }
        : {}),
      responses: {
        ...(route.redirects
          ? { 303: { description: 'Done: back to the board', headers: { Location: { schema: { type: 'string' } } } } }
          : { 200: { description: 'Success', content: route.content } }),
        ...Object.fromEntries(
          Object.entries(route.refusals ?? {}).map(([status, why]) => [
            status,
            { description: why, content: route.content },
          ]),
        ),
        ...(route.unavailable
          ? { 503: { description: 'Temporal or the database does not answer', content: route.content } }
          : {}),
      },
    });
  }
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'custody',
      version: '1',
      description:
        'A structural chain of custody for AI-agent orchestrators. Every story is a Temporal workflow; every action is judged by custody rules.',
      license: { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' },
    },
    security: [{ bearer: [] }],
    servers: [{ url: '/' }],
  }) as unknown as Record<string, unknown>;
}

/** `post /stories/:id/heartbeat` → `postStoriesIdHeartbeat`: for a route not yet in OPERATIONS. */
function derivedOperationId(spec: RouteSpec): string {
  const words = spec.path.split(/[^A-Za-z0-9]+/).filter(Boolean);
  return spec.method + words.map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}
