/**
 * Review policies through the real gateway, workflow, Temporal server and PostgreSQL: policies per
 * project (versioned, audited), labels set by an admin only, and a story's reviews.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { createTeam, type Team } from '../support/api.js';

let stack: Stack;
let team: Team;

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 8);
});
afterAll(async () => stack?.stop());

const PIPELINE = {
  rounds: [
    {
      name: 'team',
      min_reviewers: 3,
      required_labels: ['business-analyst', 'architect', 'engineer'],
      aggregator_required: true,
    },
    { name: 'adversarial', min_reviewers: 4, required_labels: ['security-adversary'], aggregator_required: true },
  ],
};

const put = (path: string, key: string, body: unknown) => stack.api.call('PUT', path, { key, body });

describe('review policies per project', () => {
  it('starts at the default, takes new versions from an admin only, keeps every version and audits each change', async () => {
    const path = `/api/v1/projects/${team.projectId}/review_policy`;
    const initial = await stack.api.get(path, team.agents[0].key);
    expect(initial.status).toBe(200);
    expect(initial.body.data).toMatchObject({
      version: 0,
      default: true,
      rounds: [{ name: 'review', min_reviewers: 1, required_labels: [], aggregator_required: false }],
    });

    for (const key of [team.orchestrator.key, team.agents[0].key]) {
      const refused = await put(path, key, PIPELINE);
      expect([refused.status, refused.body.error.code]).toEqual([403, 'forbidden']);
    }
    const bad = await put(path, team.admin.key, { rounds: [PIPELINE.rounds[0], PIPELINE.rounds[0]] });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid_body']);
    const zero = await put(path, team.admin.key, { rounds: [{ ...PIPELINE.rounds[0], min_reviewers: 0 }] });
    expect([zero.status, zero.body.error.code]).toEqual([400, 'invalid_body']);

    const first = await put(path, team.admin.key, PIPELINE);
    expect(first.status).toBe(200);
    expect(first.body.data).toMatchObject({ version: 1, default: false, created_by: team.admin.id });
    expect(first.body.data.rounds[0].required_labels).toEqual(['architect', 'business-analyst', 'engineer']);
    const second = await put(path, team.admin.key, { rounds: [PIPELINE.rounds[1]] });
    expect(second.body.data.version).toBe(2);

    const now = await stack.api.get(path, team.agents[1].key);
    expect(now.body.data).toMatchObject({ version: 2, rounds: [{ name: 'adversarial' }] });
    const versions = await stack.api.get(`${path}/versions`, team.agents[1].key);
    expect(versions.body.data.map((v: { version: number }) => v.version)).toEqual([2, 1]);

    const { rows } = await stack.pool.query(
      `SELECT action, actor_agent_id, payload FROM audit_events WHERE project_id = $1 AND action = 'review_policy.changed' ORDER BY id`,
      [team.projectId],
    );
    expect(rows.map((r) => [r.actor_agent_id, r.payload.version, r.payload.previous_version])).toEqual([
      [team.admin.id, 1, 0],
      [team.admin.id, 2, 1],
    ]);
    // Another tenant does not see the project's policy.
    const other = await createTeam(stack.api, 0, 'other');
    expect((await stack.api.get(path, other.admin.key)).status).toBe(404);
    expect((await put(path, other.admin.key, PIPELINE)).status).toBe(404);
  });
});

describe('agent labels', () => {
  it('are set by an admin (audited), never by the agent itself nor by anyone else', async () => {
    const target = team.agents[2];
    const path = `/api/v1/agents/${target.id}/labels`;
    const set = await put(path, team.admin.key, { labels: ['security-adversary', 'engineer'] });
    expect(set.status).toBe(200);
    expect(set.body.data).toMatchObject({ id: target.id, labels: ['engineer', 'security-adversary'] });
    for (const key of [target.key, team.orchestrator.key]) {
      const refused = await put(path, key, { labels: ['architect'] });
      expect([refused.status, refused.body.error.code]).toEqual([403, 'forbidden']);
    }
    const own = await put(`/api/v1/agents/${team.admin.id}/labels`, team.admin.key, { labels: ['architect'] });
    expect([own.status, own.body.error.code]).toEqual([403, 'forbidden']);
    const bad = await put(path, team.admin.key, { labels: ['Security Adversary'] });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid_body']);
    const { rows } = await stack.pool.query(
      `SELECT actor_agent_id, payload FROM audit_events WHERE tenant_id = $1 AND action = 'agent.labels_set' ORDER BY id`,
      [team.tenantId],
    );
    expect(rows).toEqual([
      {
        actor_agent_id: team.admin.id,
        payload: { agent_id: target.id, labels: ['engineer', 'security-adversary'], previous_labels: [] },
      },
    ]);
  });
});

describe("a story's reviews", () => {
  it('shows the default policy and the records of a story without a policy of its own', async () => {
    const other = await createTeam(stack.api, 0, 'plain');
    const r = await stack.api.post(`/api/v1/projects/${other.projectId}/import`, other.orchestrator.key, {
      epics: [{ number: 1, title: 'Site', stories: [{ number: '1.1', title: 'Home', acceptance_criteria: ['a'] }] }],
    });
    const story = r.body.data.stories[0];
    const reviews = await stack.api.get(`/api/v1/stories/${story.id}/reviews`, other.orchestrator.key);
    expect(reviews.status).toBe(200);
    expect(reviews.body.data).toMatchObject({
      story_id: story.id,
      iteration: 1,
      policy: { version: 0, default: true },
      rounds: null,
      records: [],
    });
    expect((await stack.api.get(`/api/v1/stories/${story.id}/reviews`, team.admin.key)).status).toBe(404);
  });
});
