/**
 * Imports start each story's workflow once: a story whose workflow was started and told of its
 * dependencies is skipped by an unchanged re-import without asking Temporal; one a failed attempt
 * left unstarted is started by the next import; a dependency added to a started story reaches it.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storyQuery } from '../../workflows/messages.js';
import { createTeam, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';

let stack: Stack;
let team: Team;

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 0, 'import-starts');
});
afterAll(async () => stack?.stop());

const backlog = (stories: { number: string; depends_on?: string[] }[]) => ({
  epics: [
    {
      number: 1,
      title: 'Epic',
      stories: stories.map((s) => ({ ...s, title: `Story ${s.number}`, acceptance_criteria: ['works'] })),
    },
  ],
});
const importInto = (payload: unknown, merge = false) =>
  stack.api.post(
    `/api/v1/projects/${team.projectId}/import${merge ? '?merge=true' : ''}`,
    team.orchestrator.key,
    payload,
  );

async function rows(): Promise<Map<string, { id: string; workflow_id: string; workflow_started: boolean }>> {
  const { rows } = await stack.pool.query(
    'SELECT id, number, workflow_id, workflow_started FROM stories WHERE project_id = $1',
    [team.projectId],
  );
  return new Map(rows.map((r) => [r.number, r]));
}

async function runs(workflowId: string): Promise<boolean> {
  try {
    const description = await stack.client.workflow.getHandle(workflowId).describe();
    return description.status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/** Removes the workflow's execution from Temporal altogether, as if it had never been started. */
async function deleteExecution(workflowId: string): Promise<void> {
  await stack.client.workflowService.deleteWorkflowExecution({
    namespace: 'default',
    workflowExecution: { workflowId },
  });
  for (let i = 0; i < 100 && (await runs(workflowId).catch(() => true)); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await expect(stack.client.workflow.getHandle(workflowId).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
}

describe('import and the workflows it starts', () => {
  it('starts each story once, skips started ones unchanged, and completes what was left', async () => {
    const first = backlog([{ number: '1.1' }, { number: '1.2', depends_on: ['1.1'] }]);
    const imported = await importInto(first);
    expect(imported.status, JSON.stringify(imported.body)).toBe(201);
    let stored = await rows();
    expect([...stored.values()].map((r) => r.workflow_started)).toEqual([true, true]);
    for (const r of stored.values()) expect(await runs(r.workflow_id)).toBe(true);

    // Started and told: an unchanged re-import does not start it again, even if Temporal lost it.
    const a = stored.get('1.1')!;
    await deleteExecution(a.workflow_id);
    const unchanged = await importInto(first);
    expect(unchanged.status).toBe(201);
    expect(unchanged.body.data.stories_unchanged).toEqual(['1.1', '1.2']);
    await expect(stack.client.workflow.getHandle(a.workflow_id).describe()).rejects.toBeInstanceOf(
      WorkflowNotFoundError,
    );

    // Not marked started (an import that failed after its commit): the next import starts it.
    await stack.pool.query('UPDATE stories SET workflow_started = false WHERE id = $1', [a.id]);
    expect((await importInto(first)).status).toBe(201);
    expect(await runs(a.workflow_id)).toBe(true);
    expect((await rows()).get('1.1')!.workflow_started).toBe(true);

    // A dependency added to a started (pending) story by a merge reaches its workflow; a plain
    // re-import that changes a story's dependencies is a conflict.
    const second = backlog([{ number: '1.1' }, { number: '1.2', depends_on: ['1.1', '1.3'] }, { number: '1.3' }]);
    expect((await importInto(second)).status).toBe(409);
    const grown = await importInto(second, true);
    expect(grown.status, JSON.stringify(grown.body)).toBe(200);
    expect(grown.body.data).toMatchObject({ stories_created: 1, dependencies_created: 1 });
    stored = await rows();
    expect([...stored.values()].every((r) => r.workflow_started)).toBe(true);
    const b = await stack.client.workflow.getHandle(stored.get('1.2')!.workflow_id).query(storyQuery);
    expect(Object.keys(b.state.dependencies).sort()).toEqual([stored.get('1.1')!.id, stored.get('1.3')!.id].sort());
  }, 120_000);
});
