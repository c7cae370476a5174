/** The story lifecycle through the real gateway, workflow, Temporal server and PostgreSQL. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { keyDigest, keyLabel, newRawKey } from '../../src/db/keys.js';
import { createTeam, driveToVerified, type Team } from '../support/api.js';
import { getStory } from '../../src/db/story-repo.js';
import { custodyErrorOf } from '../../src/gateway/temporal-errors.js';

let stack: Stack;
let team: Team;

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 22);
});
afterAll(async () => stack?.stop());

async function freshStory(title = 'Landing page'): Promise<any> {
  const n = `${Math.floor(Math.random() * 1e6)}`;
  const r = await stack.api.post(`/api/v1/projects/${team.projectId}/import`, team.orchestrator.key, {
    epics: [
      {
        number: 1,
        title: 'Site',
        stories: [{ number: `1.${n}`, title, acceptance_criteria: ['renders', 'links work', 'is fast'] }],
      },
    ],
  });
  expect(r.status).toBe(201);
  return r.body.data.stories[0];
}

async function auditRows(storyId: string) {
  const { rows } = await stack.pool.query(
    `SELECT action, outcome, code, actor_agent_id, from_agent_status, to_agent_status, seq FROM audit_events WHERE story_id = $1 ORDER BY id`,
    [storyId],
  );
  return rows;
}

async function projection(storyId: string) {
  const { rows } = await stack.pool.query('SELECT * FROM stories WHERE id = $1', [storyId]);
  return rows[0];
}

describe('a full lifecycle by three distinct agents', () => {
  it('ends verified, with each step once in the history and the audit table, by the right actor', async () => {
    const story = await freshStory();
    const [implementer, reviewer] = team.agents;
    const replies = await driveToVerified(stack.api, story, {
      implementer: implementer.key,
      reviewer: reviewer.key,
      verifier: team.orchestrator.key,
    });
    const last = replies.at(-1)!.body.data;
    expect(last).toMatchObject({
      agent_status: 'reported_done',
      verified_status: 'verified',
      assigned_agent_id: implementer.id,
      reported_by_agent_id: reviewer.id,
      reviewer_agent_id: reviewer.id,
      verified_by_agent_id: team.orchestrator.id,
      iteration: 1,
    });
    expect(await projection(story.id)).toMatchObject({
      verified_status: 'verified',
      verified_by_agent_id: team.orchestrator.id,
    });

    const expected = [
      ['contract', implementer.id, 'pending', 'contracted'],
      ['claim', implementer.id, 'contracted', 'assigned'],
      ['start', implementer.id, 'assigned', 'implementing'],
      ['request-review', implementer.id, 'implementing', 'review_requested'],
      ['report', reviewer.id, 'review_requested', 'reported_done'],
      ['review-complete', reviewer.id, 'reported_done', 'reported_done'],
      ['verify', team.orchestrator.id, 'reported_done', 'reported_done'],
    ];
    const rows = await auditRows(story.id);
    expect(rows.map((r) => [r.action, r.actor_agent_id, r.from_agent_status, r.to_agent_status])).toEqual(expected);
    expect(rows.every((r) => r.outcome === 'accepted')).toBe(true);
    expect(rows.map((r) => Number(r.seq))).toEqual([1, 2, 3, 4, 5, 6, 7]);

    const metrics = await fetch(`${stack.baseUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/custody_transitions_total\{action="verify",outcome="accepted"\} [1-9]/);
    expect(metrics).toMatch(/custody_transition_duration_seconds_count\{action="claim"\} [1-9]/);

    const history = await stack.api.get(`/api/v1/stories/${story.id}/history`, team.agents[5].key);
    expect(history.status).toBe(200);
    expect(
      history.body.data.map((h: any) => [h.action, h.actor.agent_id, h.from.agent_status, h.to.agent_status]),
    ).toEqual(expected);
  });
});

describe('custody gates', () => {
  /** Brings a fresh story to reported_done (and optionally reviewed) with known parties. */
  async function reportedStory(reviewed: boolean) {
    const story = await freshStory();
    const [implementer, reviewer] = team.agents;
    const ok = async (action: string, key: string, body: unknown = {}) => {
      const r = await stack.api.act(story.id, action, key, body);
      expect(r.status, `${action}: ${JSON.stringify(r.body)}`).toBe(200);
    };
    await ok('contract', implementer.key, { story_title: story.title, ac_count: 3 });
    await ok('claim', implementer.key);
    await ok('start', implementer.key);
    await ok('request-review', implementer.key);
    await ok('report', reviewer.key);
    if (reviewed) {
      await ok('review-complete', reviewer.key, {
        review_type: 'standard',
        findings_count: 0,
        fixes_count: 0,
        disproved_count: 0,
        summary: 'clean',
      });
    }
    return story;
  }

  /** Asserts a rejection with its status and code, no change to the story, and the attempt in the history. */
  async function expectRejected(story: any, action: string, key: string, body: unknown, status: number, code: string) {
    const before = await projection(story.id);
    const r = await stack.api.act(story.id, action, key, body);
    expect(r.status, JSON.stringify(r.body)).toBe(status);
    expect(r.body.error).toMatchObject({ status, code });
    expect(JSON.stringify(r.body)).not.toMatch(/at .*\.ts|node_modules|SELECT /);
    expect(await projection(story.id)).toEqual(before);
    const history = await stack.api.get(`/api/v1/stories/${story.id}/history`, team.orchestrator.key);
    expect(history.body.data.at(-1)).toMatchObject({ action, outcome: 'rejected', code });
    return r;
  }

  it('blocks the implementer from reporting its own story', async () => {
    const story = await freshStory();
    const implementer = team.agents[0];
    for (const [action, body] of [
      ['contract', { story_title: story.title, ac_count: 3 }],
      ['claim', {}],
      ['start', {}],
      ['request-review', {}],
    ] as const) {
      expect((await stack.api.act(story.id, action, implementer.key, body)).status).toBe(200);
    }
    await expectRejected(story, 'report', implementer.key, {}, 409, 'self_report_blocked');
  });

  it('blocks the implementer from reviewing and verifying, and the reviewer from verifying', async () => {
    const story = await reportedStory(false);
    const review = { review_type: 'standard', findings_count: 1, fixes_count: 1, disproved_count: 0, summary: 'fine' };
    await expectRejected(story, 'review-complete', team.agents[0].key, review, 409, 'self_review_blocked');
    await expectRejected(
      story,
      'review-complete',
      team.agents[1].key,
      { ...review, findings_count: 3, fixes_count: 1, disproved_count: 1 },
      422,
      'findings_math_mismatch',
    );
    await expectRejected(story, 'verify', team.orchestrator.key, { summary: 'too early' }, 422, 'review_required');
    expect((await stack.api.act(story.id, 'review-complete', team.agents[1].key, review)).status).toBe(200);
    await expectRejected(story, 'verify', team.agents[0].key, {}, 403, 'forbidden');
  });

  it('blocks a verifier that reviewed, and an orchestrator that implemented', async () => {
    const story = await freshStory();
    const orch = team.orchestrator;
    // The orchestrator contracts, then a reviewer-orchestrator flow: an agent implements.
    const implementer = team.agents[2];
    for (const [action, key, body] of [
      ['contract', orch.key, { story_title: story.title, ac_count: 3 }],
      ['claim', implementer.key, {}],
      ['start', implementer.key, {}],
      ['request-review', implementer.key, {}],
      ['report', team.agents[3].key, {}],
      [
        'review-complete',
        orch.key,
        { review_type: 'standard', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 'ok' },
      ],
    ] as const) {
      const r = await stack.api.act(story.id, action, key, body);
      expect(r.status, `${action} ${JSON.stringify(r.body)}`).toBe(200);
    }
    await expectRejected(story, 'verify', orch.key, {}, 409, 'verifier_is_reviewer');
  });

  it('rejects a contract that does not match the story', async () => {
    const story = await freshStory('Checkout flow');
    const r = await expectRejected(
      story,
      'contract',
      team.agents[0].key,
      { story_title: 'Checkout', ac_count: 3 },
      422,
      'contract_mismatch',
    );
    expect(r.body.error.context).toEqual({
      expected: { story_title: 'Checkout flow', ac_count: 3 },
      provided: { story_title: 'Checkout', ac_count: 3 },
    });
    await expectRejected(
      story,
      'contract',
      team.agents[0].key,
      { story_title: 'Checkout flow', ac_count: 2 },
      422,
      'contract_mismatch',
    );
  });

  it('answers every wrong-state action with invalid_transition and its context', async () => {
    const story = await freshStory();
    const agent = team.agents[0];
    const cases: [string, string, unknown][] = [
      ['claim', agent.key, {}],
      ['start', agent.key, {}],
      ['request-review', agent.key, {}],
      ['report', team.agents[1].key, {}],
      [
        'review-complete',
        team.agents[1].key,
        { review_type: 'x', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 's' },
      ],
      ['verify', team.orchestrator.key, {}],
      ['reject', team.orchestrator.key, { reason: 'no' }],
      ['unclaim', agent.key, {}],
      ['force-unclaim', team.orchestrator.key, { reason: 'stuck' }],
    ];
    for (const [action, key, body] of cases) {
      const r = await expectRejected(story, action, key, body, 409, 'invalid_transition');
      expect(r.body.error.context).toEqual({
        current_agent_status: 'pending',
        current_verified_status: 'unverified',
        attempted_action: action,
      });
    }
  });

  it('lets only the assignee start the story', async () => {
    const story = await freshStory();
    expect(
      (await stack.api.act(story.id, 'contract', team.agents[0].key, { story_title: story.title, ac_count: 3 })).status,
    ).toBe(200);
    expect((await stack.api.act(story.id, 'claim', team.agents[0].key)).status).toBe(200);
    await expectRejected(story, 'start', team.agents[1].key, {}, 403, 'not_assigned_agent');
  });
});

describe('races and retries', () => {
  it('lets exactly one of 20 concurrent claims win', async () => {
    const story = await freshStory();
    expect(
      (await stack.api.act(story.id, 'contract', team.orchestrator.key, { story_title: story.title, ac_count: 3 }))
        .status,
    ).toBe(200);
    const claimers = team.agents.slice(0, 20);
    const replies = await Promise.all(claimers.map((a) => stack.api.act(story.id, 'claim', a.key)));
    const statuses = replies.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    const winner = claimers[replies.findIndex((r) => r.status === 200)];
    const row = await projection(story.id);
    expect(row.assigned_agent_id).toBe(winner.id);
    expect(row.implementer_agent_ids).toEqual([winner.id]);
    const accepted = (await auditRows(story.id)).filter((r) => r.action === 'claim' && r.outcome === 'accepted');
    expect(accepted).toHaveLength(1);
  });

  it('applies a transition sent twice with one Idempotency-Key once, with the same response', async () => {
    const story = await freshStory();
    const headers = { 'Idempotency-Key': `contract-${story.id}` };
    const body = { story_title: story.title, ac_count: 3 };
    const first = await stack.api.act(story.id, 'contract', team.agents[0].key, body, headers);
    const second = await stack.api.act(story.id, 'contract', team.agents[0].key, body, headers);
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.body).toEqual(first.body);
    expect((await auditRows(story.id)).filter((r) => r.action === 'contract')).toHaveLength(1);
    const reused = await stack.api.act(story.id, 'contract', team.agents[0].key, { ...body, ac_count: 2 }, headers);
    expect(reused.status).toBe(422);
    expect(reused.body.error.code).toBe('idempotency_key_reused');
  });

  it('runs one of two concurrent requests with one Idempotency-Key; the other is told to retry, then gets the same answer', async () => {
    // Rotation is the sharpest case: run twice, the key the client kept would be revoked by the
    // second. Only a key's own agent rotates it, so the agent gets a second key (issued directly
    // here: the API gives new keys only by rotation) to rotate its first with and to replay.
    const agent = team.agents[21];
    const second = newRawKey();
    await stack.pool.query('INSERT INTO api_keys (tenant_id, agent_id, prefix, key_hash) VALUES ($1, $2, $3, $4)', [
      team.tenantId,
      agent.id,
      keyLabel(second),
      keyDigest(second),
    ]);
    const headers = { 'Idempotency-Key': `rotate-${agent.keyId}` };
    const path = `/api/v1/api_keys/${agent.keyId}/rotate`;
    const answers = await Promise.all(Array.from({ length: 8 }, () => stack.api.post(path, second, {}, headers)));
    const ran = answers.filter((a) => a.status === 200 && a.headers.get('idempotent-replayed') !== 'true');
    expect(ran).toHaveLength(1);
    for (const other of answers.filter((a) => a !== ran[0])) {
      if (other.status === 409) {
        expect(other.body.error.code).toBe('conflict');
        expect(other.headers.get('retry-after')).toBe('1');
      } else {
        expect(other.status).toBe(200);
        expect(other.body).toEqual(ran[0].body);
      }
    }
    const replay = await stack.api.post(path, second, {}, headers);
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(ran[0].body);
    const newKey = ran[0].body.data.api_key.key as string;
    expect((await stack.api.get('/api/v1/tenants/me', newKey)).status).toBe(200);
    // The stored answer is sealed: the database holds no raw key, even for replays.
    const stored = await stack.pool.query(
      `SELECT count(*)::int AS n FROM idempotency_keys WHERE strpos(response::text, $1) > 0`,
      [newKey],
    );
    expect(stored.rows[0].n).toBe(0);
    const { rows } = await stack.pool.query('SELECT count(*)::int AS n FROM api_keys WHERE agent_id = $1', [agent.id]);
    expect(rows[0].n).toBe(3);
  });
});

describe('rework', () => {
  it('reject → rework → second review → verify ends at iteration 2; the first implementer still cannot verify', async () => {
    const story = await freshStory();
    const [first, reviewer, second, reviewer2] = team.agents;
    await driveToVerified(stack.api, story, {
      implementer: first.key,
      reviewer: reviewer.key,
      verifier: team.orchestrator.key,
    });
    const rejected = await stack.api.act(story.id, 'reject', team.orchestrator.key, { reason: 'regression found' });
    expect(rejected.status).toBe(200);
    expect(rejected.body.data).toMatchObject({
      agent_status: 'pending',
      verified_status: 'rejected',
      iteration: 2,
      assigned_agent_id: null,
    });
    const again = await stack.api.act(story.id, 'reject', team.orchestrator.key, { reason: 'twice' });
    expect(again.body.error?.code).toBe('invalid_transition');

    for (const [action, key, body] of [
      ['contract', second.key, { story_title: story.title, ac_count: 3 }],
      ['claim', second.key, {}],
      ['start', second.key, {}],
      ['request-review', second.key, {}],
      ['report', reviewer2.key, {}],
      [
        'review-complete',
        reviewer2.key,
        { review_type: 'standard', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 'ok' },
      ],
    ] as const) {
      const r = await stack.api.act(story.id, action, key, body);
      expect(r.status, `${action} ${JSON.stringify(r.body)}`).toBe(200);
    }
    // The first iteration's implementer is an implementer of the story still, for every gate.
    const selfReview = await stack.api.act(story.id, 'review-complete', first.key, {
      review_type: 'x',
      findings_count: 0,
      fixes_count: 0,
      disproved_count: 0,
      summary: 's',
    });
    expect(selfReview.body.error?.code).toBe('self_review_blocked');
    const selfVerify = await stack.api.act(story.id, 'verify', first.key, { summary: 'mine' });
    expect(selfVerify.body.error?.code).toBe('forbidden');
    const verified = await stack.api.act(story.id, 'verify', team.orchestrator.key, { summary: 'good now' });
    expect(verified.status).toBe(200);
    expect(verified.body.data).toMatchObject({
      verified_status: 'verified',
      iteration: 2,
      assigned_agent_id: second.id,
    });
  });
});

describe('a rejected attempt that raced an accepted one', () => {
  it('is audited in the state the workflow judged it in, not in the state the gateway had read', async () => {
    const story = await freshStory();
    const [first, second] = team.agents;
    const contract = { story_title: story.title, ac_count: story.acceptance_criteria.length };
    expect((await stack.api.act(story.id, 'contract', team.orchestrator.key, contract)).status).toBe(200);
    // The gateway's read of the story for the second claim, taken before the first claim lands.
    const read = (await getStory(stack.pool, team.tenantId, story.id))!;
    expect(read.agent_status).toBe('contracted');
    expect((await stack.api.act(story.id, 'claim', first.key, {})).status).toBe(200);

    const caller = { tenantId: team.tenantId, agentId: second.id, role: 'agent' as const, keyId: second.keyId };
    const refused = await stack.commands.act(caller, read, 'claim', {}).then(
      () => null,
      (err: unknown) => custodyErrorOf(err),
    );
    expect(refused).toMatchObject({ code: 'invalid_transition', context: { current_agent_status: 'assigned' } });
    const { rows } = await stack.pool.query(
      `SELECT actor_agent_id, from_agent_status, from_verified_status, iteration FROM audit_events
       WHERE story_id = $1 AND outcome = 'rejected'`,
      [story.id],
    );
    expect(rows).toEqual([
      { actor_agent_id: second.id, from_agent_status: 'assigned', from_verified_status: 'unverified', iteration: 1 },
    ]);
  });
});
