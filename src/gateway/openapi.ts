/**
 * The OpenAPI 3.1 document, generated from the route declarations and the very zod schemas that
 * validate requests (zod-to-openapi), so what is documented is what is enforced.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { ERROR_STATUS } from '../custody/errors.js';
import type { RouteBook, RouteSpec } from './route-book.js';

// zod-to-openapi reads metadata through `.openapi()`, which it adds to zod's types.
extendZodWithOpenApi(z);

const ErrorBody = z.object({
  error: z.object({
    status: z.number().int(),
    code: z.enum(Object.keys(ERROR_STATUS) as [string, ...string[]]),
    message: z.string(),
    context: z.record(z.string(), z.unknown()),
  }),
});
const DataBody = z.object({
  data: z.unknown(),
  meta: z.object({ limit: z.number(), next_cursor: z.string().nullable() }).optional(),
});
const HealthBody = z.object({ status: z.enum(['ok', 'unavailable']), checks: z.record(z.string(), z.string()) });

/** Operational routes outside the API router, declared here for the document and the route test. */
export const OPERATIONAL_ROUTES: { method: 'get'; path: string; summary: string }[] = [
  { method: 'get', path: '/', summary: 'The board (HTML; sign in with an API key)' },
  { method: 'get', path: '/health', summary: '200 when Temporal and the database answer, else 503' },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics (text format)' },
  { method: 'get', path: '/api/v1/openapi', summary: 'This document' },
  { method: 'get', path: '/docs', summary: 'A rendered reference of this document' },
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
  const errorCodes = [...new Set([...COMMON_ERRORS, ...(spec.errors ?? [])])];
  const byStatus = new Map<number, string[]>();
  for (const code of errorCodes) {
    const status = ERROR_STATUS[code as keyof typeof ERROR_STATUS];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  registry.registerPath({
    method: spec.method,
    path,
    summary: spec.summary,
    description: spec.roles ? `Roles: ${spec.roles.join(', ')}.` : undefined,
    tags: [spec.tag],
    security: spec.auth === false ? [] : [{ bearer: [] }],
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
      [spec.status ?? 200]: { description: 'Success', content: { 'application/json': { schema: DataBody } } },
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
      summary: route.summary,
      tags: ['Operations'],
      responses: {
        200: {
          description: 'Success',
          content: { 'application/json': { schema: route.path === '/health' ? HealthBody : z.unknown() } },
        },
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
    },
    servers: [{ url: '/' }],
  }) as unknown as Record<string, unknown>;
}
