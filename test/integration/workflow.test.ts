/** The story workflow's own guarantees: trust boundary, dependencies, continue-as-new, visibility. */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSigningSeed, signDependencyNews, signEnvelope, signingKeyFromSeed } from '../../src/custody/identity.js';
import { dependencyStatusSignal, storyQuery, storyUpdates } from '../../workflows/messages.js';
import { createTeam, driveToVerified, importBacklog, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';

let stack: Stack;
let team: Team;

beforeAll(async () => {
  // A tiny run length, so every lifecycle here crosses continue-as-new more than once.
  stack = await startStack({ workflowSettings: { maxTransitionsPerRun: 3 } });
  team = await createTeam(stack.api, 4, 'umbrella');
});
afterAll(async () => stack?.stop());

const criteria = ['a', 'b'];
let counter = 0;
async function freshStories(count: number, deps: Record<number, number[]> = {}) {
  const base = ++counter;
  const numbers = Array.from({ length: count }, (_, i) => `${base}.${i + 1}`);
  const stories = numbers.map((number, i) => ({
    number,
    title: `Story ${number}`,
    acceptance_criteria: criteria,
    depends_on: (deps[i] ?? []).map((d) => numbers[d]),
  }));
  const byNumber = await importBacklog(stack.api, team, { epics: [{ number: base, title: `Epic ${base}`, stories }] });
  return numbers.map((n) => byNumber.get(n)!);
}

async function updateFailure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  const cause = (err as WorkflowUpdateFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

describe('the trust boundary', () => {
  it('rejects updates sent straight to the workflow with a forged, stale, misdirected or missing signature', async () => {
    const [story, other] = await freshStories(2);
    const handle = stack.client.workflow.getHandle(story.workflow_id);
    const actor = { tenantId: team.tenantId, agentId: team.agents[0].id, role: 'agent' as const };
    const body = { story_title: story.title, ac_count: 2 };
    const forger = signingKeyFromSeed(newSigningSeed());
    const attempts = {
      'signed by another key': signEnvelope(forger, story.workflow_id, {
        updateId: 'f1',
        action: 'contract',
        actor,
        body,
        issuedAt: Date.now(),
      }),
      'too old': signEnvelope(stack.signingKey, story.workflow_id, {
        updateId: 'f2',
        action: 'contract',
        actor,
        body,
        issuedAt: Date.now() - 10 * 60_000,
      }),
      'for another story': signEnvelope(stack.signingKey, other.workflow_id, {
        updateId: 'f3',
        action: 'contract',
        actor,
        body,
        issuedAt: Date.now(),
      }),
      unsigned: { updateId: 'f4', action: 'contract' as const, actor, body, issuedAt: Date.now(), signature: '' },
      'identity swapped after signing': {
        ...signEnvelope(stack.signingKey, story.workflow_id, {
          updateId: 'f5',
          action: 'contract',
          actor,
          body,
          issuedAt: Date.now(),
        }),
        actor: { ...actor, agentId: team.agents[1].id },
      },
    };
    for (const [name, envelope] of Object.entries(attempts)) {
      const failure = await updateFailure(
        handle.executeUpdate(storyUpdates.contract, { args: [envelope], updateId: envelope.updateId }),
      );
      expect(failure.type, name).toBe('unauthorized');
    }
    const sent = signEnvelope(stack.signingKey, story.workflow_id, {
      updateId: 'f6',
      action: 'contract',
      actor,
      body,
      issuedAt: Date.now(),
    });
    const wrongUpdate = await updateFailure(handle.executeUpdate(storyUpdates.claim, { args: [sent], updateId: 'f6' }));
    expect(wrongUpdate.type).toBe('unauthorized');
    expect((await handle.query(storyQuery)).state.agentStatus).toBe('pending');
    // The gateway's own signature is accepted: the boundary is the key, not the path.
    const ok = await handle.executeUpdate(storyUpdates.contract, { args: [sent], updateId: sent.updateId });
    expect(ok.state.agentStatus).toBe('contracted');
  });

  it('ignores dependency news signalled straight to a story unless the trusted path signed it', async () => {
    const [dependency, dependent] = await freshStories(2, { 1: [0] });
    const [implementer] = team.agents;
    expect(
      (await stack.api.act(dependent.id, 'contract', implementer.key, { story_title: dependent.title, ac_count: 2 }))
        .status,
    ).toBe(200);
    const handle = stack.client.workflow.getHandle(dependent.workflow_id);
    const news = { storyId: dependency.id, verified: true, seq: 1_000 };
    const forger = signingKeyFromSeed(newSigningSeed());
    const forgeries = {
      unsigned: news,
      'signed by another key': signDependencyNews(forger, dependent.workflow_id, news),
      'signed for another story': signDependencyNews(stack.signingKey, dependency.workflow_id, news),
      'altered after signing': {
        ...signDependencyNews(stack.signingKey, dependent.workflow_id, { ...news, verified: false }),
        verified: true,
      },
    };
    for (const forged of Object.values(forgeries)) await handle.signal(dependencyStatusSignal, forged);
    // The signals are in the history before this query is answered.
    expect((await handle.query(storyQuery)).state.dependencies[dependency.id]?.verified).toBe(false);
    const claim = await stack.api.act(dependent.id, 'claim', implementer.key);
    expect(claim.status).toBe(409);
    expect(claim.body.error.code).toBe('dependencies_not_met');
    // The same news signed by the trusted path is taken: the check is the signature, nothing else.
    await handle.signal(dependencyStatusSignal, signDependencyNews(stack.signingKey, dependent.workflow_id, news));
    expect((await handle.query(storyQuery)).state.dependencies[dependency.id]?.verified).toBe(true);
  });
});

describe('dependencies', () => {
  it('keeps a story unclaimable and out of /ready until its last dependency is verified', async () => {
    const [a, b, c] = await freshStories(3, { 2: [0, 1] });
    const [implementer, reviewer] = team.agents;
    const readyIds = async () => {
      const r = await stack.api.get(`/api/v1/stories/ready?project_id=${team.projectId}&limit=500`, implementer.key);
      return new Set((r.body.data as any[]).map((s) => s.id));
    };
    const blocked = await stack.api.get(`/api/v1/stories/blocked?project_id=${team.projectId}`, implementer.key);
    expect((blocked.body.data as any[]).map((s) => s.id)).toContain(c.id);
    let ready = await readyIds();
    expect(ready.has(a.id) && ready.has(b.id) && !ready.has(c.id)).toBe(true);

    expect((await stack.api.act(c.id, 'contract', implementer.key, { story_title: c.title, ac_count: 2 })).status).toBe(
      200,
    );
    const early = await stack.api.act(c.id, 'claim', implementer.key);
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe('dependencies_not_met');

    await driveToVerified(stack.api, a, {
      implementer: implementer.key,
      reviewer: reviewer.key,
      verifier: team.orchestrator.key,
    });
    ready = await readyIds();
    expect(ready.has(c.id)).toBe(false);
    expect((await stack.api.act(c.id, 'claim', implementer.key)).body.error.code).toBe('dependencies_not_met');

    await driveToVerified(stack.api, b, {
      implementer: implementer.key,
      reviewer: reviewer.key,
      verifier: team.orchestrator.key,
    });
    ready = await readyIds();
    expect(ready.has(c.id)).toBe(true);
    // Answered verify means the dependent already knows: the claim goes through at once.
    expect((await stack.api.act(c.id, 'claim', implementer.key)).status).toBe(200);
  });

  it('refuses a dependency cycle', async () => {
    const [a, b] = await freshStories(2, { 1: [0] });
    const r = await stack.api.post('/api/v1/story_dependencies', team.orchestrator.key, {
      story_id: a.id,
      depends_on_story_id: b.id,
    });
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('dependency_cycle');
  });
});

describe('long life', () => {
  it('continues as new past the threshold without losing custody facts or audit rows', async () => {
    const [story] = await freshStories(1);
    const [implementer, reviewer, second] = team.agents;
    await driveToVerified(stack.api, story, {
      implementer: implementer.key,
      reviewer: reviewer.key,
      verifier: team.orchestrator.key,
    });
    expect((await stack.api.act(story.id, 'reject', team.orchestrator.key, { reason: 'again' })).status).toBe(200);
    const handle = stack.client.workflow.getHandle(story.workflow_id);
    const description = await handle.describe();
    expect(description.runId).not.toBe(description.raw.workflowExecutionInfo?.firstRunId);
    const view = await handle.query(storyQuery);
    expect(view.seq).toBe(8);
    expect(view.state).toMatchObject({ iteration: 2, agentStatus: 'pending', implementerAgentIds: [implementer.id] });
    // The implementer of iteration 1 is still barred after several runs.
    for (const [action, key, body] of [
      ['contract', second.key, { story_title: story.title, ac_count: 2 }],
      ['claim', second.key, {}],
      ['start', second.key, {}],
      ['request-review', second.key, {}],
    ] as const) {
      expect((await stack.api.act(story.id, action, key, body)).status).toBe(200);
    }
    const selfReport = await stack.api.act(story.id, 'report', implementer.key);
    expect(selfReport.body.error.code).toBe('self_report_blocked');
    const { rows } = await stack.pool.query(
      `SELECT seq, count(*)::int AS n FROM audit_events WHERE story_id = $1 AND outcome = 'accepted' GROUP BY seq ORDER BY seq`,
      [story.id],
    );
    expect(rows.map((r) => [Number(r.seq), r.n])).toEqual(Array.from({ length: 12 }, (_, i) => [i + 1, 1]));
  });
});

describe('visibility in the Temporal UI', () => {
  it('upserts search attributes so ops can find stories awaiting verification', async () => {
    const [story] = await freshStories(1);
    const [implementer, reviewer] = team.agents;
    for (const [action, key, body] of [
      ['contract', implementer.key, { story_title: story.title, ac_count: 2 }],
      ['claim', implementer.key, {}],
      ['start', implementer.key, {}],
      ['request-review', implementer.key, {}],
      ['report', reviewer.key, {}],
    ] as const) {
      expect((await stack.api.act(story.id, action, key, body)).status).toBe(200);
    }
    const query = `StoryStatus="reported_done" AND VerifiedStatus="unverified" AND ExecutionStatus="Running" AND TenantId="${team.tenantId}"`;
    let found: string[] = [];
    for (let i = 0; i < 50 && found.length === 0; i++) {
      found = [];
      for await (const wf of stack.client.workflow.list({ query })) found.push(wf.workflowId);
      if (found.length === 0) await new Promise((r) => setTimeout(r, 200));
    }
    expect(found).toEqual([story.workflow_id]);
    // The static summary names the story on its first run (the SDK cannot carry it across
    // continue-as-new); the current details name it, and its state, on every run.
    const latest = await stack.client.workflow.getHandle(story.workflow_id).describe();
    const firstRunId = latest.raw.workflowExecutionInfo!.firstRunId!;
    const first = await stack.client.workflow.getHandle(story.workflow_id, firstRunId).describe();
    expect(await first.staticSummary()).toBe(`${story.number} ${story.title}`);
    const metadata = await stack.client.workflow
      .getHandle(story.workflow_id)
      .query<{ currentDetails: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toContain(`**${story.number} ${story.title}**`);
    expect(metadata.currentDetails).toContain('`reported_done`');
  });
});
