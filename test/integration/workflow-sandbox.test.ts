/**
 * The workflow sandbox's two costly extras (src/worker.ts, WorkflowSandbox): off by default, on
 * when configured. The switches are applied to the SDK at install (patches/, by patch-package);
 * without them a time limit of 0 would fail every workflow task and stack traces would be kept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { createTeam, importBacklog, oneStoryBacklog } from '../support/api.js';

let plain: Stack;
let traced: Stack;

beforeAll(async () => {
  // One after the other: a worker's threads read the stack trace switch when they are created.
  plain = await startStack();
  traced = await startStack({ env: { WORKFLOW_STACK_TRACES: 'on', WORKFLOW_ACTIVATION_TIMEOUT_MS: '5000' } });
});
afterAll(async () => Promise.all([plain?.stop(), traced?.stop()]));

/** A story contracted and claimed: its workflow has run updates and persisted them. */
async function claimedStory(stack: Stack): Promise<string> {
  const team = await createTeam(stack.api, 1, 'sandbox');
  const stories = await importBacklog(stack.api, team, oneStoryBacklog('Sandboxed', ['works']));
  const story = [...stories.values()][0];
  const agent = team.agents[0].key;
  expect((await stack.api.act(story.id, 'contract', agent, { story_title: 'Sandboxed', ac_count: 1 })).status).toBe(
    200,
  );
  expect((await stack.api.act(story.id, 'claim', agent, {})).status).toBe(200);
  return story.workflow_id as string;
}

describe('the workflow sandbox', () => {
  it('by default, runs stories with no time limit per entry and keeps no stack traces', async () => {
    const workflowId = await claimedStory(plain);
    await expect(plain.client.workflow.getHandle(workflowId).query('__stack_trace')).rejects.toThrow(
      /stack traces are not enabled/,
    );
  });

  it('with WORKFLOW_STACK_TRACES=on and a time limit, answers the stack trace query', async () => {
    const workflowId = await claimedStory(traced);
    const stack = await traced.client.workflow.getHandle(workflowId).query<string>('__stack_trace');
    expect(stack).toMatch(/condition|persistOutbox|watchLease/);
  });
});
