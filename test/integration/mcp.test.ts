/** The MCP server, spawned over stdio by the MCP SDK's own client, against the real gateway. */
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, importBacklog, oneStoryBacklog, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';

const BIN = fileURLToPath(new URL('../../bin/custody-mcp.js', import.meta.url));
const TOOLS = [
  'get_tenant',
  'list_projects',
  'create_project',
  'get_progress',
  'list_stories',
  'list_ready_stories',
  'get_story',
  'get_acceptance_criteria',
  'create_story',
  'import_stories',
  'contract_story',
  'claim_story',
  'start_story',
  'request_review',
  'report_story',
  'review_complete',
  'verify_story',
  'reject_story',
  'backfill_story',
  'verify_all_in_epic',
  'get_story_history',
  'heartbeat_story',
  'unclaim_story',
  'force_unclaim_story',
  'list_blocked_stories',
  'get_audit',
  'create_epic',
  'add_dependency',
  // Review policies: the policy, labels, each reviewer's findings, a round's sign-off.
  'get_review_policy',
  'set_review_policy',
  'set_agent_labels',
  'get_story_reviews',
  'aggregate_review',
];

let stack: Stack;
let team: Team;
const clients: Client[] = [];

async function mcp(keys: Record<string, string>): Promise<Client> {
  const client = new Client({ name: 'custody-test', version: '1' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [BIN],
      env: { PATH: process.env.PATH ?? '', LOOPCTL_SERVER: stack.baseUrl, ...keys },
      stderr: 'pipe',
    }),
  );
  clients.push(client);
  return client;
}

type Result = { isError?: boolean; content: { type: string; text: string }[] };
const text = (r: unknown) => (r as Result).content.map((c) => c.text).join('\n');

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 3, 'mcp');
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await stack?.stop();
});

describe('the MCP server', () => {
  it("lists loopctl's tools and drives a story through its lifecycle, blocking a self-verify", async () => {
    const [implementer, reviewer] = team.agents;
    const story = (await importBacklog(stack.api, team, oneStoryBacklog())).get('1.1');
    const client = await mcp({
      LOOPCTL_AGENT_KEY: implementer.key,
      LOOPCTL_REVIEW_KEY: reviewer.key,
      LOOPCTL_ORCH_KEY: team.orchestrator.key,
    });
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([...TOOLS].sort());
    // Each description names the key its tool uses.
    for (const t of tools) expect(t.description, t.name).toMatch(/Uses LOOPCTL_(AGENT|REVIEW|ORCH)_KEY/);

    const call = async (name: string, args: Record<string, unknown>) => {
      const result = (await client.callTool({ name, arguments: args })) as Result;
      expect(result.isError, `${name}: ${text(result)}`).toBeFalsy();
      return JSON.parse(text(result));
    };
    const ready = await call('list_ready_stories', { limit: 1 });
    expect(ready.data).toHaveLength(1);
    expect(ready.meta).toMatchObject({ count: 1, limit: 1 });
    // As loopctl's seed writes it.
    const seeded = await call('list_stories', { status: 'ready' });
    expect(seeded.data.map((s: { id: string }) => s.id)).toContain(story.id);
    expect(Object.keys(seeded.data[0]).sort()).toEqual(
      ['agent_status', 'assigned_agent_id', 'epic_id', 'id', 'number', 'title', 'verified_status'].sort(),
    );
    const criteria = await call('get_acceptance_criteria', { story_id: story.id });
    await call('contract_story', { story_id: story.id, story_title: story.title, ac_count: criteria.length });
    await call('claim_story', { story_id: story.id });
    await call('start_story', { story_id: story.id });
    await call('request_review', { story_id: story.id });
    await call('report_story', { story_id: story.id, artifact: 'https://example.test/pr/7' });
    await call('review_complete', {
      story_id: story.id,
      review_type: 'standard',
      findings_count: 2,
      fixes_count: 1,
      disproved_count: 1,
      summary: 'ok',
    });

    // The implementer's key in the orchestrator's place: the gate holds, and says why.
    const selfish = await mcp({ LOOPCTL_ORCH_KEY: implementer.key });
    const blocked = (await selfish.callTool({ name: 'verify_story', arguments: { story_id: story.id } })) as Result;
    expect(blocked.isError).toBe(true);
    expect(text(blocked)).toMatch(/^forbidden: /);
    expect(text(blocked)).toMatch(/\nnext step: /);

    const verified = await call('verify_story', { story_id: story.id, summary: 'done' });
    expect(verified).toMatchObject({ verified_status: 'verified', verified_by_agent_id: team.orchestrator.id });
    const history = (await call('get_story_history', { story_id: story.id })).data;
    expect(
      history.filter((h: { outcome: string }) => h.outcome === 'accepted').map((h: { action: string }) => h.action),
    ).toEqual(['contract', 'claim', 'start', 'request-review', 'report', 'review-complete', 'verify']);
  });

  it("says exactly what to do when the reviewer's key is used to verify", async () => {
    const [implementer] = team.agents;
    const story = (
      await importBacklog(stack.api, team, {
        epics: [{ number: 2, title: 'E', stories: [{ number: '2.1', title: 'Two', acceptance_criteria: ['a'] }] }],
      })
    ).get('2.1');
    // No review key: reviews fall back to the orchestrator's key, which then may not verify.
    const client = await mcp({ LOOPCTL_AGENT_KEY: implementer.key, LOOPCTL_ORCH_KEY: team.orchestrator.key });
    for (const [name, args] of [
      ['contract_story', { story_title: 'Two', ac_count: 1 }],
      ['claim_story', {}],
      ['start_story', {}],
      ['request_review', {}],
      ['report_story', {}],
      [
        'review_complete',
        { review_type: 'standard', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 'ok' },
      ],
    ] as const) {
      const r = (await client.callTool({ name, arguments: { story_id: story.id, ...args } })) as Result;
      expect(r.isError, `${name}: ${text(r)}`).toBeFalsy();
    }
    const r = (await client.callTool({ name: 'verify_story', arguments: { story_id: story.id } })) as Result;
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/^verifier_is_reviewer: /);
    expect(text(r)).toContain('LOOPCTL_REVIEW_KEY');
  });
});

describe('the MCP server: lists', () => {
  it('pages with offset and cursor, filters by agent_status, and explains a bad status', async () => {
    const backlog = {
      epics: [
        {
          number: 5,
          title: 'Many',
          stories: ['5.1', '5.2', '5.3'].map((number) => ({
            number,
            title: `S ${number}`,
            acceptance_criteria: ['a'],
          })),
        },
      ],
    };
    await importBacklog(stack.api, team, backlog);
    const client = await mcp({ LOOPCTL_ORCH_KEY: team.orchestrator.key });
    const call = async (args: Record<string, unknown>) => {
      const result = (await client.callTool({ name: 'list_stories', arguments: args })) as Result;
      expect(result.isError, text(result)).toBeFalsy();
      return JSON.parse(text(result));
    };
    const first = await call({ project_id: team.projectId, agent_status: 'pending', limit: 2 });
    expect(first.data).toHaveLength(2);
    expect(first.meta.next_cursor).toEqual(expect.any(String));
    expect(first.meta.next_offset).toBe(2);
    const next = await call({
      project_id: team.projectId,
      agent_status: 'pending',
      limit: 2,
      cursor: first.meta.next_cursor,
    });
    expect(next.data.map((s: { id: string }) => s.id)).not.toContain(first.data[0].id);
    expect(next.data.every((s: { agent_status: string }) => s.agent_status === 'pending')).toBe(true);
    const wrong = (await client.callTool({ name: 'list_stories', arguments: { status: 'done-ish' } })) as Result;
    expect(wrong.isError).toBe(true);
    expect(text(wrong)).toMatch(/^invalid_arguments: .*\nnext step: /s);
  });
});

describe('the MCP server: claims outlive the lease while it runs', () => {
  const LEASE = 2;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('an MCP-only session with three keys finishes an implementation longer than three leases', async () => {
    const [implementer, reviewer] = team.agents;
    const client = await mcp({
      LOOPCTL_AGENT_KEY: implementer.key,
      LOOPCTL_REVIEW_KEY: reviewer.key,
      LOOPCTL_ORCH_KEY: team.orchestrator.key,
    });
    const call = async (name: string, args: Record<string, unknown>) => {
      const result = (await client.callTool({ name, arguments: args })) as Result;
      expect(result.isError, `${name}: ${text(result)}`).toBeFalsy();
      return JSON.parse(text(result));
    };
    const project = await call('create_project', { name: 'Short leases', slug: 'short', lease_ttl_seconds: LEASE });
    expect(project.lease_ttl_seconds).toBe(LEASE);
    await call('import_stories', {
      project_id: project.id,
      payload: {
        epics: [
          { number: 1, title: 'E', stories: [{ number: '1.1', title: 'Long', acceptance_criteria: ['a', 'b'] }] },
        ],
      },
    });
    const [story] = (await call('list_stories', { project_id: project.id, status: 'ready' })).data;
    await call('contract_story', { story_id: story.id, story_title: 'Long', ac_count: 2 });
    await call('claim_story', { story_id: story.id });
    await call('start_story', { story_id: story.id });
    // The implementation: three and a half leases without a word from the agent.
    await sleep(LEASE * 3500);
    expect((await call('get_story', { story_id: story.id })).agent_status).toBe('implementing');
    await call('request_review', { story_id: story.id });
    await call('report_story', { story_id: story.id, artifact_type: 'pr', artifact_path: 'https://example.test/pr/1' });
    await call('review_complete', { story_id: story.id, review_type: 'single_reviewer', summary: 'fine' });
    expect(await call('verify_story', { story_id: story.id, summary: 'done' })).toMatchObject({
      verified_status: 'verified',
    });
    const history = (await call('get_story_history', { story_id: story.id })).data as { action: string }[];
    expect(history.map((h) => h.action)).not.toContain('lease-expired');
  });

  it('keeps alive a claim the key held before the server started, and says lease_expired for one already lost', async () => {
    const [, , third] = team.agents;
    // Longer than the other lease: the server must be up (and find the claim) before it runs out.
    const HELD_LEASE = 6;
    const project = await stack.api.post('/api/v1/projects', team.orchestrator.key, {
      name: 'Held',
      slug: 'held',
      lease_ttl_seconds: HELD_LEASE,
    });
    expect(project.status, JSON.stringify(project.body)).toBe(201);
    const imported = await stack.api.post(`/api/v1/projects/${project.body.data.id}/import`, team.orchestrator.key, {
      epics: [
        {
          number: 1,
          title: 'E',
          stories: ['1.1', '1.2'].map((number) => ({ number, title: number, acceptance_criteria: ['a'] })),
        },
      ],
    });
    const [kept, lost] = imported.body.data.stories as { id: string; title: string }[];
    for (const s of [kept, lost]) {
      expect((await stack.api.act(s.id, 'contract', third.key, { story_title: s.title, ac_count: 1 })).status).toBe(
        200,
      );
    }
    expect((await stack.api.act(lost.id, 'claim', third.key)).status).toBe(200);
    await sleep(HELD_LEASE * 1000 + 1500);
    expect((await stack.api.act(kept.id, 'claim', third.key)).status).toBe(200);
    const client = await mcp({ LOOPCTL_AGENT_KEY: third.key });
    await sleep(HELD_LEASE * 2500);
    const start = async (id: string) =>
      (await client.callTool({ name: 'start_story', arguments: { story_id: id } })) as Result;
    const started = await start(kept.id);
    expect(started.isError, text(started)).toBeFalsy();
    const refused = await start(lost.id);
    expect(refused.isError).toBe(true);
    expect(text(refused)).toMatch(/^lease_expired: /);
    expect(text(refused)).toMatch(/"expired_at":"/);
    expect(text(refused)).toMatch(/next step: .*claim_story again/);
  });
});

describe('the MCP server: the rest of the tools whose routes exist', () => {
  it('creates epics, stories and dependencies, lists blocked stories, heartbeats, unclaims and reads the audit', async () => {
    const [implementer, , other] = team.agents;
    const client = await mcp({ LOOPCTL_AGENT_KEY: other.key, LOOPCTL_ORCH_KEY: team.orchestrator.key });
    const call = async (name: string, args: Record<string, unknown>) => {
      const result = (await client.callTool({ name, arguments: args })) as Result;
      expect(result.isError, `${name}: ${text(result)}`).toBeFalsy();
      return JSON.parse(text(result));
    };
    expect((await call('get_tenant', {})).id).toBe(team.tenantId);
    const projects = await call('list_projects', {});
    expect(projects.map((p: { id: string }) => p.id)).toContain(team.projectId);
    const epic = await call('create_epic', { project_id: team.projectId, number: 8, title: 'Tools' });
    const first = await call('create_story', {
      epic_id: epic.id,
      number: '8.1',
      title: 'First',
      acceptance_criteria: ['a'],
    });
    const second = await call('create_story', {
      epic_id: epic.id,
      number: '8.2',
      title: 'Second',
      acceptance_criteria: ['a'],
    });
    await call('add_dependency', { story_id: second.id, depends_on_story_id: first.id });
    const blocked = await call('list_blocked_stories', { project_id: team.projectId });
    expect(blocked.data.map((s: { id: string }) => s.id)).toContain(second.id);
    const progress = await call('get_progress', { project_id: team.projectId });
    expect(progress.epics.find((e: { number: number }) => e.number === 8)).toMatchObject({ total: 2, verified: 0 });

    await call('contract_story', { story_id: first.id, story_title: 'First', ac_count: 1 });
    await call('claim_story', { story_id: first.id });
    const beat = await call('heartbeat_story', { story_id: first.id });
    expect(Date.parse(beat.lease_expires_at)).toBeGreaterThan(Date.now());
    expect((await call('unclaim_story', { story_id: first.id })).agent_status).toBe('contracted');
    await call('claim_story', { story_id: first.id });
    const taken = await call('force_unclaim_story', { story_id: first.id, reason: 'reassigning' });
    expect(taken).toMatchObject({ agent_status: 'contracted', assigned_agent_id: null });
    // Another agent's heartbeat: refused, and said so with the next step.
    const stranger = await mcp({ LOOPCTL_AGENT_KEY: implementer.key });
    const refused = (await stranger.callTool({ name: 'heartbeat_story', arguments: { story_id: first.id } })) as Result;
    expect(refused.isError).toBe(true);
    expect(text(refused)).toMatch(/^invalid_transition: .*\ncontext: .*\nnext step: /s);

    const audit = await call('get_audit', { story_id: first.id });
    expect(audit.data.map((r: { action: string }) => r.action)).toEqual(
      expect.arrayContaining(['contract', 'claim', 'unclaim', 'force-unclaim']),
    );
    const rejected = (await client.callTool({
      name: 'reject_story',
      arguments: { story_id: first.id, reason: 'not done' },
    })) as Result;
    expect(text(rejected)).toMatch(/^invalid_transition: /);
  });
});
