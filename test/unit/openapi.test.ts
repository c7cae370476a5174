/** The OpenAPI document, built from the route declarations: every route typed and named. */
import { describe, expect, it } from 'vitest';
import { routeBooks, type GatewayDeps } from '../../src/gateway/app.js';
import { buildOpenApiDocument } from '../../src/gateway/openapi.js';
import { OPERATIONS } from '../../src/gateway/response-schemas.js';

type Operation = {
  operationId?: string;
  security?: unknown[];
  responses: Record<string, { content?: Record<string, { schema: Record<string, unknown> }> }>;
};

const books = routeBooks({} as GatewayDeps);
const doc = buildOpenApiDocument(books) as { paths: Record<string, Record<string, Operation>>; info: any };
const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
  Object.entries(ops).map(([method, op]) => ({ path, method, op })),
);

describe('the OpenAPI document', () => {
  it('has a response shape and an operationId for every route of the API', () => {
    const routes = books.flatMap((b) => b.specs.map((s) => `${s.method.toUpperCase()} ${s.path}`));
    expect(routes.filter((r) => !OPERATIONS[r])).toEqual([]);
    expect(Object.keys(OPERATIONS).filter((k) => !routes.includes(k))).toEqual([]);
    const ids = operations.map((o) => o.op.operationId);
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { path, method, op } of operations.filter(
      (o) => o.path.startsWith('/api/v1/') && o.path !== '/api/v1/openapi',
    )) {
      const success = op.responses['200'] ?? op.responses['201'];
      const schema = success.content!['application/json'].schema;
      // A typed body: `data` with a shape, never the untyped placeholder.
      expect(schema.properties, `${method} ${path}`).toHaveProperty('data');
      expect(JSON.stringify((schema.properties as Record<string, unknown>).data), `${method} ${path}`).not.toBe('{}');
    }
  });

  it('declares security, none on the public routes, and a license', () => {
    expect(doc.info.license).toMatchObject({ identifier: expect.any(String) });
    const signup = doc.paths['/api/v1/tenants'].post;
    expect(signup.security).toEqual([]);
    expect(doc.paths['/health'].get.security).toEqual([]);
    expect(doc.paths['/api/v1/stories/{id}'].get.security).toEqual([{ bearer: [] }]);
  });
});
