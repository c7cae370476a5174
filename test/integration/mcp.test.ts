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
  'get_story_history',
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
  team = await createTeam(stack.api, 2, 'mcp');
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

    const call = async (name: string, args: Record<string, unknown>) => {
      const result = (await client.callTool({ name, arguments: args })) as Result;
      expect(result.isError, `${name}: ${text(result)}`).toBeFalsy();
      return JSON.parse(text(result));
    };
    const ready = await call('list_ready_stories', { limit: 1 });
    expect(ready).toHaveLength(1);
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

    const verified = await call('verify_story', { story_id: story.id, summary: 'done' });
    expect(verified).toMatchObject({ verified_status: 'verified', verified_by_agent_id: team.orchestrator.id });
    const history = await call('get_story_history', { story_id: story.id });
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
