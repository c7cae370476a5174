/** The gateway's resources: a whole backlog's life, tenant isolation, keys, idempotent import, OpenAPI. */
import type { Express } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, driveToVerified, importBacklog, type Team } from '../support/api.js';
import { until } from '../support/until.js';
import { startStack, type Stack } from '../support/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack?.stop());

/** 3 epics, 12 stories; 2.x depend on 1.x, 3.1 on every story of epic 2. */
const backlog = {
  epics: [1, 2, 3].map((epic) => ({
    number: epic,
    title: `Epic ${epic}`,
    stories: [1, 2, 3, 4].map((n) => ({
      number: `${epic}.${n}`,
      title: `Story ${epic}.${n}`,
      acceptance_criteria:
        n % 2
          ? ['works']
          : [
              { id: 'AC1', description: 'works' },
              { id: 'AC2', description: 'fast' },
            ],
      depends_on: epic === 2 ? [`1.${n}`] : epic === 3 && n === 1 ? ['2.1', '2.2', '2.3', '2.4'] : [],
    })),
  })),
};

async function lifecycle(team: Team, story: any) {
  const [implementer, reviewer] = team.agents;
  const steps: [string, string, unknown][] = [
    ['contract', implementer.key, { story_title: story.title, ac_count: story.acceptance_criteria.length }],
    ['claim', implementer.key, {}],
    ['start', implementer.key, {}],
    ['request-review', implementer.key, {}],
    ['report', reviewer.key, {}],
    [
      'review-complete',
      reviewer.key,
      { review_type: 'standard', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 'ok' },
    ],
    ['verify', team.orchestrator.key, { summary: 'done' }],
  ];
  for (const [action, key, body] of steps) {
    const r = await stack.api.act(story.id, action, key, body);
    expect(r.status, `${story.number} ${action}: ${JSON.stringify(r.body)}`).toBe(200);
  }
}

describe('a backlog from signup to progress', () => {
  it('imports 12 stories, serves the ready list the keep-working hook reads, and counts progress', async () => {
    const team = await createTeam(stack.api, 2, 'backlog');
    const stories = await importBacklog(stack.api, team, backlog);
    expect(stories.size).toBe(12);
    const api = stack.api;
    const key = team.agents[0].key;

    const one = await api.get('/api/v1/stories/ready?limit=1', key);
    expect(one.status).toBe(200);
    expect(one.body.data).toHaveLength(1);
    const readyNumbers = async () =>
      ((await api.get(`/api/v1/stories/ready?project_id=${team.projectId}&limit=100`, key)).body.data as any[])
        .map((s) => s.number)
        .sort();
    expect(await readyNumbers()).toEqual(['1.1', '1.2', '1.3', '1.4', '3.2', '3.3', '3.4']);
    const blocked = (await api.get(`/api/v1/stories/blocked?project_id=${team.projectId}`, key)).body.data
      .map((s: any) => s.number)
      .sort();
    expect(blocked).toEqual(['2.1', '2.2', '2.3', '2.4', '3.1']);

    // 2.1 becomes ready exactly when 1.1 is verified; 3.1 only after the last of 2.x.
    await lifecycle(team, stories.get('1.1'));
    expect(await readyNumbers()).toContain('2.1');
    expect(await readyNumbers()).not.toContain('2.2');
    for (const n of ['1.2', '1.3', '1.4', '2.1', '2.2', '2.3']) await lifecycle(team, stories.get(n));
    expect(await readyNumbers()).not.toContain('3.1');
    await lifecycle(team, stories.get('2.4'));
    expect(await readyNumbers()).toContain('3.1');

    const progress = await api.get(`/api/v1/projects/${team.projectId}/progress`, key);
    expect(progress.status).toBe(200);
    expect(progress.body.data.total).toMatchObject({ total: 12, verified: 8, percent_verified: 66.7 });
    // Every status key, zeros included (API.md v1.1).
    expect(progress.body.data.total.by_agent_status).toEqual({
      pending: 4,
      contracted: 0,
      assigned: 0,
      implementing: 0,
      review_requested: 0,
      reported_done: 8,
    });
    expect(progress.body.data.epics.map((e: any) => [e.number, e.total, e.verified])).toEqual([
      [1, 4, 4],
      [2, 4, 4],
      [3, 4, 0],
    ]);

    const story = await api.get(`/api/v1/stories/${stories.get('3.1').id}`, key);
    expect(story.body.data.next_actions).toEqual(['contract']);
    const list = await api.get(`/api/v1/stories?project_id=${team.projectId}&verified_status=verified&limit=5`, key);
    expect(list.body.data).toHaveLength(5);
    const rest = await api.get(
      `/api/v1/stories?project_id=${team.projectId}&verified_status=verified&limit=5&cursor=${list.body.meta.next_cursor}`,
      key,
    );
    expect(rest.body.data).toHaveLength(3);
    expect(new Set([...list.body.data, ...rest.body.data].map((s: any) => s.id)).size).toBe(8);
    const audit = await api.get(`/api/v1/audit?project_id=${team.projectId}&limit=500`, team.orchestrator.key);
    // Story transitions; the project's creation and import have rows of their own.
    expect(audit.body.data.filter((e: any) => e.outcome === 'accepted' && e.story_id !== null)).toHaveLength(8 * 7);
    expect(audit.body.data.filter((e: any) => e.story_id === null).map((e: any) => e.action)).toEqual([
      'project.created',
      'project.imported',
    ]);
  });

  it('imports the same backlog twice into 12 stories and 12 workflows', async () => {
    const team = await createTeam(stack.api, 1, 'twice');
    await importBacklog(stack.api, team, backlog);
    const again = await stack.api.post(`/api/v1/projects/${team.projectId}/import`, team.orchestrator.key, backlog);
    expect(again.status).toBe(201);
    expect(again.body.data).toMatchObject({ stories_count: 12, created_count: 0 });
    const { rows } = await stack.pool.query('SELECT count(*)::int AS n FROM stories WHERE project_id = $1', [
      team.projectId,
    ]);
    expect(rows[0].n).toBe(12);
    // Temporal's visibility lists a started workflow a moment later: read until all 12 are listed,
    // then check that no import started a 13th.
    const listed = async () => {
      const ids = new Set<string>();
      for await (const wf of stack.client.workflow.list({ query: `TenantId="${team.tenantId}"` }))
        ids.add(wf.workflowId);
      return ids;
    };
    await until('the 12 workflows listed', async () => ((await listed()).size >= 12 ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    expect((await listed()).size).toBe(12);
  });

  it('holds a story to a dependency added by a later import of the same backlog', async () => {
    const team = await createTeam(stack.api, 3, 'late-dependency');
    const plain = {
      epics: [
        {
          number: 8,
          title: 'E',
          stories: [
            { number: '8.1', title: 'first', acceptance_criteria: ['a'] },
            { number: '8.2', title: 'second', acceptance_criteria: ['a'] },
          ],
        },
      ],
    };
    const stories = await importBacklog(stack.api, team, plain);
    const withEdge = structuredClone(plain) as any;
    withEdge.epics[0].stories[1].depends_on = ['8.1'];
    // A plain re-import that changes a story's dependencies is a conflict; a merge adds them to pending stories.
    const plainAgain = await stack.api.post(
      `/api/v1/projects/${team.projectId}/import`,
      team.orchestrator.key,
      withEdge,
    );
    expect([plainAgain.status, plainAgain.body.error?.code]).toEqual([409, 'duplicate_story_numbers']);
    const merged = await stack.api.post(
      `/api/v1/projects/${team.projectId}/import?merge=true`,
      team.orchestrator.key,
      withEdge,
    );
    expect([merged.status, merged.body.data?.stories_updated]).toEqual([200, ['8.2']]);

    const [first, second] = [stories.get('8.1'), stories.get('8.2')];
    const [implementer, reviewer] = team.agents;
    expect(
      (await stack.api.act(second.id, 'contract', implementer.key, { story_title: 'second', ac_count: 1 })).status,
    ).toBe(200);
    const claim = await stack.api.act(second.id, 'claim', implementer.key);
    expect(claim.status).toBe(409);
    expect(claim.body.error.code).toBe('dependencies_not_met');
    await driveToVerified(stack.api, first, {
      implementer: team.agents[2].key,
      reviewer: reviewer.key,
      verifier: team.orchestrator.key,
    });
    // The news of the verification reaches the dependent through an activity: moments, not at once.
    let claimed = await stack.api.act(second.id, 'claim', implementer.key);
    for (let i = 0; i < 100 && claimed.status === 409; i++) {
      await new Promise((r) => setTimeout(r, 100));
      claimed = await stack.api.act(second.id, 'claim', implementer.key);
    }
    expect(claimed.status, JSON.stringify(claimed.body)).toBe(200);
  });

  it('tells the caller to retry when a new dependency cannot reach the story (its workflow is not running)', async () => {
    const team = await createTeam(stack.api, 1, 'no-workflow');
    const stories = await importBacklog(stack.api, team, {
      epics: [
        {
          number: 1,
          title: 'E',
          stories: [
            { number: '1.1', title: 'a', acceptance_criteria: [] },
            { number: '1.2', title: 'b', acceptance_criteria: [] },
          ],
        },
      ],
    });
    const dependent = stories.get('1.2');
    // A story whose workflow was never started (its import failed before the start): a closed one
    // is different, it stays closed and hears nothing (test/integration/integrity.test.ts).
    await stack.pool.query('UPDATE stories SET workflow_id = $2 WHERE id = $1', [
      dependent.id,
      `${dependent.workflow_id}/never-started`,
    ]);
    const r = await stack.api.post('/api/v1/story_dependencies', team.orchestrator.key, {
      story_id: dependent.id,
      depends_on_story_id: stories.get('1.1').id,
    });
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('unavailable');
    expect(r.headers.get('retry-after')).toBe('2');
  });

  it('refuses a cyclic backlog and an unknown dependency, writing nothing', async () => {
    const team = await createTeam(stack.api, 1, 'cyclic');
    const cyclic = {
      epics: [
        {
          number: 1,
          title: 'E',
          stories: [
            { number: '1.1', title: 'a', acceptance_criteria: [], depends_on: ['1.2'] },
            { number: '1.2', title: 'b', acceptance_criteria: [], depends_on: ['1.1'] },
          ],
        },
      ],
    };
    const r = await stack.api.post(`/api/v1/projects/${team.projectId}/import`, team.orchestrator.key, cyclic);
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('dependency_cycle');
    const unknown = await stack.api.post(`/api/v1/projects/${team.projectId}/import`, team.orchestrator.key, {
      epics: [
        {
          number: 1,
          title: 'E',
          stories: [{ number: '1.1', title: 'a', acceptance_criteria: [], depends_on: ['9.9'] }],
        },
      ],
    });
    expect([unknown.status, unknown.body.error.code]).toEqual([422, 'unknown_dependency']);
    const { rows } = await stack.pool.query('SELECT count(*)::int AS n FROM stories WHERE project_id = $1', [
      team.projectId,
    ]);
    expect(rows[0].n).toBe(0);
  });
});

/** JSON with keys sorted, to compare content regardless of key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/** Every documented route, with path parameters filled from `ids`. */
async function documentedRoutes(): Promise<{ method: string; path: string; params: string[] }[]> {
  const doc = (await stack.api.get('/api/v1/openapi')).body;
  const routes = [];
  for (const [path, ops] of Object.entries<any>(doc.paths)) {
    for (const method of Object.keys(ops)) {
      routes.push({ method: method.toUpperCase(), path, params: [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]) });
    }
  }
  return routes;
}

describe('tenant isolation', () => {
  it("answers 404 to tenant B on every route naming tenant A's resources, and changes nothing", async () => {
    const a = await createTeam(stack.api, 2, 'tenant-a');
    const b = await createTeam(stack.api, 2, 'tenant-b');
    const stories = await importBacklog(stack.api, a, backlog);
    const story = stories.get('1.1');
    const epicId = story.epic_id;
    const ids: Record<string, string> = { id: story.id, project_id: a.projectId, epic_id: epicId };
    const before = await stack.pool.query('SELECT * FROM stories WHERE tenant_id = $1 ORDER BY id', [a.tenantId]);
    const auditBefore = await stack.pool.query(`SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1`, [
      a.tenantId,
    ]);
    let walked = 0;
    for (const route of await documentedRoutes()) {
      if (!route.path.startsWith('/api/v1') || route.path === '/api/v1/tenants') continue;
      // Which kind of resource the id stands for, by the route's first segment.
      const segment = route.path.split('/')[3];
      const idFor = (param: string) =>
        param !== 'id'
          ? ids[param]
          : segment === 'projects'
            ? a.projectId
            : segment === 'agents'
              ? a.agents[0].id
              : segment === 'api_keys'
                ? a.agents[0].keyId
                : story.id;
      const path = route.path.replace(/\{(\w+)\}/g, (_, p: string) => idFor(p));
      for (const key of [b.admin.key, b.orchestrator.key, b.agents[0].key]) {
        const body =
          route.method === 'POST'
            ? path.endsWith('story_dependencies')
              ? { story_id: story.id, depends_on_story_id: stories.get('1.2').id }
              : {}
            : undefined;
        const r = await stack.api.call(route.method, path, { key, body });
        walked++;
        // POST /story_dependencies names A's stories in its body; GET /story_dependencies lists B's own.
        const namesA = route.params.length > 0 || (route.method === 'POST' && path.endsWith('story_dependencies'));
        if (namesA) {
          // 403 only where the role is refused before any lookup (the answer names no resource).
          expect([404, 403], `${route.method} ${route.path}: ${r.status} ${JSON.stringify(r.body)}`).toContain(
            r.status,
          );
          if (r.status === 404) expect(r.body.error.code).toBe('not_found');
        } else if (r.status === 200) {
          expect(JSON.stringify(r.body), `${route.method} ${route.path} leaks tenant A`).not.toContain(a.tenantId);
          expect(JSON.stringify(r.body)).not.toContain(story.id);
        }
      }
    }
    expect(walked).toBeGreaterThan(60);
    const after = await stack.pool.query('SELECT * FROM stories WHERE tenant_id = $1 ORDER BY id', [a.tenantId]);
    expect(after.rows).toEqual(before.rows);
    const auditAfter = await stack.pool.query(`SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1`, [
      a.tenantId,
    ]);
    expect(auditAfter.rows[0].n).toBe(auditBefore.rows[0].n);
    const keyStill = await stack.api.get('/api/v1/tenants/me', a.agents[0].key);
    expect(keyStill.status).toBe(200);
  });
});

describe('malformed paths', () => {
  it('answers 404 not_found to a path parameter that is not valid percent-encoding, on every route, and changes nothing', async () => {
    const team = await createTeam(stack.api, 1, 'bad-paths');
    await importBacklog(stack.api, team, backlog);
    const countRows = async () =>
      (
        await stack.pool.query(
          `SELECT (SELECT count(*)::int FROM audit_events WHERE tenant_id = $1) AS audit,
             (SELECT count(*)::int FROM stories WHERE tenant_id = $1) AS stories`,
          [team.tenantId],
        )
      ).rows[0];
    const before = await countRows();
    const answers: string[] = [];
    for (const route of await documentedRoutes()) {
      if (route.params.length === 0) continue;
      for (const bad of ['%ZZ', '%E0%A4%A', '%']) {
        const path = route.path.replace(/\{(\w+)\}/g, bad);
        const body = route.method === 'GET' || route.method === 'DELETE' ? undefined : {};
        const r = await stack.api.call(route.method, path, { key: team.admin.key, body });
        answers.push(`${route.method} ${path} ${r.status} ${r.body?.error?.code}`);
        expect(`${r.status} ${r.body?.error?.code}`, `${route.method} ${path}`).toBe('404 not_found');
      }
    }
    expect(answers.length).toBeGreaterThan(100);
    expect(await countRows()).toEqual(before);
  });
});

describe('keys', () => {
  it('gives 401 on every route to a revoked or rotated-away key, and stores no raw key', async () => {
    const team = await createTeam(stack.api, 2, 'keys');
    const revoked = team.agents[0];
    const rotated = team.agents[1];
    expect((await stack.api.call('DELETE', `/api/v1/api_keys/${revoked.keyId}`, { key: team.admin.key })).status).toBe(
      200,
    );
    const rotation = await stack.api.post(`/api/v1/api_keys/${rotated.keyId}/rotate`, rotated.key);
    expect(rotation.status).toBe(200);
    const fresh = rotation.body.data.api_key.key as string;
    expect(fresh).not.toBe(rotated.key);
    expect((await stack.api.get('/api/v1/tenants/me', fresh)).status).toBe(200);
    let walked = 0;
    for (const route of await documentedRoutes()) {
      if (!route.path.startsWith('/api/v1') || route.path === '/api/v1/tenants' || route.path === '/api/v1/openapi')
        continue;
      const path = route.path.replace(/\{(\w+)\}/g, '00000000-0000-4000-8000-000000000000');
      for (const key of [revoked.key, rotated.key, 'cust_not-a-real-key', '']) {
        const r = await stack.api.call(route.method, path, {
          key: key || undefined,
          body: route.method === 'POST' ? {} : undefined,
        });
        expect(r.status, `${route.method} ${route.path}`).toBe(401);
        expect(r.body.error.code).toBe('unauthorized');
        walked++;
      }
    }
    expect(walked).toBeGreaterThan(100);
    // No table holds a raw key, in any column.
    const { rows: tables } = await stack.pool.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`,
    );
    for (const { table_name } of tables) {
      const { rows } = await stack.pool.query(`SELECT t::text AS row FROM "${table_name}" t`);
      for (const key of [team.admin.key, revoked.key, rotated.key, fresh, team.orchestrator.key]) {
        expect(
          rows.some((r) => r.row.includes(key.slice(5))),
          `${table_name} holds a raw key`,
        ).toBe(false);
      }
    }
  });
});

describe('OpenAPI', () => {
  function routerRoutes(app: Express): string[] {
    const found: string[] = [];
    const walk = (stack: any[], prefix: string) => {
      for (const layer of stack) {
        if (layer.route) {
          for (const method of Object.keys(layer.route.methods))
            found.push(`${method.toUpperCase()} ${prefix}${layer.route.path}`);
        } else if (layer.handle?.stack) {
          walk(layer.handle.stack, layer.handle === apiRouter ? '/api/v1' : prefix);
        }
      }
    };
    let apiRouter: unknown;
    // The API router is the one mounted at /api/v1: the only nested router at the top level.
    for (const layer of (app as any).router.stack) if (layer.handle?.stack && !apiRouter) apiRouter = layer.handle;
    walk((app as any).router.stack, '');
    return [...new Set(found)].map((r) => r.replace(/:(\w+)/g, '{$1}')).sort();
  }

  it('documents every route of the router, and nothing else', async () => {
    const { createApp } = await import('../../src/gateway/app.js');
    const { parseConfig } = await import('../../src/config.js');
    const app = createApp({
      config: parseConfig({}),
      pool: stack.pool,
      client: stack.client,
      commands: stack.commands,
    });
    const documented = (await documentedRoutes()).map((r) => `${r.method} ${r.path}`).sort();
    expect(routerRoutes(app)).toEqual(documented);
    expect(documented.length).toBeGreaterThan(30);
  });

  it('answers in the shapes it documents', async () => {
    const { OPERATIONS } = await import('../../src/gateway/response-schemas.js');
    const team = await createTeam(stack.api, 2, 'shapes');
    const stories = await importBacklog(stack.api, team, {
      epics: [{ number: 1, title: 'E', stories: [{ number: '1.1', title: 'Shape', acceptance_criteria: ['a'] }] }],
    });
    const story = stories.get('1.1');
    await lifecycle(team, story);
    const [epic] = (await stack.api.get(`/api/v1/projects/${team.projectId}/epics`, team.admin.key)).body.data;
    const calls: [string, string][] = [
      ['GET /tenants/me', '/tenants/me'],
      ['GET /agents/me', '/agents/me'],
      ['GET /agents', '/agents'],
      ['GET /agents/:id', `/agents/${team.agents[0].id}`],
      ['GET /projects', '/projects'],
      ['GET /projects/:id', `/projects/${team.projectId}`],
      ['GET /projects/:id/progress', `/projects/${team.projectId}/progress`],
      ['GET /projects/:project_id/epics', `/projects/${team.projectId}/epics`],
      ['GET /epics/:epic_id/stories', `/epics/${epic.id}/stories`],
      ['GET /stories', `/stories?project_id=${team.projectId}`],
      ['GET /stories/ready', '/stories/ready'],
      ['GET /stories/blocked', '/stories/blocked'],
      ['GET /stories/:id', `/stories/${story.id}`],
      ['GET /stories/:id/history', `/stories/${story.id}/history`],
      ['GET /audit', '/audit'],
      ['GET /audit/verify', '/audit/verify'],
      ['GET /webhooks', '/webhooks'],
    ];
    for (const [route, path] of calls) {
      const r = await stack.api.get(`/api/v1${path}`, team.admin.key);
      expect(r.status, `${route}: ${JSON.stringify(r.body)}`).toBe(200);
      const parsed = OPERATIONS[route].response.safeParse(r.body);
      expect(parsed.success, `${route}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
      // And nothing undocumented: every field of each item is in the documented shape.
      expect(canonical(r.body), route).toBe(canonical(parsed.data));
    }
  });

  it('serves a valid 3.1 document and renders it at /docs', async () => {
    const doc = await stack.api.get('/api/v1/openapi');
    expect(doc.body.openapi).toBe('3.1.0');
    const verify = doc.body.paths['/api/v1/stories/{id}/verify'].post;
    expect(Object.keys(verify.responses)).toEqual(expect.arrayContaining(['200', '409', '422']));
    expect(verify.requestBody.content['application/json'].schema.properties).toHaveProperty('summary');
    const page = await fetch(`${stack.baseUrl}/docs/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('swagger-ui');
    const css = await fetch(`${stack.baseUrl}/docs/swagger-ui.css`);
    expect(css.status).toBe(200);
  });
});

describe('rate limiting', () => {
  it('answers 429 rate_limited with Retry-After once a key spends its budget, per key', async () => {
    const { createApp } = await import('../../src/gateway/app.js');
    const { parseConfig } = await import('../../src/config.js');
    const { Api } = await import('../support/api.js');
    const team = await createTeam(stack.api, 1, 'limited');
    const app = createApp({
      config: parseConfig({ RATE_LIMIT_PER_MINUTE: '5' }),
      pool: stack.pool,
      client: stack.client,
      commands: stack.commands,
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const api = new Api(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
      const statuses = [];
      for (let i = 0; i < 7; i++) statuses.push((await api.get('/api/v1/tenants/me', team.agents[0].key)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
      const limited = await api.get('/api/v1/tenants/me', team.agents[0].key);
      expect(limited.body.error.code).toBe('rate_limited');
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      // Another key has its own budget.
      expect((await api.get('/api/v1/tenants/me', team.orchestrator.key)).status).toBe(200);
    } finally {
      server.close();
    }
  });
});

describe('signup', () => {
  it('can be turned off by configuration', async () => {
    const { createApp } = await import('../../src/gateway/app.js');
    const { parseConfig } = await import('../../src/config.js');
    const { Api } = await import('../support/api.js');
    const app = createApp({
      config: parseConfig({ SIGNUP_ENABLED: 'false' }),
      pool: stack.pool,
      client: stack.client,
      commands: stack.commands,
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const api = new Api(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
      const r = await api.post('/api/v1/tenants', undefined, { name: 'nope' });
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('forbidden');
      const { rows } = await stack.pool.query(`SELECT count(*)::int AS n FROM tenants WHERE name = 'nope'`);
      expect(rows[0].n).toBe(0);
    } finally {
      server.close();
    }
  });
});
