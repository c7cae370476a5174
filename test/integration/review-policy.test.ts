/**
 * Review policies through the real gateway, workflow, Temporal server and PostgreSQL: policies per
 * project (versioned, audited), labels set by an admin only, and a story's reviews.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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

describe('the review pipeline under a policy (issue 19)', () => {
  const SHA1 = '1a2b3c4d5e6f708192a3b4c5d6e7f80912345678';
  const SHA2 = '2a2b3c4d5e6f708192a3b4c5d6e7f80912345678';
  const SHA3 = '3a2b3c4d5e6f708192a3b4c5d6e7f80912345678';
  const commit = (sha: string) => ({ artifact: { artifact_type: 'commit', path: sha } });
  const review = (findings: number, extra: Record<string, unknown> = {}) => ({
    review_type: 'team',
    findings_count: findings,
    fixes_count: findings,
    disproved_count: 0,
    summary: `${findings} finding(s)`,
    ...extra,
  });

  it('runs 3 reviewers + aggregation, fixes, 4 reviewers + aggregation, fixes and a summary, verify; refuses each shortcut', async () => {
    const t = await createTeam(stack.api, 7, 'pipeline');
    const [impl, ba, arch, eng, sec, agg] = t.agents;
    for (const [who, labels] of [
      [ba, ['business-analyst']],
      [arch, ['architect']],
      [eng, ['engineer']],
      [sec, ['security-adversary', 'engineer']],
    ] as const)
      expect((await put(`/api/v1/agents/${who.id}/labels`, t.admin.key, { labels })).status).toBe(200);
    expect((await put(`/api/v1/projects/${t.projectId}/review_policy`, t.admin.key, PIPELINE)).status).toBe(200);

    // A receiver for the webhooks: artifact.reported carries the artifact.
    const received: { event: string; data: Record<string, unknown> }[] = [];
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (c) => (text += c));
      req.on('end', () => {
        received.push(JSON.parse(text));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    expect(
      (await stack.api.post('/api/v1/webhooks', t.admin.key, { url, events: ['artifact.reported', 'story.verified'] }))
        .status,
    ).toBe(201);

    const imported = await stack.api.post(`/api/v1/projects/${t.projectId}/import`, t.orchestrator.key, {
      epics: [
        { number: 1, title: 'Shop', stories: [{ number: '1.1', title: 'Checkout', acceptance_criteria: ['pays'] }] },
      ],
    });
    const id = imported.body.data.stories[0].id as string;
    const act = (key: string, action: string, body: unknown = {}) => stack.api.act(id, action, key, body);
    const ok = async (key: string, action: string, body: unknown = {}) => {
      const r = await act(key, action, body);
      expect(r.status, `${action}: ${JSON.stringify(r.body)}`).toBe(200);
      return r;
    };
    const refusals: string[] = [];
    const refused = async (what: string, key: string, action: string, body: unknown, status: number, code: string) => {
      const r = await act(key, action, body);
      refusals.push(`${what}: ${r.status} ${r.body.error?.code}`);
      expect([r.status, r.body.error?.code], `${what}: ${JSON.stringify(r.body)}`).toEqual([status, code]);
      return r;
    };

    await ok(impl.key, 'contract', { story_title: 'Checkout', ac_count: 1 });
    for (const action of ['claim', 'start', 'request-review']) await ok(impl.key, action);
    // As loopctl's MCP server sends report_story{artifact_type: "commit", artifact_path: <sha>}.
    await ok(t.orchestrator.key, 'report', commit(SHA1));

    // Round 1, the team: three reviewers with the business analyst's, architect's and engineer's labels.
    await ok(ba.key, 'review-complete', review(2));
    await ok(arch.key, 'review-complete', review(1, { round: 'team' }));
    await refused(
      'a reviewer reviewing twice in one round',
      arch.key,
      'review-complete',
      review(0),
      409,
      'duplicate_review',
    );
    await refused('an implementer reviewing', impl.key, 'review-complete', review(0), 409, 'self_review_blocked');
    await refused(
      'aggregation before the round has its reviewers',
      agg.key,
      'aggregate',
      { summary: 'x', findings_count: 3, fixes_count: 3 },
      409,
      'round_incomplete',
    );
    await ok(eng.key, 'review-complete', review(1, { artifact: SHA1 }));
    await refused(
      'an aggregator reviewing its own round',
      arch.key,
      'aggregate',
      { summary: 'x', findings_count: 4, fixes_count: 4 },
      409,
      'aggregator_is_reviewer',
    );
    await refused(
      "an aggregation whose findings are not the round's",
      agg.key,
      'aggregate',
      { summary: 'x', findings_count: 3, fixes_count: 3 },
      422,
      'findings_math_mismatch',
    );
    await refused(
      'verify before the first round is complete',
      t.orchestrator.key,
      'verify',
      {},
      409,
      'round_incomplete',
    );
    await ok(agg.key, 'aggregate', {
      summary: 'three fixed, one disproved',
      findings_count: 4,
      fixes_count: 3,
      disproved_count: 1,
    });

    // Fixes: a new commit. Round 2, the adversarial review, is of it.
    await ok(t.orchestrator.key, 'report', commit(SHA2));
    await refused(
      'a review of a stale artifact',
      ba.key,
      'review-complete',
      review(0, { artifact: SHA1 }),
      409,
      'artifact_mismatch',
    );
    await refused(
      'a review naming a closed round',
      ba.key,
      'review-complete',
      review(0, { round: 'team' }),
      409,
      'round_not_current',
    );
    for (const who of [ba, arch, eng]) await ok(who.key, 'review-complete', review(1, { artifact: SHA2 }));
    const early = await refused(
      'verify before the second round is complete',
      t.orchestrator.key,
      'verify',
      {},
      409,
      'round_incomplete',
    );
    expect(early.body.error.context).toMatchObject({
      round: 'adversarial',
      missing_reviewers: 1,
      missing_labels: ['security-adversary'],
    });
    await ok(sec.key, 'review-complete', review(2));
    await ok(agg.key, 'aggregate', { summary: 'all five to fix', findings_count: 5, fixes_count: 5 });

    // Fixes and a summary: the new commit reopens the last round's sign-off.
    await ok(t.orchestrator.key, 'report', commit(SHA3));
    await refused('verify of fixes nobody signed', t.orchestrator.key, 'verify', {}, 409, 'round_incomplete');
    await ok(agg.key, 'aggregate', { summary: 'fixes in', findings_count: 5, fixes_count: 5, artifact: SHA3 });
    const verified = await ok(t.orchestrator.key, 'verify', { summary: 'criteria met' });
    expect(verified.body.data.verified_status).toBe('verified');
    console.log(`review pipeline refusals:\n  ${refusals.join('\n  ')}`);

    // Each reviewer's findings, round by round, and the artifact chain.
    const reviews = (await stack.api.get(`/api/v1/stories/${id}/reviews`, t.orchestrator.key)).body.data;
    expect(reviews.policy).toMatchObject({ version: 1, default: false });
    expect(reviews.rounds.map((r: any) => [r.name, r.complete, r.reviewers.length, r.findings_count])).toEqual([
      ['team', true, 3, 4],
      ['adversarial', true, 4, 5],
    ]);
    expect(reviews.verified_artifact).toBe(`commit:${SHA3}`);
    expect(reviews.records.map((r: any) => [r.kind, r.round, r.artifact_key?.slice(0, 9), r.counts])).toEqual([
      ['report', null, 'commit:1a', false],
      ['review', 'team', 'commit:1a', true],
      ['review', 'team', 'commit:1a', true],
      ['review', 'team', 'commit:1a', true],
      ['aggregation', 'team', 'commit:1a', true],
      ['report', null, 'commit:2a', false],
      ['review', 'adversarial', 'commit:2a', true],
      ['review', 'adversarial', 'commit:2a', true],
      ['review', 'adversarial', 'commit:2a', true],
      ['review', 'adversarial', 'commit:2a', true],
      ['aggregation', 'adversarial', 'commit:2a', false],
      ['report', null, 'commit:3a', false],
      ['aggregation', 'adversarial', 'commit:3a', true],
      ['verify', null, 'commit:3a', false],
    ]);
    expect(reviews.records.find((r: any) => r.agent_id === sec.id).agent_labels).toEqual([
      'engineer',
      'security-adversary',
    ]);

    // History shows the chain; the stored story, what was verified.
    const history = (await stack.api.get(`/api/v1/stories/${id}/history?limit=100`, t.orchestrator.key)).body.data;
    const chain = history
      .filter((h: any) => h.artifact)
      .map((h: any) => `${h.action}:${h.artifact.artifact_key.slice(7, 9)}`);
    expect(chain).toEqual([
      'report:1a',
      'review-complete:1a',
      'review-complete:1a',
      'review-complete:1a',
      'aggregate:1a',
      'report:2a',
      'review-complete:2a',
      'review-complete:2a',
      'review-complete:2a',
      'review-complete:2a',
      'aggregate:2a',
      'report:3a',
      'aggregate:3a',
      'verify:3a',
    ]);
    const row = (await stack.pool.query('SELECT verified_artifact, review_policy FROM stories WHERE id = $1', [id]))
      .rows[0];
    expect(row).toMatchObject({ verified_artifact: `commit:${SHA3}`, review_policy: { version: 1 } });

    // The artifact.reported webhook carries each artifact.
    await expect
      .poll(() => received.filter((d) => d.event === 'artifact.reported').length, { timeout: 20_000 })
      .toBe(3);
    expect(received.filter((d) => d.event === 'artifact.reported').map((d) => d.data.artifact_key)).toEqual([
      `commit:${SHA1}`,
      `commit:${SHA2}`,
      `commit:${SHA3}`,
    ]);
    server.close();
  }, 180_000);

  it("a round's deadline stalls the story, naming the round", async () => {
    const t = await createTeam(stack.api, 2, 'deadline');
    const [impl, reviewer] = t.agents;
    const policy = { rounds: [{ name: 'quick', min_reviewers: 2, deadline_seconds: 2 }] };
    expect((await put(`/api/v1/projects/${t.projectId}/review_policy`, t.admin.key, policy)).status).toBe(200);
    const imported = await stack.api.post(`/api/v1/projects/${t.projectId}/import`, t.orchestrator.key, {
      epics: [{ number: 1, title: 'Site', stories: [{ number: '1.1', title: 'Home', acceptance_criteria: ['a'] }] }],
    });
    const id = imported.body.data.stories[0].id as string;
    await stack.api.act(id, 'contract', impl.key, { story_title: 'Home', ac_count: 1 });
    for (const action of ['claim', 'start', 'request-review']) await stack.api.act(id, action, impl.key);
    expect((await stack.api.act(id, 'report', t.orchestrator.key, commit(SHA1))).status).toBe(200);
    expect((await stack.api.act(id, 'review-complete', reviewer.key, review(0))).status).toBe(200);
    await expect
      .poll(
        async () =>
          (await stack.api.get(`/api/v1/stories/${id}/history`, t.orchestrator.key)).body.data
            .filter((h: any) => h.action === 'stalled')
            .map((h: any) => h.payload.round),
        { timeout: 20_000, interval: 500 },
      )
      .toEqual(['quick']);
  }, 60_000);
});

describe('verify names the artifact it verified (issue 19)', () => {
  const SHA_REVIEWED = '4a2b3c4d5e6f708192a3b4c5d6e7f80912345678';
  const SHA_OTHER = '5a2b3c4d5e6f708192a3b4c5d6e7f80912345678';

  /** A story of its own project (no policy: the single review), reported with `sha` and reviewed. */
  async function reviewedStory(name: string, sha: string) {
    const t = await createTeam(stack.api, 2, name);
    const [impl, reviewer] = t.agents;
    const imported = await stack.api.post(`/api/v1/projects/${t.projectId}/import`, t.orchestrator.key, {
      epics: [{ number: 1, title: 'Site', stories: [{ number: '1.1', title: 'Home', acceptance_criteria: ['a'] }] }],
    });
    const id = imported.body.data.stories[0].id as string;
    const steps: [string, string, unknown][] = [
      [impl.key, 'contract', { story_title: 'Home', ac_count: 1 }],
      [impl.key, 'claim', {}],
      [impl.key, 'start', {}],
      [impl.key, 'request-review', {}],
      [t.orchestrator.key, 'report', { artifact: { artifact_type: 'commit', path: sha } }],
      [reviewer.key, 'review-complete', { review_type: 'team', summary: 'fine' }],
    ];
    for (const [key, action, body] of steps) {
      const r = await stack.api.act(id, action, key, body);
      expect(r.status, `${action}: ${JSON.stringify(r.body)}`).toBe(200);
    }
    return { t, id };
  }

  it('refuses a verify naming another artifact (409 artifact_mismatch), records and shows the one verified', async () => {
    const { t, id } = await reviewedStory('verify-names', SHA_REVIEWED);
    const other = await stack.api.act(id, 'verify', t.orchestrator.key, { summary: 'ok', artifact: SHA_OTHER });
    console.log(`verify naming another artifact: ${other.status} ${JSON.stringify(other.body.error)}`);
    expect([other.status, other.body.error?.code]).toEqual([409, 'artifact_mismatch']);
    expect(other.body.error.context).toMatchObject({ named_artifact: SHA_OTHER });
    const refusedRow = (await stack.api.get(`/api/v1/stories/${id}`, t.orchestrator.key)).body.data;
    expect(refusedRow.verified_status).toBe('unverified');

    const named = { artifact_type: 'commit', path: SHA_REVIEWED.toUpperCase() };
    const verified = await stack.api.act(id, 'verify', t.orchestrator.key, { summary: 'ok', artifact: named });
    expect(verified.status, JSON.stringify(verified.body)).toBe(200);
    const history = (await stack.api.get(`/api/v1/stories/${id}/history`, t.orchestrator.key)).body.data;
    const verify = history.find((h: any) => h.action === 'verify' && h.outcome === 'accepted');
    console.log(
      `verify history row: artifact ${JSON.stringify(verify.artifact)} payload ${JSON.stringify(verify.payload)}`,
    );
    expect(verify.artifact).toMatchObject({ kind: 'verify', artifact_key: `commit:${SHA_REVIEWED}` });
    expect(verify.payload.artifact).toEqual(named);
    const rejected = history.find((h: any) => h.action === 'verify' && h.outcome === 'rejected');
    expect(rejected.code).toBe('artifact_mismatch');
    const reviews = (await stack.api.get(`/api/v1/stories/${id}/reviews`, t.orchestrator.key)).body.data;
    expect(reviews.verified_artifact).toBe(`commit:${SHA_REVIEWED}`);
  }, 60_000);

  it('takes a verify without an artifact, as loopctl clients send it: the reviewed artifact is the one verified', async () => {
    const { t, id } = await reviewedStory('verify-plain', SHA_REVIEWED);
    const verified = await stack.api.act(id, 'verify', t.orchestrator.key, { summary: 'ok' });
    expect(verified.status, JSON.stringify(verified.body)).toBe(200);
    const row = (await stack.pool.query('SELECT verified_artifact FROM stories WHERE id = $1', [id])).rows[0];
    expect(row.verified_artifact).toBe(`commit:${SHA_REVIEWED}`);
  }, 60_000);
});

describe('a review a new report voided (adversarial review F2)', () => {
  it("keeps its reviewer a reviewer of the iteration: that agent's verify is 409 verifier_is_reviewer", async () => {
    const t = await createTeam(stack.api, 2, 'voided-reviewer');
    const [impl, reviewer] = t.agents;
    const registered = await stack.api.post('/api/v1/agents/register', t.admin.key, {
      name: 'orchestrator-2',
      role: 'orchestrator',
    });
    expect(registered.status).toBe(201);
    const firstReviewer = registered.body.data.api_key.key as string;
    const policy = { rounds: [{ name: 'review', min_reviewers: 1, required_labels: [], aggregator_required: false }] };
    expect((await put(`/api/v1/projects/${t.projectId}/review_policy`, t.admin.key, policy)).status).toBe(200);
    const imported = await stack.api.post(`/api/v1/projects/${t.projectId}/import`, t.orchestrator.key, {
      epics: [{ number: 1, title: 'Site', stories: [{ number: '1.1', title: 'Home', acceptance_criteria: ['a'] }] }],
    });
    const id = imported.body.data.stories[0].id as string;
    const commit = (n: number) => ({ artifact_type: 'commit', path: `${n}a2b3c4d5e6f708192a3b4c5d6e7f80912345678` });
    const steps: [string, string, unknown][] = [
      [impl.key, 'contract', { story_title: 'Home', ac_count: 1 }],
      [impl.key, 'claim', {}],
      [impl.key, 'start', {}],
      [impl.key, 'request-review', {}],
      [t.orchestrator.key, 'report', { artifact: commit(1) }],
      [firstReviewer, 'review-complete', { review_type: 'team', summary: 'fine' }],
      // Fixes: a new artifact voids the review of the old one; another agent reviews the new one.
      [t.orchestrator.key, 'report', { artifact: commit(2) }],
      [reviewer.key, 'review-complete', { review_type: 'team', summary: 'fine again' }],
    ];
    for (const [key, action, body] of steps) {
      const r = await stack.api.act(id, action, key, body);
      expect(r.status, `${action}: ${JSON.stringify(r.body)}`).toBe(200);
    }
    const refused = await stack.api.act(id, 'verify', firstReviewer, { summary: 'ok' });
    console.log(`verify by the voided reviewer: ${refused.status} ${JSON.stringify(refused.body.error)}`);
    expect([refused.status, refused.body.error?.code]).toEqual([409, 'verifier_is_reviewer']);
    const shown = (await stack.api.get(`/api/v1/stories/${id}`, firstReviewer)).body.data;
    expect(shown.verified_status).toBe('unverified');
    expect(shown.next_actions).not.toContain('verify');
    const verified = await stack.api.act(id, 'verify', t.orchestrator.key, { summary: 'ok' });
    expect(verified.status, JSON.stringify(verified.body)).toBe(200);
  }, 60_000);
});
