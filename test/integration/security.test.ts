/**
 * Custody bypass attempts and disclosure, through the real gateway, workflow, Temporal server and
 * PostgreSQL. The bypasses covered elsewhere are named where they live:
 * - another tenant's key: resources.test.ts, "tenant isolation" (404 on every route);
 * - a revoked or rotated-away key: resources.test.ts, "keys" (401 on every route);
 * - an orchestrator that implemented, a verifier that reviewed: lifecycle.test.ts, "custody gates";
 * - an update sent straight to the workflow with a forged identity: workflow.test.ts, "the trust
 *   boundary" (forged, stale, misdirected and missing signatures are all refused).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { createTeam, importBacklog, type Team } from '../support/api.js';
import { disclosureIn } from '../support/disclosure.js';

let stack: Stack;
let team: Team;
/** Every raw key this file saw: none may ever appear in a log line. */
const rawKeys: string[] = [];

beforeAll(async () => {
  // As deployed by default: webhooks may go to public addresses only.
  stack = await startStack({ env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'false' } });
  team = await createTeam(stack.api, 3, 'security');
  rawKeys.push(team.admin.key, team.orchestrator.key, ...team.agents.map((a) => a.key));
});
afterAll(async () => stack?.stop());

async function freshStory(): Promise<any> {
  const n = `${Math.floor(Math.random() * 1e6)}`;
  const stories = await importBacklog(stack.api, team, {
    epics: [
      {
        number: 1,
        title: 'Site',
        stories: [{ number: `1.${n}`, title: 'Checkout', acceptance_criteria: ['pays', 'refunds'] }],
      },
    ],
  });
  return [...stories.values()][0];
}

/** Contract, claim, start and request review, all by `implementer`. */
async function toReviewRequested(story: any, implementer: { key: string }): Promise<void> {
  for (const [action, body] of [
    ['contract', { story_title: story.title, ac_count: story.acceptance_criteria.length }],
    ['claim', {}],
    ['start', {}],
    ['request-review', {}],
  ] as const) {
    const r = await stack.api.act(story.id, action, implementer.key, body);
    expect(r.status, `${action}: ${JSON.stringify(r.body)}`).toBe(200);
  }
}

async function storyRow(id: string) {
  const { rows } = await stack.pool.query(
    'SELECT agent_status, verified_status, version, reported_by_agent_id, reviewer_agent_id FROM stories WHERE id = $1',
    [id],
  );
  return rows[0];
}

const SPOOFING_HEADERS = (as: { id: string }) => ({
  'x-agent-id': as.id,
  'x-tenant-id': team.tenantId,
  'x-role': 'orchestrator',
  'x-forwarded-user': as.id,
  'x-custody-identity': JSON.stringify({ agentId: as.id, role: 'orchestrator' }),
});

describe('identity comes from the key only', () => {
  it('ignores identity in headers: the implementer still cannot report, review or verify its own story', async () => {
    const story = await freshStory();
    const [implementer, reviewer] = team.agents;
    await toReviewRequested(story, implementer);
    const before = await storyRow(story.id);

    const report = await stack.api.act(story.id, 'report', implementer.key, {}, SPOOFING_HEADERS(reviewer));
    expect(report.status).toBe(409);
    expect(report.body.error.code).toBe('self_report_blocked');

    // Claiming to be the orchestrator in a header does not make an agent one.
    const verify = await stack.api.act(
      story.id,
      'verify',
      implementer.key,
      { summary: 'mine' },
      SPOOFING_HEADERS(team.orchestrator),
    );
    expect(verify.status).toBe(403);
    expect(verify.body.error.code).toBe('forbidden');
    expect(await storyRow(story.id)).toEqual(before);
  });

  it('refuses identity in the body as an unknown field, and changes nothing', async () => {
    const story = await freshStory();
    const [implementer, reviewer] = team.agents;
    await toReviewRequested(story, implementer);
    const before = await storyRow(story.id);
    for (const field of ['agent_id', 'reviewer_agent_id', 'reported_by_agent_id', 'actor', 'role', 'tenant_id']) {
      const r = await stack.api.act(story.id, 'report', implementer.key, {
        [field]: field === 'role' ? 'orchestrator' : reviewer.id,
      });
      expect(r.status, field).toBe(400);
      expect(r.body.error.code, field).toBe('invalid_body');
    }
    const review = await stack.api.act(story.id, 'review-complete', implementer.key, {
      review_type: 'standard',
      findings_count: 0,
      fixes_count: 0,
      disproved_count: 0,
      summary: 'fine',
      reviewer_agent_id: reviewer.id,
    });
    expect(review.status).toBe(400);
    expect(await storyRow(story.id)).toEqual(before);
    // Every refusal is in the story's history, and none of them moved it.
    const history = await stack.api.get(`/api/v1/stories/${story.id}/history`, team.orchestrator.key);
    expect(history.body.data.filter((e: any) => e.outcome === 'accepted')).toHaveLength(4);
  });

  it('treats a rotated key as the same agent: a second key does not make a second reviewer', async () => {
    const story = await freshStory();
    const implementer = team.agents[2];
    await toReviewRequested(story, implementer);

    // An agent cannot register another agent for itself...
    const register = await stack.api.post('/api/v1/agents/register', implementer.key, {
      name: 'my-reviewer',
      role: 'agent',
    });
    expect(register.status).toBe(403);
    // ...but it may rotate its own key: the new key is the same agent.
    const rotated = await stack.api.post(`/api/v1/api_keys/${implementer.keyId}/rotate`, implementer.key);
    expect(rotated.status).toBe(200);
    const secondKey = rotated.body.data.api_key.key as string;
    rawKeys.push(secondKey);
    expect(secondKey).not.toBe(implementer.key);

    const report = await stack.api.act(story.id, 'report', secondKey, {});
    expect(report.status).toBe(409);
    expect(report.body.error.code).toBe('self_report_blocked');
    expect(report.body.error.context).toMatchObject({});
    const old = await stack.api.act(story.id, 'report', implementer.key, {});
    expect(old.status).toBe(401);
    expect((await storyRow(story.id)).agent_status).toBe('review_requested');
    implementer.key = secondKey;
  });

  it('does not let a role be raised through the body of signup, registration or rotation', async () => {
    const agent = team.agents[0];
    const asAdmin = await stack.api.post('/api/v1/agents/register', agent.key, { name: 'x', role: 'admin' });
    expect(asAdmin.status).toBe(403);
    const roleField = await stack.api.post(`/api/v1/api_keys/${agent.keyId}/rotate`, agent.key, { role: 'admin' });
    expect(roleField.status).toBe(400);
    const me = await stack.api.get('/api/v1/tenants/me', agent.key);
    expect(me.status).toBe(200);
    const agents = await stack.api.get('/api/v1/agents', agent.key);
    expect(agents.status).toBe(403);
  });
});

describe("webhooks cannot reach into the service's own network", () => {
  it('refuses to subscribe loopback, private, link-local and metadata addresses, and stores nothing', async () => {
    const before = await stack.pool.query('SELECT count(*)::int AS n FROM webhooks');
    for (const url of [
      'http://127.0.0.1:5432/',
      'http://localhost:3000/api/v1/tenants',
      'http://[::1]:8233/',
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.1/hook',
      'http://192.168.1.20/hook',
      'http://0x7f000001/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://[::7f00:1]/hook',
      'http://[64:ff9b::a00:1]/hook',
      'http://[2002:7f00:1::]/hook',
      'https://user:secret@example.com/hook',
    ]) {
      const r = await stack.api.post('/api/v1/webhooks', team.admin.key, { url, events: ['story.verified'] });
      expect(r.status, url).toBe(400);
      expect(r.body.error, url).toMatchObject({ code: 'invalid_body', context: { field: 'url' } });
    }
    const after = await stack.pool.query('SELECT count(*)::int AS n FROM webhooks');
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it('checks again at delivery: a subscription whose address became private is not called', async () => {
    let calls = 0;
    const server = createServer((_req, res) => {
      calls += 1;
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      // As if each had been subscribed while its name resolved to a public address.
      const port = (server.address() as AddressInfo).port;
      for (const url of [`http://127.0.0.1:${port}/hook`, `http://localhost:${port}/hook`]) {
        const { rows } = await stack.pool.query(
          `INSERT INTO webhooks (tenant_id, url, events, secret) VALUES ($1, $2, '{story.claimed}', 'whsec_test') RETURNING id`,
          [team.tenantId, url],
        );
        const hookId = rows[0].id;
        expect((await stack.api.post(`/api/v1/webhooks/${hookId}/test`, team.admin.key)).status).toBe(201);
        let delivery: any;
        for (let i = 0; i < 200 && delivery?.status !== 'failed'; i++) {
          delivery = (await stack.api.get(`/api/v1/webhooks/${hookId}/deliveries`, team.admin.key)).body.data[0];
          if (delivery?.status !== 'failed') await new Promise((r) => setTimeout(r, 100));
        }
        expect(delivery.status, url).toBe('failed');
        expect(
          delivery.attempts.map((a: any) => a.error),
          url,
        ).toEqual(['address_not_allowed']);
      }
      expect(calls).toBe(0);
    } finally {
      server.close();
    }
  });
});

describe('text the database cannot store', () => {
  it('refuses a NUL or a lone surrogate in any body with a 400, and the story goes on', async () => {
    const story = await freshStory();
    const [implementer, reviewer] = team.agents;
    await toReviewRequested(story, implementer);
    const before = await storyRow(story.id);
    const json = { 'content-type': 'application/json' };
    for (const raw of [
      '{"artifact":"x\\u0000y"}',
      '{"artifact":"\\ud800"}',
      '{"artifact":{"k\\u0000":"v"}}',
      '{"artifact":{"k":"\\udc00 after"}}',
    ]) {
      const r = await stack.api.call('POST', `/api/v1/stories/${story.id}/report`, {
        key: reviewer.key,
        raw,
        headers: json,
      });
      expect(r.status, raw).toBe(400);
      expect(r.body.error.code, raw).toBe('invalid_body');
    }
    expect(await storyRow(story.id)).toEqual(before);
    // A well-formed pair of surrogates (an emoji) is ordinary text.
    const ok = await stack.api.call('POST', `/api/v1/stories/${story.id}/report`, {
      key: reviewer.key,
      raw: '{"artifact":"done \\ud83d\\ude80"}',
      headers: json,
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect((await storyRow(story.id)).agent_status).toBe('reported_done');

    for (const [path, key, raw] of [
      ['/api/v1/tenants', undefined, '{"name":"a\\u0000b"}'],
      ['/api/v1/projects', team.admin.key, '{"name":"P\\u0000","slug":"p-nul"}'],
      ['/api/v1/agents/register', team.admin.key, '{"name":"\\ud800","role":"agent"}'],
    ] as const) {
      const r = await stack.api.call('POST', path, { ...(key ? { key } : {}), raw, headers: json });
      expect(r.status, `${path} ${raw}`).toBe(400);
      expect(r.body.error.code).toBe('invalid_body');
    }
  });

  it('refuses times PostgreSQL cannot hold with a 400, not a 500', async () => {
    for (const since of ['0000-01-01T00:00:00Z', '9999-12-31T23:59:59-05:00', 'not a time']) {
      const r = await stack.api.get(`/api/v1/audit?since=${encodeURIComponent(since)}`, team.orchestrator.key);
      expect(r.status, since).toBe(400);
      expect(r.body.error.code, since).toBe('invalid_query');
    }
    // Offsets PostgreSQL would refuse are valid ISO 8601: the time is normalised to UTC first.
    for (const since of ['2020-01-01T00:00:00+23:00', '2020-01-01T00:00:00+05:30']) {
      const ok = await stack.api.get(`/api/v1/audit?since=${encodeURIComponent(since)}`, team.orchestrator.key);
      expect(ok.status, since).toBe(200);
      expect(ok.body.data.length).toBeGreaterThan(0);
    }
  });
});

describe('disclosure', () => {
  it('answers errors with no stack trace, SQL, file path or raw key', async () => {
    const story = await freshStory();
    const key = team.orchestrator.key;
    const probes: [string, string, { key?: string; body?: unknown; raw?: string; headers?: Record<string, string> }][] =
      [
        ['GET', `/api/v1/stories/not-a-uuid`, { key }],
        ['GET', `/api/v1/stories/${story.id}'; DROP TABLE stories;--`, { key }],
        ['GET', `/api/v1/stories?limit=-1&cursor=%00%ff`, { key }],
        ['GET', `/api/v1/stories?cursor=${encodeURIComponent("' OR 1=1 --")}`, { key }],
        [
          'POST',
          `/api/v1/stories/${story.id}/contract`,
          { key, raw: '{"story_title": "x", ', headers: { 'content-type': 'application/json' } },
        ],
        [
          'POST',
          `/api/v1/stories/${story.id}/contract`,
          { key, body: { story_title: 'x'.repeat(300_000), ac_count: 1 } },
        ],
        ['POST', `/api/v1/stories/${story.id}/contract`, { key, body: { story_title: 'x', ac_count: 1e308 } }],
        [
          'POST',
          `/api/v1/projects/${team.projectId}/import`,
          { key, body: { epics: [{ number: -1, title: null, stories: 'x' }] } },
        ],
        [
          'POST',
          `/api/v1/projects/${team.projectId}/import`,
          {
            key,
            body: {
              epics: [
                {
                  number: 1,
                  title: 'a',
                  stories: [{ number: "1.1'--", title: 't', acceptance_criteria: [], depends_on: ['9.9'] }],
                },
              ],
            },
          },
        ],
        ['POST', '/api/v1/story_dependencies', { key, body: { story_id: story.id, depends_on_story_id: story.id } }],
        ['POST', '/api/v1/agents/register', { key: team.admin.key, body: { name: 'root', role: 'superuser' } }],
        ['GET', '/api/v1/stories', { key: `${key}x` }],
        ['GET', '/api/v1/stories', { headers: { authorization: `Bearer ${key.slice(0, -2)}` } }],
        [
          'POST',
          `/api/v1/stories/${story.id}/claim`,
          { key, body: {}, headers: { 'idempotency-key': 'k'.repeat(129) } },
        ],
        ['DELETE', `/api/v1/api_keys/${team.agents[0].keyId}`, { key: team.agents[1].key }],
      ];
    for (const [method, path, options] of probes) {
      const r = await stack.api.call(method, path, options);
      const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
      expect(r.status, `${method} ${path}: ${text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${method} ${path}: ${text.slice(0, 200)}`).toBeLessThan(500);
      expect(disclosureIn(text, rawKeys), `${method} ${path}`).toBeNull();
    }
  });

  it('never writes a raw key or an Authorization header to the logs', async () => {
    // The lines this file's requests produced, successes and refusals alike.
    expect(stack.logs.length).toBeGreaterThan(30);
    const all = stack.logs.join('\n');
    for (const key of rawKeys) expect(all.includes(key), 'a raw key in the logs').toBe(false);
    expect(all).not.toMatch(/bearer\s+\w/i);
    expect(all).not.toMatch(/"authorization"\s*:/i);
    // Key prefixes (the non-secret part used to find a key) may be logged; whole keys never are.
    for (const key of rawKeys) expect(all.includes(key.slice(0, -6))).toBe(false);
  });
});
