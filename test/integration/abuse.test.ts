/**
 * Abuse and fairness: what one tenant or agent can cost the database or the others, and what it can
 * see of them. Rejected bodies are stored as a digest, history and audit come in capped pages with
 * opaque cursors and per-tenant numbers, limits hold per agent, tenant and address (before any key
 * lookup), keys are rotated only by their own agent, /metrics can be closed, blank text means no
 * letter or digit, and an expired Idempotency-Key is a new request.
 */
import type { Server } from 'node:http';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { canonicalJson } from '../../src/custody/identity.js';
import { createPool } from '../../src/db/pool.js';
import { createApp } from '../../src/gateway/app.js';
import { Api, createTeam, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';

let stack: Stack;
let team: Team;

beforeAll(async () => {
  stack = await startStack({ env: { RATE_LIMIT_PER_MINUTE: '0' } });
  team = await createTeam(stack.api, 3, 'abuse');
});
afterAll(async () => stack?.stop());

let storyCount = 0;
async function freshStories(n: number, t: Team = team): Promise<any[]> {
  const stories = Array.from({ length: n }, () => ({
    number: `1.${++storyCount}`,
    title: `Page ${storyCount}`,
    acceptance_criteria: ['renders'],
  }));
  const r = await stack.api.post(`/api/v1/projects/${t.projectId}/import`, t.orchestrator.key, {
    epics: [{ number: 1, title: 'Site', stories }],
  });
  expect(r.status).toBe(201);
  return r.body.data.stories;
}

/** A second gateway on the same database and Temporal, with its own settings. */
async function withGateway<T>(
  env: Record<string, string>,
  run: (api: Api) => Promise<T>,
  pool = stack.pool,
): Promise<T> {
  const app = createApp({ config: parseConfig(env), pool, client: stack.client, commands: stack.commands });
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    return await run(new Api(`http://127.0.0.1:${(server.address() as { port: number }).port}`));
  } finally {
    await new Promise((r) => server.close(r));
  }
}

async function pageAll(path: string, key: string, limit: number): Promise<{ rows: any[]; pages: number }> {
  const rows: any[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const r: { status: number; body: any } = await stack.api.get(
      `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      key,
    );
    expect(r.status).toBe(200);
    rows.push(...r.body.data);
    cursor = r.body.meta.next_cursor;
    pages++;
  } while (cursor !== null && pages < 100);
  return { rows, pages };
}

describe('rejected attempts', () => {
  it('keep a digest, the length and the first 1 KiB of the body: storage per ~240 KB attempt is bounded', async () => {
    const [story] = await freshStories(1);
    const body = { artifact: { blob: 'x'.repeat(240_000) } };
    const attempts = 50;
    const size = async () =>
      Number((await stack.pool.query(`SELECT pg_total_relation_size('audit_events') AS n`)).rows[0].n);
    const before = await size();
    for (let i = 0; i < attempts; i++) {
      // Reporting a pending story is refused (invalid_transition): each attempt is a rejected row.
      const r = await stack.api.act(story.id, 'report', team.agents[0].key, body);
      expect(r.status).toBe(409);
      expect(r.body.error.code).toBe('invalid_transition');
    }
    const after = await size();
    const { rows } = await stack.pool.query(
      `SELECT pg_column_size(e.*) AS row_bytes, payload FROM audit_events e WHERE story_id = $1 AND outcome = 'rejected'`,
      [story.id],
    );
    expect(rows).toHaveLength(attempts);
    const text = canonicalJson(body);
    for (const row of rows) {
      expect(row.payload.body).toEqual({
        digest: `sha256:${createHash('sha256').update(text).digest('hex')}`,
        length: Buffer.byteLength(text),
        head: text.slice(0, 1024),
        truncated: true,
      });
      expect(row.row_bytes).toBeLessThan(2048);
    }
    const perAttempt = (after - before) / attempts;
    const rowBytes = rows.reduce((sum, r) => sum + Number(r.row_bytes), 0) / attempts;
    console.log(
      `rejected ${Buffer.byteLength(JSON.stringify(body))}-byte attempts: audit_events grew ${after - before} bytes ` +
        `for ${attempts} (${perAttempt.toFixed(0)} per attempt, table and indexes); row ${rowBytes.toFixed(0)} bytes`,
    );
    // Whole pages and index splits included: a small multiple of the row, against 240 KB before.
    expect(perAttempt).toBeLessThan(8192);
    // The history shows the same summary, never the body.
    const history = await stack.api.get(`/api/v1/stories/${story.id}/history`, team.orchestrator.key);
    expect(JSON.stringify(history.body).length).toBeLessThan(attempts * 2048);
    expect(history.body.data[0].payload.body.length).toBe(Buffer.byteLength(text));
  });

  it('cut the head on a character boundary', async () => {
    const [story] = await freshStories(1);
    const r = await stack.api.act(story.id, 'report', team.agents[0].key, { artifact: '€'.repeat(2000) });
    expect(r.status).toBe(409);
    const { rows } = await stack.pool.query(`SELECT payload FROM audit_events WHERE story_id = $1`, [story.id]);
    const head: string = rows[0].payload.body.head;
    expect(Buffer.byteLength(head)).toBeLessThanOrEqual(1024);
    expect(head.endsWith('€')).toBe(true);
  });
});

describe('history and audit pages', () => {
  it('page a story history with opaque cursors, in order, each row once', async () => {
    const [story] = await freshStories(1);
    for (let i = 0; i < 12; i++) await stack.api.act(story.id, 'start', team.agents[0].key, {});
    const whole = await pageAll(`/api/v1/stories/${story.id}/history`, team.orchestrator.key, 5);
    expect(whole.pages).toBe(3);
    expect(whole.rows).toHaveLength(12);
    const ids = whole.rows.map((r) => r.id);
    expect(new Set(ids).size).toBe(12);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    const first = await stack.api.get(`/api/v1/stories/${story.id}/history?limit=5`, team.orchestrator.key);
    const cursor: string = first.body.meta.next_cursor;
    // Opaque: no readable position inside, and an edited cursor is refused.
    expect(() => JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))).toThrow();
    const edited = cursor.slice(0, -2) + (cursor.endsWith('AA') ? 'BB' : 'AA');
    for (const bad of [edited, Buffer.from('{"a":"1"}').toString('base64url'), 'x'.repeat(60)]) {
      const r = await stack.api.get(`/api/v1/stories/${story.id}/history?cursor=${bad}`, team.orchestrator.key);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('invalid_query');
    }
    for (const bad of ['limit=0', 'limit=501', 'limit=x', 'other=1']) {
      const r = await stack.api.get(`/api/v1/stories/${story.id}/history?${bad}`, team.orchestrator.key);
      expect(r.status).toBe(400);
    }
  });

  it('number audit rows per tenant: a tenant sees 1, 2, 3… whatever the others write', async () => {
    const other = await createTeam(stack.api, 1, 'abuse-quiet');
    const [mine] = await freshStories(1, other);
    await stack.api.act(mine.id, 'start', other.agents[0].key, {});
    // Meanwhile the first tenant writes plenty.
    const [busy] = await freshStories(1);
    for (let i = 0; i < 5; i++) await stack.api.act(busy.id, 'start', team.agents[0].key, {});
    await stack.api.act(mine.id, 'start', other.agents[0].key, {});
    const { rows } = await pageAll('/api/v1/audit', other.orchestrator.key, 500);
    expect(rows.map((r) => r.id)).toEqual(rows.map((_, i) => i + 1));
  });

  it('cap a page at about 1 MiB of payload, whatever the limit', async () => {
    const stories = await freshStories(6);
    const [implementer, reporter] = team.agents;
    const artifact = { blob: 'y'.repeat(240_000) };
    for (const s of stories) {
      for (const [action, key, body] of [
        ['contract', implementer.key, { story_title: s.title, ac_count: 1 }],
        ['claim', implementer.key, {}],
        ['start', implementer.key, {}],
        ['request-review', implementer.key, {}],
        ['report', reporter.key, { artifact }],
      ] as const) {
        expect((await stack.api.act(s.id, action, key, body)).status).toBe(200);
      }
    }
    const projectAudit = `/api/v1/audit?story_id=`;
    let total = 0;
    for (const s of stories) {
      const r = await stack.api.get(`${projectAudit}${s.id}&limit=500`, team.orchestrator.key);
      total += r.body.data.length;
    }
    const first = await stack.api.get(`/api/v1/audit?limit=500`, team.orchestrator.key);
    expect(first.status).toBe(200);
    expect(JSON.stringify(first.body).length).toBeLessThan(1024 * 1024 + 300_000);
    expect(first.body.meta.next_cursor).not.toBeNull();
    const whole = await pageAll('/api/v1/audit', team.orchestrator.key, 500);
    expect(whole.rows.filter((r) => stories.some((s) => s.id === r.story_id))).toHaveLength(total);
    expect(new Set(whole.rows.map((r) => r.id)).size).toBe(whole.rows.length);
  });
});

describe('rate limits', () => {
  it('count an agent across its keys: rotating a key does not reset the budget', async () => {
    const t = await createTeam(stack.api, 1, 'abuse-rotate');
    const agent = t.agents[0];
    await withGateway({ RATE_LIMIT_PER_MINUTE: '4' }, async (api) => {
      for (let i = 0; i < 3; i++) expect((await api.get('/api/v1/tenants/me', agent.key)).status).toBe(200);
      const rotated = await api.post(`/api/v1/api_keys/${agent.keyId}/rotate`, agent.key);
      expect(rotated.status).toBe(200);
      const fresh = await api.get('/api/v1/tenants/me', rotated.body.data.api_key.key);
      expect(fresh.status).toBe(429);
      expect(fresh.body.error.code).toBe('rate_limited');
      expect(fresh.body.error.context.scope).toBe('agent');
      expect(Number(fresh.headers.get('retry-after'))).toBeGreaterThan(0);
      // Another agent of the tenant has its own budget.
      expect((await api.get('/api/v1/tenants/me', t.orchestrator.key)).status).toBe(200);
    });
  });

  it('count a tenant across its agents', async () => {
    const t = await createTeam(stack.api, 2, 'abuse-tenant');
    const u = await createTeam(stack.api, 1, 'abuse-tenant-2');
    await withGateway({ RATE_LIMIT_PER_MINUTE: '100', RATE_LIMIT_TENANT_PER_MINUTE: '5' }, async (api) => {
      const statuses = [];
      for (const key of [t.agents[0].key, t.agents[1].key, t.orchestrator.key, t.agents[0].key, t.admin.key])
        statuses.push((await api.get('/api/v1/tenants/me', key)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200]);
      const over = await api.get('/api/v1/tenants/me', t.agents[1].key);
      expect(over.status).toBe(429);
      expect(over.body.error.context.scope).toBe('tenant');
      expect((await api.get('/api/v1/tenants/me', u.agents[0].key)).status).toBe(200);
    });
  });

  it('answer 429 before authentication: unknown keys cost no database lookup once an address is over', async () => {
    // The gateway's own pool, counting the queries it is asked to run.
    const pool = createPool(stack.databaseUrl, 2);
    let queries = 0;
    const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
    (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      queries++;
      return query(...args);
    };
    try {
      await withGateway(
        { RATE_LIMIT_FAILED_AUTH_PER_MINUTE: '3' },
        async (api) => {
          const unknown = () => `cust_${'A'.repeat(43)}`;
          const first = [];
          for (let i = 0; i < 3; i++) first.push((await api.get('/api/v1/tenants/me', unknown())).status);
          expect(first).toEqual([401, 401, 401]);
          const lookups = queries;
          expect(lookups).toBeGreaterThanOrEqual(3);
          for (let i = 0; i < 20; i++) {
            const r = await api.get('/api/v1/tenants/me', unknown());
            expect(r.status).toBe(429);
            expect(r.body.error.code).toBe('rate_limited');
            expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
          }
          expect(queries).toBe(lookups);
        },
        pool,
      );
      await withGateway(
        { RATE_LIMIT_ADDRESS_PER_MINUTE: '4' },
        async (api) => {
          const statuses = [];
          for (let i = 0; i < 4; i++) statuses.push((await api.get('/api/v1/tenants/me', team.agents[2].key)).status);
          const spent = queries;
          for (let i = 0; i < 4; i++) statuses.push((await api.get('/api/v1/tenants/me', team.agents[2].key)).status);
          // Even a valid key: the address is over before anyone looks the key up.
          expect(statuses).toEqual([200, 200, 200, 200, 429, 429, 429, 429]);
          expect(queries).toBe(spent);
        },
        pool,
      );
    } finally {
      await pool.end();
    }
  });
});

describe('keys', () => {
  it('an admin revokes another agent’s key but never rotates it; key events are audited with who did it', async () => {
    const t = await createTeam(stack.api, 2, 'abuse-keys');
    const [a, b] = t.agents;
    const byAdmin = await stack.api.post(`/api/v1/api_keys/${a.keyId}/rotate`, t.admin.key);
    expect(byAdmin.status).toBe(404);
    expect(JSON.stringify(byAdmin.body)).not.toContain('cust_');
    expect((await stack.api.get('/api/v1/tenants/me', a.key)).status).toBe(200);
    const byOther = await stack.api.post(`/api/v1/api_keys/${a.keyId}/rotate`, b.key);
    expect(byOther.status).toBe(404);
    const own = await stack.api.post(`/api/v1/api_keys/${a.keyId}/rotate`, a.key);
    expect(own.status).toBe(200);
    const newKeyId = own.body.data.api_key.id;
    const revoked = await stack.api.call('DELETE', `/api/v1/api_keys/${b.keyId}`, { key: t.admin.key });
    expect(revoked.status).toBe(200);
    expect((await stack.api.get('/api/v1/tenants/me', b.key)).status).toBe(401);
    // An agent revokes its own key, not another's.
    const notTheirs = await stack.api.call('DELETE', `/api/v1/api_keys/${t.orchestrator.keyId}`, {
      key: own.body.data.api_key.key,
    });
    expect(notTheirs.status).toBe(404);
    const audit = (await stack.api.get('/api/v1/audit?limit=500', t.admin.key)).body.data.filter((r: any) =>
      r.action.startsWith('api_key.'),
    );
    expect(audit.map((r: any) => [r.action, r.actor.agent_id, r.actor.role, r.payload.api_key_id])).toEqual([
      ['api_key.rotated', a.id, 'agent', a.keyId],
      ['api_key.revoked', t.admin.id, 'admin', b.keyId],
    ]);
    expect(audit[0].payload.new_api_key_id).toBe(newKeyId);
    for (const raw of [a.key, b.key, own.body.data.api_key.key]) expect(JSON.stringify(audit)).not.toContain(raw);
    // Revoking again changes nothing and writes no second row.
    await stack.api.call('DELETE', `/api/v1/api_keys/${b.keyId}`, { key: t.admin.key });
    const again = (await stack.api.get('/api/v1/audit?limit=500', t.admin.key)).body.data;
    expect(again.filter((r: any) => r.action === 'api_key.revoked')).toHaveLength(1);
    const chain = await stack.api.get('/api/v1/audit/verify', t.admin.key);
    expect(chain.body.data.ok).toBe(true);
  });
});

describe('metrics', () => {
  it('need the bearer token when METRICS_TOKEN is set', async () => {
    const token = 'metrics-token-0123456789';
    await withGateway({ METRICS_TOKEN: token }, async (api) => {
      expect((await api.get('/metrics')).status).toBe(401);
      expect((await api.call('GET', '/metrics', { headers: { authorization: `Bearer ${token}x` } })).status).toBe(401);
      expect((await api.call('GET', '/metrics', { headers: { authorization: token } })).status).toBe(401);
      const ok = await api.call('GET', '/metrics', { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(String(ok.body)).toContain('custody_');
    });
    expect((await stack.api.get('/metrics')).status).toBe(200);
    expect(() => parseConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN/);
  });
});

describe('blank text', () => {
  it('needs a letter or digit: invisible or punctuation-only reasons and names are refused', async () => {
    const [story] = await freshStories(1);
    const implementer = team.agents[0];
    await stack.api.act(story.id, 'contract', implementer.key, { story_title: story.title, ac_count: 1 });
    expect((await stack.api.act(story.id, 'claim', implementer.key, {})).status).toBe(200);
    for (const reason of ['\u200b', '\u200b\u200b ', ' \t', '--', '\u00a0']) {
      const r = await stack.api.act(story.id, 'force-unclaim', team.orchestrator.key, { reason });
      expect(r.status).toBe(422);
      expect(r.body.error.code).toBe('reason_required');
    }
    const current = await stack.api.get(`/api/v1/stories/${story.id}`, team.orchestrator.key);
    expect(current.body.data.agent_status).toBe('assigned');
    expect((await stack.api.act(story.id, 'force-unclaim', team.orchestrator.key, { reason: 'é' })).status).toBe(200);
    // A backfill's reason is a reason like the others (F7).
    const [unclaimed] = await freshStories(1);
    for (const reason of ['\u200b', '--']) {
      const r = await stack.api.act(unclaimed.id, 'backfill', team.orchestrator.key, { reason });
      expect([r.status, r.body.error?.code], JSON.stringify(r.body)).toEqual([422, 'reason_required']);
    }
    const backfilled = await stack.api.act(unclaimed.id, 'backfill', team.orchestrator.key, {
      reason: 'shipped in v1',
    });
    expect(backfilled.status, JSON.stringify(backfilled.body)).toBe(200);
    for (const name of ['\u200b', '...', '\u200b\u200c']) {
      const project = await stack.api.post('/api/v1/projects', team.admin.key, { name, slug: 'blank-name' });
      expect(project.status).toBe(400);
      expect(project.body.error.code).toBe('invalid_body');
      const agent = await stack.api.post('/api/v1/agents/register', team.admin.key, { name, role: 'agent' });
      expect(agent.status).toBe(400);
    }
    const digits = await stack.api.post('/api/v1/projects', team.admin.key, { name: '٣', slug: 'digit-name' });
    expect(digits.status).toBe(201);
  });
});

describe('idempotency keys', () => {
  it('after expiry, the same key and body is a new request judged on the story as it stands, with its audit row', async () => {
    const [story] = await freshStories(1);
    const implementer = team.agents[1];
    await stack.api.act(story.id, 'contract', implementer.key, { story_title: story.title, ac_count: 1 });
    const headers = { 'Idempotency-Key': `claim-${story.id}` };
    expect((await stack.api.act(story.id, 'claim', implementer.key, {}, headers)).status).toBe(200);
    // While the key lives, a repeat is the first answer.
    const replay = await stack.api.act(story.id, 'claim', implementer.key, {}, headers);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await stack.api.act(story.id, 'unclaim', implementer.key, {})).status).toBe(200);
    await stack.pool.query(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1`, [
      headers['Idempotency-Key'],
    ]);
    const again = await stack.api.act(story.id, 'claim', implementer.key, {}, headers);
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    expect(again.body.data.agent_status).toBe('assigned');
    // Expired again, on a story that has moved: judged as it stands (already assigned).
    await stack.pool.query(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1`, [
      headers['Idempotency-Key'],
    ]);
    const refused = await stack.api.act(story.id, 'claim', implementer.key, {}, headers);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('invalid_transition');
    const history = (await stack.api.get(`/api/v1/stories/${story.id}/history`, team.orchestrator.key)).body.data;
    expect(history.filter((h: any) => h.action === 'claim').map((h: any) => h.outcome)).toEqual([
      'accepted',
      'accepted',
      'rejected',
    ]);
    const { rows } = await stack.pool.query(
      `SELECT s.version, (SELECT count(*)::int FROM audit_events e WHERE e.story_id = s.id AND outcome = 'accepted') AS n
       FROM stories s WHERE s.id = $1`,
      [story.id],
    );
    // Every stored transition has its audit row.
    expect(rows[0].n).toBe(Number(rows[0].version));
  });
});

describe('an idempotency key and the query string (F10)', () => {
  it('the same key with another query is another request: 422 idempotency_key_reused; the same query replays', async () => {
    const path = `/api/v1/projects/${team.projectId}/import`;
    const backlog = {
      epics: [{ number: 7, title: 'Queries', stories: [{ number: '7.1', title: 'Q', acceptance_criteria: ['a'] }] }],
    };
    const headers = { 'Idempotency-Key': `import-query-${team.projectId}` };
    const first = await stack.api.post(path, team.orchestrator.key, backlog, headers);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const merged = await stack.api.post(`${path}?merge=true`, team.orchestrator.key, backlog, headers);
    console.log(`same key, ?merge=true: ${merged.status} ${JSON.stringify(merged.body.error ?? null)}`);
    expect([merged.status, merged.body.error?.code]).toEqual([422, 'idempotency_key_reused']);
    const replay = await stack.api.post(path, team.orchestrator.key, backlog, headers);
    expect([replay.status, replay.headers.get('idempotent-replayed')]).toEqual([201, 'true']);

    const queried = { 'Idempotency-Key': `import-query-2-${team.projectId}` };
    expect((await stack.api.post(`${path}?merge=true`, team.orchestrator.key, backlog, queried)).status).toBe(200);
    const again = await stack.api.post(`${path}?merge=true`, team.orchestrator.key, backlog, queried);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const plain = await stack.api.post(path, team.orchestrator.key, backlog, queried);
    expect([plain.status, plain.body.error?.code]).toEqual([422, 'idempotency_key_reused']);
  });
});

describe('quotas', () => {
  const quotaError = (r: { status: number; body: any }, resource: string, limit: number) => {
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('quota_exceeded');
    expect(r.body.error.context).toMatchObject({ resource, limit });
  };

  it('hold a tenant to its agents, projects, stories and webhooks, concurrent creates included', async () => {
    const env = {
      QUOTA_AGENTS: '4',
      QUOTA_PROJECTS: '2',
      QUOTA_STORIES: '3',
      QUOTA_WEBHOOKS: '1',
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    };
    await withGateway(env, async (api) => {
      const signup = await api.post('/api/v1/tenants', undefined, { name: 'quota' });
      const admin = signup.body.data.api_key.key as string;
      const register = (i: number) => api.post('/api/v1/agents/register', admin, { name: `a${i}`, role: 'agent' });
      expect((await register(0)).status).toBe(201);
      // Six at once for the last two places (the admin is the first agent).
      const racing = await Promise.all([1, 2, 3, 4, 5, 6].map(register));
      expect(racing.map((r) => r.status).sort()).toEqual([201, 201, 403, 403, 403, 403]);
      quotaError(
        racing.find((r) => r.status === 403)!,
        'agents',
        4,
      );
      const { rows } = await stack.pool.query('SELECT count(*)::int AS n FROM agents WHERE tenant_id = $1', [
        signup.body.data.tenant.id,
      ]);
      expect(rows[0].n).toBe(4);

      const project = async (slug: string) => api.post('/api/v1/projects', admin, { name: slug, slug });
      const p1 = await project('one');
      expect(p1.status).toBe(201);
      expect((await project('two')).status).toBe(201);
      quotaError(await project('three'), 'projects', 2);

      const importStories = (numbers: string[]) =>
        api.post(`/api/v1/projects/${p1.body.data.id}/import`, admin, {
          epics: [
            {
              number: 1,
              title: 'E',
              stories: numbers.map((number) => ({ number, title: number, acceptance_criteria: [] })),
            },
          ],
        });
      expect((await importStories(['1.1', '1.2'])).status).toBe(201);
      // All or nothing: two more would make four.
      const over = await importStories(['1.3', '1.4']);
      quotaError(over, 'stories', 3);
      expect(over.body.error.context).toMatchObject({ used: 2, requested: 2 });
      // Importing what exists again costs nothing.
      expect((await importStories(['1.1', '1.2'])).status).toBe(201);
      expect((await importStories(['1.3'])).status).toBe(201);
      const epicId = (await api.get(`/api/v1/projects/${p1.body.data.id}/epics`, admin)).body.data[0].id;
      quotaError(
        await api.post(`/api/v1/epics/${epicId}/stories`, admin, {
          number: '1.9',
          title: 'x',
          acceptance_criteria: [],
        }),
        'stories',
        3,
      );

      const hook = (i: number) =>
        api.post('/api/v1/webhooks', admin, { url: `http://127.0.0.1:9/q${i}`, events: ['story.verified'] });
      expect((await hook(1)).status).toBe(201);
      quotaError(await hook(2), 'webhooks', 1);
    });
  });

  it('stop a tenant writing once its stored bytes reach the quota; other tenants carry on', async () => {
    const t = await createTeam(stack.api, 1, 'quota-bytes');
    const [story] = await freshStories(1, t);
    const usage = async () =>
      Number(
        (await stack.pool.query('SELECT stored_bytes FROM tenant_usage WHERE tenant_id = $1', [t.tenantId])).rows[0]
          .stored_bytes,
      );
    const start = await usage();
    expect(start).toBeGreaterThan(0);
    const quota = start + 4000;
    await withGateway({ QUOTA_STORED_BYTES: String(quota) }, async (api) => {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await api.act(story.id, 'report', t.agents[0].key, { artifact: { blob: 'z'.repeat(200_000) } });
        statuses.push(r.status);
        if (r.status === 403) quotaError(r, 'stored_bytes', quota);
      }
      // About 1.5 KB per rejected attempt: three fit, then the tenant is refused before anything is written.
      expect(statuses.filter((s) => s === 409).length).toBeGreaterThanOrEqual(2);
      expect(statuses.slice(-3)).toEqual([403, 403, 403]);
      const spent = await usage();
      expect(spent).toBeLessThan(quota + 2048);
      quotaError(
        await api.post(`/api/v1/projects/${t.projectId}/import`, t.orchestrator.key, {
          epics: [{ number: 1, title: 'E', stories: [{ number: '1.999', title: 'x', acceptance_criteria: [] }] }],
        }),
        'stored_bytes',
        quota,
      );
      expect(await usage()).toBe(spent);
      // Another tenant (as small as this one was) is not touched by this one's quota.
      const u = await createTeam(stack.api, 1, 'quota-bytes-other');
      const [theirs] = await freshStories(1, u);
      expect((await api.act(theirs.id, 'report', u.agents[0].key, {})).status).toBe(409);
    });
  });
});

describe('exact creates', () => {
  it('give one 201 per story or epic number; every other concurrent creator gets a 409 with the existing id', async () => {
    const t = await createTeam(stack.api, 1, 'exact');
    const epics = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        stack.api.post(`/api/v1/projects/${t.projectId}/epics`, t.orchestrator.key, { number: 7, title: `E${i}` }),
      ),
    );
    const epicWinners = epics.filter((r) => r.status === 201);
    expect(epicWinners).toHaveLength(1);
    const epicId = epicWinners[0].body.data.id;
    for (const r of epics.filter((r) => r.status !== 201)) {
      expect(r.status).toBe(409);
      expect(r.body.error).toMatchObject({ code: 'conflict', context: { number: 7, existing_id: epicId } });
    }
    const stories = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        stack.api.post(`/api/v1/epics/${epicId}/stories`, t.orchestrator.key, {
          number: '7.1',
          title: `Caller ${i}`,
          acceptance_criteria: [],
        }),
      ),
    );
    const winners = stories.filter((r) => r.status === 201);
    expect(winners).toHaveLength(1);
    const storyId = winners[0].body.data.id;
    for (const r of stories.filter((r) => r.status !== 201)) {
      expect(r.status).toBe(409);
      expect(r.body.error).toMatchObject({ code: 'conflict', context: { number: '7.1', existing_id: storyId } });
    }
    const stored = await stack.api.get(`/api/v1/stories/${storyId}`, t.orchestrator.key);
    expect(stored.body.data.title).toBe(winners[0].body.data.title);
    const { rows } = await stack.pool.query(`SELECT count(*)::int AS n FROM stories WHERE tenant_id = $1`, [
      t.tenantId,
    ]);
    expect(rows[0].n).toBe(1);
  });
});

describe('webhook deliveries', () => {
  it("hold a tenant to its share of deliveries in flight, on the webhooks' own task queue", async () => {
    const t = await createTeam(stack.api, 1, 'hooks-share');
    const sockets = new Set<import('node:net').Socket>();
    let open = 0;
    let most = 0;
    let accepted = 0;
    const { createServer } = await import('node:net');
    // Takes every connection and never answers.
    const hanging = createServer((socket) => {
      sockets.add(socket);
      accepted++;
      most = Math.max(most, ++open);
      socket.on('error', () => undefined);
      // Read (and drop) what comes, so a client that gives up is seen closing.
      socket.resume();
      socket.on('close', () => open--);
    });
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
    try {
      const port = (hanging.address() as { port: number }).port;
      for (let i = 0; i < 10; i++) {
        const r = await stack.api.post('/api/v1/webhooks', t.admin.key, {
          url: `http://127.0.0.1:${port}/h${i}`,
          events: ['story.contracted'],
        });
        expect(r.status).toBe(201);
      }
      const [story] = await freshStories(1, t);
      expect(
        (await stack.api.act(story.id, 'contract', t.agents[0].key, { story_title: story.title, ac_count: 1 })).status,
      ).toBe(200);
      await new Promise((r) => setTimeout(r, 4000));
      expect(accepted).toBeGreaterThan(0);
      expect(most).toBe(4);
      const { rows } = await stack.pool.query(
        `SELECT count(*)::int AS n FROM webhook_deliveries WHERE tenant_id = $1 AND status = 'pending'`,
        [t.tenantId],
      );
      expect(rows[0].n).toBe(10);
    } finally {
      for (const s of sockets) s.destroy();
      hanging.close();
    }
  });
});
