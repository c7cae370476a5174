/**
 * Custody that holds beyond the gateway, driven through a Temporal client as an operator (or
 * anyone who can reach the namespace) would: terminate and re-import, forged starts, key rotation.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowIdReusePolicy, WorkflowIdConflictPolicy, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  keyRingOf,
  newSigningSeed,
  signEnvelope,
  signingKeyFromSeed,
  type ActionEnvelope,
  type SigningKey,
} from '../../src/custody/identity.js';
import type { Action } from '../../src/custody/actions.js';
import type { SignedActor } from '../../src/custody/actor.js';
import type { StoryState } from '../../src/custody/rules.js';
import {
  STORY_WORKFLOW_TYPE,
  storyQuery,
  storyUpdates,
  type StoryWorkflowInput,
  type TransitionRecord,
} from '../../workflows/messages.js';
import { createTeam, importBacklog, type Team } from '../support/api.js';
import { startStack, type Stack } from '../support/stack.js';

let stack: Stack;
let team: Team;

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 3, 'integrity');
});
afterAll(async () => stack?.stop());

let counter = 0;
function backlogOf(number: string) {
  return {
    epics: [{ number: 1, title: 'Site', stories: [{ number, title: `Story ${number}`, acceptance_criteria: ['a'] }] }],
  };
}
async function freshStory() {
  const number = `1.${++counter}`;
  const stories = await importBacklog(stack.api, team, backlogOf(number));
  return { story: stories.get(number)!, backlog: backlogOf(number) };
}

async function act(storyId: string, action: string, key: string, body: unknown = {}) {
  return stack.api.act(storyId, action, key, body);
}

/** A contracts, claims, starts and requests review: seq 1 to 4, A an implementer. */
async function implementedByA(story: { id: string; title: string }) {
  const a = team.agents[0].key;
  for (const [action, body] of [
    ['contract', { story_title: story.title, ac_count: 1 }],
    ['claim', {}],
    ['start', {}],
    ['request-review', {}],
  ] as const) {
    const r = await act(story.id, action, a, body);
    expect(r.status, `${action}: ${JSON.stringify(r.body)}`).toBe(200);
  }
}

async function acceptedSeqs(storyId: string): Promise<number[]> {
  const { rows } = await stack.pool.query<{ seq: string }>(
    `SELECT seq FROM audit_events WHERE story_id = $1 AND outcome = 'accepted' AND seq IS NOT NULL ORDER BY chain_seq`,
    [storyId],
  );
  return rows.map((r) => Number(r.seq));
}

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${stack.baseUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

describe('scenario 1: terminate + re-import', () => {
  it('leaves the story closed; a resume continues its custody, so the implementer is never certified', async () => {
    const { story, backlog } = await freshStory();
    await implementedByA(story);
    const [a, b, c] = team.agents;
    const handle = stack.client.workflow.getHandle(story.workflow_id);
    await handle.terminate('operator clicked terminate');

    // The re-import succeeds and starts nothing: the closed run stays the latest.
    const reimport = await stack.api.post(`/api/v1/projects/${team.projectId}/import`, team.orchestrator.key, backlog);
    expect(reimport.status).toBe(201);
    expect((await handle.describe()).status.name).toBe('TERMINATED');

    for (const [action, key] of [
      ['claim', b.key],
      ['report', a.key],
    ] as const) {
      const r = await act(story.id, action, key, action === 'report' ? { artifact: 'x' } : {});
      expect(r.status).toBe(409);
      expect(r.body.error.code).toBe('story_closed');
    }

    // Only an admin resumes, and the new run starts from the stored custody state.
    expect((await stack.api.post(`/api/v1/stories/${story.id}/resume`, team.orchestrator.key, {})).status).toBe(403);
    const resumed = await stack.api.post(`/api/v1/stories/${story.id}/resume`, team.admin.key, { reason: 'mistake' });
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body.data.agent_status).toBe('review_requested');
    const view = await handle.query(storyQuery);
    expect(view.seq).toBe(4);
    expect(view.state.implementerAgentIds).toEqual([a.id]);

    // A, the implementer, can neither report nor review nor verify its own story.
    const report = await act(story.id, 'report', a.key, { artifact: 'x' });
    expect(report.body.error.code).toBe('self_report_blocked');
    expect((await act(story.id, 'report', b.key, { artifact: 'x' })).status).toBe(200);
    const review = { review_type: 'standard', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 'ok' };
    expect((await act(story.id, 'review-complete', a.key, review)).body.error.code).toBe('self_review_blocked');
    expect((await act(story.id, 'review-complete', c.key, review)).status).toBe(200);
    const verified = await act(story.id, 'verify', team.orchestrator.key, { summary: 'fine' });
    expect(verified.status).toBe(200);

    const row = (await stack.api.get(`/api/v1/stories/${story.id}`, team.admin.key)).body.data;
    expect(row.verified_status).toBe('verified');
    expect([row.reported_by_agent_id, row.reviewer_agent_id, row.verified_by_agent_id]).not.toContain(a.id);
    // One sequence, no number twice.
    expect(await acceptedSeqs(story.id)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const history = (await stack.api.get(`/api/v1/stories/${story.id}/history`, team.admin.key)).body.data;
    expect(history.filter((h: { outcome: string }) => h.outcome === 'resumed')).toHaveLength(1);
    expect((await stack.api.get('/api/v1/audit/verify', team.admin.key)).body.data.ok).toBe(true);

    // A second resume of a running story that is not held is refused.
    const again = await stack.api.post(`/api/v1/stories/${story.id}/resume`, team.admin.key, {});
    expect(again.status).toBe(409);
  });
});

describe('dependency news for a closed story', () => {
  it('starts nothing; the edge is kept, and a resumed run is seeded with it', async () => {
    const { story } = await freshStory();
    const { story: dependency } = await freshStory();
    const a = team.agents[0];
    // Closed while pending: a story under way takes no new dependency (409 story_in_progress).
    const handle = stack.client.workflow.getHandle(story.workflow_id);
    await handle.terminate('operator');
    const added = await stack.api.post('/api/v1/story_dependencies', team.orchestrator.key, {
      story_id: story.id,
      depends_on_story_id: dependency.id,
    });
    expect(added.status).toBe(201);
    expect((await handle.describe()).status.name).toBe('TERMINATED');
    expect((await stack.api.post(`/api/v1/stories/${story.id}/resume`, team.admin.key, {})).status).toBe(200);
    expect(Object.keys((await handle.query(storyQuery)).state.dependencies)).toEqual([dependency.id]);
    expect((await act(story.id, 'contract', a.key, { story_title: story.title, ac_count: 1 })).status).toBe(200);
    const claim = await act(story.id, 'claim', a.key);
    expect(claim.status).toBe(409);
    expect(claim.body.error.code).toBe('dependencies_not_met');
  });
});

function envelopeFor(key: SigningKey, workflowId: string, action: Action, actor: SignedActor, body: unknown) {
  return signEnvelope(key, workflowId, { updateId: randomUUID(), action, actor, body, issuedAt: Date.now() });
}

describe('scenario 2: a forged start', () => {
  it('gets nothing written: an integrity violation, the story held until an admin resumes it', async () => {
    const { story } = await freshStory();
    await implementedByA(story);
    const [a, b] = team.agents;
    const handle = stack.client.workflow.getHandle(story.workflow_id);
    const real = await handle.query(storyQuery);
    await handle.terminate('forger');
    const violationsBefore = await metric('custody_integrity_violations_total');
    const hook = await stack.api.post('/api/v1/webhooks', team.admin.key, {
      url: 'http://127.0.0.1:9/custody',
      events: ['custody.violation'],
    });
    expect(hook.status).toBe(201);

    // The forger's own key, trusted by the run it starts; a state and outbox saying A reported,
    // reviewed and verified its own story.
    const forger = signingKeyFromSeed(newSigningSeed());
    const actorA: SignedActor = { tenantId: team.tenantId, agentId: a.id, role: 'agent' };
    const forged: StoryState = {
      ...real.state,
      agentStatus: 'reported_done',
      verifiedStatus: 'verified',
      reportedByAgentId: a.id,
      reviewerAgentId: a.id,
      verifiedByAgentId: a.id,
      review: {
        reviewer_agent_id: a.id,
        review_type: 'standard',
        findings_count: 0,
        fixes_count: 0,
        disproved_count: 0,
        summary: 'fine',
        iteration: 1,
      },
    };
    const steps: [Action, StoryState['agentStatus'], StoryState['agentStatus'], unknown][] = [
      ['report', 'review_requested', 'reported_done', { artifact: 'x' }],
      [
        'review-complete',
        'reported_done',
        'reported_done',
        { review_type: 'standard', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 'fine' },
      ],
      ['verify', 'reported_done', 'reported_done', { summary: 'fine' }],
    ];
    const outbox: TransitionRecord[] = steps.map(([action, from, to, body], i) => {
      const envelope = envelopeFor(forger, story.workflow_id, action, actorA, body);
      return {
        action,
        from: { agent_status: from, verified_status: 'unverified' },
        to: { agent_status: to, verified_status: action === 'verify' ? 'verified' : 'unverified' },
        iteration: 1,
        updateId: envelope.updateId,
        seq: 5 + i,
        actor: { agentId: a.id, role: 'agent' },
        payload: body,
        occurredAt: new Date().toISOString(),
        envelope,
      };
    });
    const input: StoryWorkflowInput = {
      facts: {
        tenantId: team.tenantId,
        projectId: team.projectId,
        storyId: story.id,
        number: story.number,
        title: story.title,
        acCount: 1,
        dependsOn: [],
      },
      trustedKeys: [forger.publicKey],
      carried: { state: forged, seq: 7, outbox, processed: [] },
    };
    await stack.client.workflow.start(STORY_WORKFLOW_TYPE, {
      workflowId: story.workflow_id,
      taskQueue: stack.taskQueue,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
    });

    const held = await until('the story to be held', async () => {
      const r = await stack.api.get(`/api/v1/stories/${story.id}`, team.admin.key);
      return r.body.data.held ? r.body.data : null;
    });
    // Nothing forged was written: the projection is where the real run left it.
    expect(held.agent_status).toBe('review_requested');
    expect(held.verified_status).toBe('unverified');
    expect(held.held_reason).toBe('signature_untrusted');
    expect(held.next_actions).toEqual([]);
    expect(await acceptedSeqs(story.id)).toEqual([1, 2, 3, 4]);
    const { rows } = await stack.pool.query(
      `SELECT code, payload FROM audit_events WHERE story_id = $1 AND outcome = 'integrity_violation'`,
      [story.id],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].code).toBe('signature_untrusted');
    expect(await metric('custody_integrity_violations_total')).toBeGreaterThan(violationsBefore);
    const events = await stack.pool.query<{ payload: { code: string; reason: string; story: { id: string } } }>(
      `SELECT payload FROM webhook_deliveries WHERE webhook_id = $1 AND event = 'custody.violation'`,
      [hook.body.data.id],
    );
    expect(events.rows.map((r) => [r.payload.code, r.payload.reason, r.payload.story.id])).toEqual([
      ['integrity_violation', 'signature_untrusted', story.id],
    ]);
    await stack.api.call('DELETE', `/api/v1/webhooks/${hook.body.data.id}`, { key: team.admin.key });
    expect((await stack.api.get('/api/v1/audit/verify', team.admin.key)).body.data.ok).toBe(true);
    // The forged run shows it is held, and takes no action either.
    const view = await until('the run to show it is held', async () => {
      const v = await handle.query(storyQuery);
      return v.held ? v : null;
    });
    expect(view.held).toBe(true);

    // The gateway refuses actions until an admin resumes; the resumed run starts from the database.
    const refused = await act(story.id, 'report', b.key, { artifact: 'x' });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('story_held');
    const resumed = await stack.api.post(`/api/v1/stories/${story.id}/resume`, team.admin.key, {});
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body.data.held).toBe(false);
    expect((await act(story.id, 'report', a.key, { artifact: 'x' })).body.error.code).toBe('self_report_blocked');
    expect((await act(story.id, 'report', b.key, { artifact: 'x' })).status).toBe(200);
    expect(await acceptedSeqs(story.id)).toEqual([1, 2, 3, 4, 5]);
  });

  it('refuses a forged outbox that replays a real, gateway-signed envelope', async () => {
    const { story } = await freshStory();
    await implementedByA(story);
    const handle = stack.client.workflow.getHandle(story.workflow_id);
    // Captured from the closed run's history (anyone who can read the namespace can): the real claim.
    const history = await handle.fetchHistory();
    const claim = (history.events ?? [])
      .map((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input)
      .find((i) => i?.name === 'claim');
    const envelope = JSON.parse(Buffer.from(claim!.args!.payloads![0].data!).toString('utf8')) as ActionEnvelope;
    expect(envelope.signature).toBeTruthy();
    const real = await handle.query(storyQuery);
    await handle.terminate('forger');
    const input: StoryWorkflowInput = {
      facts: {
        tenantId: team.tenantId,
        projectId: team.projectId,
        storyId: story.id,
        number: story.number,
        title: story.title,
        acCount: 1,
        dependsOn: [],
      },
      trustedKeys: [stack.signingKey.publicKey],
      carried: {
        state: { ...real.state, agentStatus: 'assigned' },
        seq: 5,
        outbox: [
          {
            action: 'claim',
            from: { agent_status: 'contracted', verified_status: 'unverified' },
            to: { agent_status: 'assigned', verified_status: 'unverified' },
            iteration: 1,
            updateId: envelope.updateId,
            seq: 5,
            actor: { agentId: envelope.actor.agentId, role: envelope.actor.role },
            payload: {},
            occurredAt: new Date(envelope.issuedAt).toISOString(),
            envelope,
          },
        ],
        processed: [],
      },
    };
    await stack.client.workflow.start(STORY_WORKFLOW_TYPE, {
      workflowId: story.workflow_id,
      taskQueue: stack.taskQueue,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    });
    const held = await until('the story to be held', async () => {
      const r = await stack.api.get(`/api/v1/stories/${story.id}`, team.admin.key);
      return r.body.data.held ? r.body.data : null;
    });
    expect(held.held_reason).toBe('replayed_update');
    expect(held.agent_status).toBe('review_requested');
    expect(await acceptedSeqs(story.id)).toEqual([1, 2, 3, 4]);
  });
});

describe('forged timed events', () => {
  /** Terminates the story's run and starts one whose input carries the real state and `clocks`. */
  async function forgedRun(
    story: { id: string; number: string; title: string; workflow_id: string },
    clocks: {
      leaseExpiresAt?: number | null;
      waitingSince?: number | null;
    },
  ) {
    const handle = stack.client.workflow.getHandle(story.workflow_id);
    const real = await handle.query(storyQuery);
    await handle.terminate('forger');
    const input: StoryWorkflowInput = {
      facts: {
        tenantId: team.tenantId,
        projectId: team.projectId,
        storyId: story.id,
        number: story.number,
        title: story.title,
        acCount: 1,
        dependsOn: [],
      },
      // The real ring: nothing here needs a signature, a lease expiry and a stall are the system's.
      trustedKeys: real.trustedKeys ?? [stack.signingKey.publicKey],
      carried: { state: real.state, seq: real.seq, outbox: [], processed: [], stalled: false, ...clocks },
    };
    await stack.client.workflow.start(STORY_WORKFLOW_TYPE, {
      workflowId: story.workflow_id,
      taskQueue: stack.taskQueue,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    });
    return handle;
  }

  async function heldStory(storyId: string) {
    return until('the story to be held', async () => {
      const r = await stack.api.get(`/api/v1/stories/${storyId}`, team.admin.key);
      return r.body.data.held ? r.body.data : null;
    });
  }

  async function violationsOf(storyId: string) {
    const { rows } = await stack.pool.query<{ code: string; payload: { detail: string } }>(
      `SELECT code, payload FROM audit_events WHERE story_id = $1 AND outcome = 'integrity_violation'`,
      [storyId],
    );
    return rows.map((r) => [r.code, r.payload.detail]);
  }

  it("refuses a lease expiry dated before the claim's deadline: the story is held, the claim stays", async () => {
    const { story } = await freshStory();
    const a = team.agents[0];
    expect((await act(story.id, 'contract', a.key, { story_title: story.title, ac_count: 1 })).status).toBe(200);
    const claimedAt = Date.now();
    expect((await act(story.id, 'claim', a.key)).status).toBe(200);
    const kept = async () =>
      (
        await stack.pool.query<{ t: Date }>('SELECT kept_lease_expires_at AS t FROM stories WHERE id = $1', [story.id])
      ).rows[0].t.getTime();
    // The claim's deadline (the project's 30-minute lease), then a heartbeat's, later.
    const claimDeadline = await kept();
    expect(claimDeadline).toBeGreaterThanOrEqual(claimedAt + 1800_000 - 1000);
    expect(claimDeadline).toBeLessThanOrEqual(Date.now() + 1800_000);
    await new Promise((r) => setTimeout(r, 50));
    const beat = await stack.api.post(`/api/v1/stories/${story.id}/heartbeat`, a.key);
    expect(beat.status).toBe(200);
    const deadline = await kept();
    expect(deadline).toBeGreaterThan(claimDeadline);
    expect(deadline).toBeLessThanOrEqual(Date.parse(beat.body.data.lease_expires_at));

    const violationsBefore = await metric('custody_integrity_violations_total');
    // A run whose input says the lease ran out a second ago: its own timer fires at once.
    const handle = await forgedRun(story, { leaseExpiresAt: Date.now() - 1000 });
    const held = await heldStory(story.id);
    expect(held).toMatchObject({
      held_reason: 'timed_event_unfounded',
      agent_status: 'assigned',
      assigned_agent_id: a.id,
    });
    expect(await acceptedSeqs(story.id)).toEqual([1, 2]);
    expect(await violationsOf(story.id)).toEqual([
      ['timed_event_unfounded', `the lease runs until ${new Date(deadline).toISOString()}`],
    ]);
    expect(await metric('custody_integrity_violations_total')).toBeGreaterThan(violationsBefore);
    await until('the run to show it is held', async () => (await handle.query(storyQuery)).held);
    // The holder keeps its claim once an admin resumes the story.
    expect((await stack.api.post(`/api/v1/stories/${story.id}/resume`, team.admin.key, {})).status).toBe(200);
    expect((await act(story.id, 'start', a.key)).status).toBe(200);
    expect((await act(story.id, 'claim', team.agents[1].key)).status).toBe(409);
  });

  it('refuses a stall a forged run backdates: the wait the database knows has not lasted a day', async () => {
    const { story } = await freshStory();
    const waitFrom = Date.now();
    await implementedByA(story);
    const { rows } = await stack.pool.query<{ t: Date }>('SELECT kept_waiting_since AS t FROM stories WHERE id = $1', [
      story.id,
    ]);
    expect(rows[0].t.getTime()).toBeGreaterThanOrEqual(waitFrom - 1000);
    await forgedRun(story, { waitingSince: Date.now() - 2 * 86_400_000 });
    const held = await heldStory(story.id);
    expect(held).toMatchObject({
      held_reason: 'timed_event_unfounded',
      agent_status: 'review_requested',
      stalled: false,
    });
    expect(await acceptedSeqs(story.id)).toEqual([1, 2, 3, 4]);
    expect((await violationsOf(story.id)).map(([code]) => code)).toEqual(['timed_event_unfounded']);
  });
});

async function updateFailure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  return (err as WorkflowUpdateFailedError).cause as ApplicationFailure;
}

describe('the key ring', () => {
  it('adds a key and retires one without restarting any story', async () => {
    const k1 = stack.keyRing.current;
    const k2 = signingKeyFromSeed(newSigningSeed(), 'k2');
    const { story } = await freshStory();
    const { story: quiet } = await freshStory();
    const a = team.agents[0];
    expect((await act(story.id, 'contract', a.key, { story_title: story.title, ac_count: 1 })).status).toBe(200);
    expect((await act(quiet.id, 'contract', a.key, { story_title: quiet.title, ac_count: 1 })).status).toBe(200);
    const handle = stack.client.workflow.getHandle(story.workflow_id);
    const runId = (await handle.describe()).runId;

    // Added: the gateway signs with k2, the story learns the ring from signed news and accepts it.
    await stack.useKeyRing(keyRingOf(k2, k1));
    expect((await act(story.id, 'claim', a.key)).status).toBe(200);
    expect((await handle.query(storyQuery)).trustedKeys?.sort()).toEqual([k1.publicKey, k2.publicKey].sort());

    // Retired: the next action tells the story, which then refuses k1.
    await stack.useKeyRing(keyRingOf(k2));
    expect((await act(story.id, 'start', a.key)).status).toBe(200);
    expect((await handle.query(storyQuery)).trustedKeys).toEqual([k2.publicKey]);
    const actor: SignedActor = { tenantId: team.tenantId, agentId: a.id, role: 'agent' };
    const old = envelopeFor(k1, story.workflow_id, 'request-review', actor, {});
    const failure = await updateFailure(
      handle.executeUpdate(storyUpdates['request-review'], { args: [old], updateId: old.updateId }),
    );
    expect(failure.type).toBe('unauthorized');
    // The same run all along.
    expect((await handle.describe()).runId).toBe(runId);
    expect((await act(story.id, 'request-review', a.key)).status).toBe(200);

    // A story that has not heard of the retirement still trusts k1, but the worker does not:
    // an action signed with the retired key is written nowhere and holds the story.
    const quietHandle = stack.client.workflow.getHandle(quiet.workflow_id);
    expect((await quietHandle.query(storyQuery)).trustedKeys).toEqual([k1.publicKey]);
    const leaked = envelopeFor(k1, quiet.workflow_id, 'claim', actor, {});
    const refused = await updateFailure(
      quietHandle.executeUpdate(storyUpdates.claim, { args: [leaked], updateId: leaked.updateId }),
    );
    expect(refused.type).toBe('story_held');
    const row = (await stack.api.get(`/api/v1/stories/${quiet.id}`, team.admin.key)).body.data;
    expect(row).toMatchObject({ held: true, held_reason: 'signature_untrusted', agent_status: 'contracted' });
    expect(await acceptedSeqs(quiet.id)).toEqual([1]);
  });
});
