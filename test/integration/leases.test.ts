/** Durable promises over time: claim leases kept alive by heartbeats, and stalled stories. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storyQuery } from '../../workflows/messages.js';
import { createTeam, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';

let stack: Stack;
let team: Team;
let projectId: string;
const TTL_SECONDS = 2;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 3, 'leases');
  const project = await stack.api.post('/api/v1/projects', team.admin.key, {
    name: 'Clocks',
    slug: 'clocks',
    lease_ttl_seconds: TTL_SECONDS,
    stall_after_seconds: TTL_SECONDS,
  });
  expect(project.status).toBe(201);
  projectId = project.body.data.id;
});
afterAll(async () => stack?.stop());

let n = 0;
async function claimedStory(agentKey: string) {
  const number = `9.${++n}`;
  const r = await stack.api.post(`/api/v1/projects/${projectId}/import`, team.orchestrator.key, {
    epics: [
      { number: 9, title: 'Clocks', stories: [{ number, title: `Clock ${number}`, acceptance_criteria: ['a'] }] },
    ],
  });
  const story = r.body.data.stories[0];
  expect((await stack.api.act(story.id, 'contract', agentKey, { story_title: story.title, ac_count: 1 })).status).toBe(
    200,
  );
  expect((await stack.api.act(story.id, 'claim', agentKey)).status).toBe(200);
  return story;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const storyRow = async (id: string) => (await stack.pool.query('SELECT * FROM stories WHERE id = $1', [id])).rows[0];

describe('claim leases', () => {
  it('returns a claim with no heartbeat to contracted, records lease-expired, and lets another agent claim', async () => {
    const [holder, other] = team.agents;
    const story = await claimedStory(holder.key);
    const expired = await until('the lease to expire', async () => {
      const row = await storyRow(story.id);
      return row.agent_status === 'contracted' ? row : undefined;
    });
    expect(expired.assigned_agent_id).toBeNull();
    const history = (await stack.api.get(`/api/v1/stories/${story.id}/history`, holder.key)).body.data;
    expect(history.at(-1)).toMatchObject({
      action: 'lease-expired',
      outcome: 'accepted',
      actor: { agent_id: null, role: 'system' },
      payload: { previous_assignee: holder.id },
    });
    // The former holder is told why: its claim ran out, and when.
    const late = await stack.api.act(story.id, 'start', holder.key);
    expect(late.status).toBe(409);
    expect(late.body.error).toMatchObject({
      code: 'lease_expired',
      context: { expired_at: history.at(-1).payload.lease_expired_at, attempted_action: 'start' },
    });
    const beat = await stack.api.post(`/api/v1/stories/${story.id}/heartbeat`, holder.key);
    expect(beat.body.error.code).toBe('lease_expired');
    expect((await stack.api.act(story.id, 'claim', other.key)).status).toBe(200);
    // Someone else holds it now: the former holder still hears that its own claim ran out.
    expect((await stack.api.act(story.id, 'start', holder.key)).body.error.code).toBe('lease_expired');
  });

  it('keeps a claim alive while its assignee heartbeats; only the assignee may', async () => {
    const [holder, other] = team.agents;
    const story = await claimedStory(holder.key);
    expect((await stack.api.act(story.id, 'start', holder.key)).status).toBe(200);
    for (let i = 0; i < 5; i++) {
      await sleep(700);
      const beat = await stack.api.post(`/api/v1/stories/${story.id}/heartbeat`, holder.key);
      expect(beat.status, JSON.stringify(beat.body)).toBe(200);
      expect(Date.parse(beat.body.data.lease_expires_at)).toBeGreaterThan(Date.now());
      // The database keeps the deadline (what the worker judges an expiry by): never past the workflow's.
      const kept = (await storyRow(story.id)).kept_lease_expires_at.getTime();
      expect(kept).toBeLessThanOrEqual(Date.parse(beat.body.data.lease_expires_at));
      expect(kept).toBeGreaterThan(Date.parse(beat.body.data.lease_expires_at) - 1000);
    }
    // 3.5 s have passed, longer than the 2 s lease: still held.
    expect((await storyRow(story.id)).agent_status).toBe('implementing');
    const stranger = await stack.api.post(`/api/v1/stories/${story.id}/heartbeat`, other.key);
    expect(stranger.body.error.code).toBe('not_assigned_agent');
    await until('the lease to expire once heartbeats stop', async () =>
      (await storyRow(story.id)).agent_status === 'contracted' ? true : undefined,
    );
  });

  it("GET /stories/:id shows the claim's lease_expires_at (F5): the heartbeat's deadline while held, null otherwise", async () => {
    const [holder] = team.agents;
    const story = await claimedStory(holder.key);
    const shown = async () => (await stack.api.get(`/api/v1/stories/${story.id}`, holder.key)).body.data;
    const claimed = await shown();
    console.log(`GET after claim: lease_expires_at ${claimed.lease_expires_at}`);
    expect(Date.parse(claimed.lease_expires_at)).toBeGreaterThan(Date.now() - 1000);
    const beat = await stack.api.post(`/api/v1/stories/${story.id}/heartbeat`, holder.key);
    expect(beat.status).toBe(200);
    expect((await shown()).lease_expires_at).toBe(beat.body.data.lease_expires_at);
    const started = await stack.api.act(story.id, 'start', holder.key);
    expect(Date.parse(started.body.data.lease_expires_at)).toBeGreaterThanOrEqual(
      Date.parse(beat.body.data.lease_expires_at),
    );
    await until('the lease to expire', async () =>
      (await storyRow(story.id)).agent_status === 'contracted' ? true : undefined,
    );
    expect((await shown()).lease_expires_at).toBeNull();
    const list = (await stack.api.get(`/api/v1/stories?project_id=${projectId}`, holder.key)).body.data;
    expect(list.find((s: any) => s.id === story.id).lease_expires_at).toBeNull();
  });

  it('holds across a worker restart: the timer fires while no worker runs, and is acted on when one is back', async () => {
    const story = await claimedStory(team.agents[2].key);
    await stack.stopWorker();
    await sleep(TTL_SECONDS * 1000 + 1000);
    expect((await storyRow(story.id)).agent_status).toBe('assigned');
    await stack.startWorker();
    await until('the lease to expire after the restart', async () =>
      (await storyRow(story.id)).agent_status === 'contracted' ? true : undefined,
    );
    const view = await stack.client.workflow.getHandle(story.workflow_id).query(storyQuery);
    expect(view.state.assignedAgentId).toBeNull();
  });
});

describe('a request that arrives after the lease ran out', () => {
  it('is judged as after the expiry, even when its task also carries the unhandled timer', async () => {
    const holder = team.agents[1];
    const story = await claimedStory(holder.key);
    await stack.stopWorker();
    await sleep(TTL_SECONDS * 1000 + 1000);
    // Sent while no worker runs: the next task holds the fired timer and this update together.
    const late = stack.api.act(story.id, 'start', holder.key);
    const lateBeat = stack.api.post(`/api/v1/stories/${story.id}/heartbeat`, holder.key);
    // Another agent's claim in the same window is refused too: the story is not free until the
    // expiry is applied.
    const lateClaim = stack.api.act(story.id, 'claim', team.agents[2].key);
    await sleep(500);
    await stack.startWorker();
    const [started, beat, claimed] = await Promise.all([late, lateBeat, lateClaim]);
    expect(started.status, JSON.stringify(started.body)).toBe(409);
    expect(started.body.error.code).toBe('lease_expired');
    expect(beat.status, JSON.stringify(beat.body)).toBe(409);
    expect(beat.body.error.code).toBe('lease_expired');
    expect(claimed.status, JSON.stringify(claimed.body)).toBe(409);
    await until('the lease to expire', async () =>
      (await storyRow(story.id)).agent_status === 'contracted' ? true : undefined,
    );
    const history = (await stack.api.get(`/api/v1/stories/${story.id}/history`, holder.key)).body.data;
    expect(history.filter((e: any) => e.action === 'start' && e.outcome === 'accepted')).toHaveLength(0);
    expect(history.filter((e: any) => e.action === 'lease-expired')).toHaveLength(1);
  });
});

describe('a project without leases (lease_ttl_seconds 0)', () => {
  it('never expires a claim, and heartbeats answer lease_expires_at null', async () => {
    const project = await stack.api.post('/api/v1/projects', team.admin.key, {
      name: 'No clock',
      slug: 'no-clock',
      lease_ttl_seconds: 0,
    });
    expect(project.status, JSON.stringify(project.body)).toBe(201);
    expect(project.body.data.lease_ttl_seconds).toBe(0);
    const holder = team.agents[0];
    const r = await stack.api.post(`/api/v1/projects/${project.body.data.id}/import`, team.orchestrator.key, {
      epics: [{ number: 1, title: 'E', stories: [{ number: '1.1', title: 'Forever', acceptance_criteria: ['a'] }] }],
    });
    const story = r.body.data.stories[0];
    expect(
      (await stack.api.act(story.id, 'contract', holder.key, { story_title: 'Forever', ac_count: 1 })).status,
    ).toBe(200);
    expect((await stack.api.act(story.id, 'claim', holder.key)).status).toBe(200);
    // Longer than the other project's lease, and than a lease of 0 would be.
    await sleep(TTL_SECONDS * 1000 + 1000);
    const beat = await stack.api.post(`/api/v1/stories/${story.id}/heartbeat`, holder.key);
    expect(beat.status, JSON.stringify(beat.body)).toBe(200);
    expect(beat.body.data.lease_expires_at).toBeNull();
    expect((await stack.api.act(story.id, 'start', holder.key)).status).toBe(200);
    expect((await storyRow(story.id)).agent_status).toBe('implementing');
    const view = await stack.client.workflow.getHandle(story.workflow_id).query(storyQuery);
    expect(view.leaseExpiresAt).toBeNull();
  });
});

describe('stalled stories', () => {
  it('fires once when review waits too long, sets the Stalled search attribute, and clears on progress', async () => {
    const [implementer, reviewer] = team.agents;
    const story = await claimedStory(implementer.key);
    expect((await stack.api.act(story.id, 'start', implementer.key)).status).toBe(200);
    expect((await stack.api.act(story.id, 'request-review', implementer.key)).status).toBe(200);
    await until('the story to stall', async () => ((await storyRow(story.id)).stalled ? true : undefined));
    const listed = await stack.api.get(`/api/v1/stories?project_id=${projectId}&stalled=true`, team.orchestrator.key);
    expect(listed.body.data.map((s: any) => s.id)).toEqual([story.id]);
    let found: string[] = [];
    await until('the Stalled search attribute', async () => {
      found = [];
      for await (const wf of stack.client.workflow.list({
        query: `Stalled="true" AND TenantId="${team.tenantId}" AND ExecutionStatus="Running"`,
      }))
        found.push(wf.workflowId);
      return found.length > 0 ? true : undefined;
    });
    expect(found).toEqual([story.workflow_id]);
    await sleep(TTL_SECONDS * 1000 + 500);
    const { rows } = await stack.pool.query(
      `SELECT count(*)::int AS n FROM audit_events WHERE story_id = $1 AND action = 'stalled'`,
      [story.id],
    );
    expect(rows[0].n).toBe(1);
    expect((await stack.api.act(story.id, 'report', reviewer.key)).status).toBe(200);
    expect((await storyRow(story.id)).stalled).toBe(false);
  });
});
