/**
 * loopctl's own MCP server (mcp-server/index.js in mkreyman/loopctl) against this service: the
 * exact requests it sends (paths, query strings, bodies, headers), through a whole lifecycle with
 * three keys — the implementer (LOOPCTL_AGENT_KEY), a review agent running its own instance (its
 * key as LOOPCTL_ORCH_KEY) and the orchestrator (LOOPCTL_ORCH_KEY) — with every custody breach
 * refused. Requests are rebuilt here from its source; its code is not part of this repository.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { createTeam, type Team } from '../support/api.js';

let stack: Stack;
let team: Team;

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 2, 'loopctl-users');
});
afterAll(async () => stack?.stop());

interface Reply {
  status: number;
  body: any;
}

/**
 * loopctl's `apiCall`: Bearer key, JSON content type and accept, the witness-protocol bootstrap
 * header, and a body only when the tool has one (`claim_story` sends none at all).
 */
async function apiCall(key: string, method: string, path: string, body?: unknown): Promise<Reply> {
  const headers: Record<string, string> = {
    Authorization: `Bearer ${key}`,
    'Content-Type': 'application/json',
    Accept: 'application/json',
    'X-Loopctl-STH-Bootstrap': 'true',
  };
  const res = await fetch(`${stack.baseUrl}${path}`, {
    method,
    headers,
    ...(body !== undefined && body !== null ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The tools as loopctl's server builds their requests, one instance per key. */
function loopctlTools(keys: { orch: string; agent?: string }) {
  const agentKey = keys.agent ?? keys.orch;
  const orch = keys.orch;
  return {
    createProject: (a: {
      name: string;
      slug: string;
      repo_url?: string;
      description?: string;
      tech_stack?: string;
      mission?: string;
    }) => apiCall(orch, 'POST', '/api/v1/projects', a),
    getTenant: () => apiCall(orch, 'GET', '/api/v1/tenants/me'),
    listProjects: () => apiCall(orch, 'GET', '/api/v1/projects'),
    /** delete_project sends LOOPCTL_USER_KEY (here the tenant admin's). */
    deleteProject: (userKey: string, projectId: string) => apiCall(userKey, 'DELETE', `/api/v1/projects/${projectId}`),
    getProgress: (projectId: string, includeCost = false) =>
      apiCall(orch, 'GET', `/api/v1/projects/${projectId}/progress${includeCost ? '?include_cost=true' : ''}`),
    importStories: (projectId: string, payload: unknown, merge = false) =>
      apiCall(orch, 'POST', `/api/v1/projects/${projectId}/import${merge ? '?merge=true' : ''}`, payload),
    createStoryByEpicId: (epicId: string, story: Record<string, unknown>) =>
      apiCall(orch, 'POST', `/api/v1/epics/${epicId}/stories`, story),
    createStoryByEpicNumber: (projectId: string, epicNumber: number, story: Record<string, unknown>) =>
      apiCall(orch, 'POST', `/api/v1/projects/${projectId}/stories`, { epic_number: epicNumber, ...story }),
    listStories: (a: {
      project_id: string;
      agent_status?: string;
      verified_status?: string;
      epic_id?: string;
      limit?: number;
      offset?: number;
      include_token_totals?: boolean;
    }) => {
      const params = new URLSearchParams({ project_id: a.project_id });
      if (a.agent_status) params.set('agent_status', a.agent_status);
      if (a.verified_status) params.set('verified_status', a.verified_status);
      if (a.epic_id) params.set('epic_id', a.epic_id);
      params.set('limit', String(Math.min(a.limit ?? 20, 20)));
      if (a.offset != null) params.set('offset', String(a.offset));
      if (a.include_token_totals) params.set('include_token_totals', 'true');
      return apiCall(orch, 'GET', `/api/v1/stories?${params.toString()}`);
    },
    listReadyStories: (projectId: string) =>
      apiCall(
        orch,
        'GET',
        `/api/v1/stories/ready?${new URLSearchParams({ project_id: projectId, limit: '20' }).toString()}`,
      ),
    getStory: (id: string) => apiCall(orch, 'GET', `/api/v1/stories/${id}`),
    getAcceptanceCriteria: (id: string) => apiCall(orch, 'GET', `/api/v1/stories/${id}/acceptance_criteria`),
    contractStory: (id: string, story_title: string, ac_count: number) =>
      apiCall(agentKey, 'POST', `/api/v1/stories/${id}/contract`, { story_title, ac_count }),
    claimStory: (id: string) => apiCall(agentKey, 'POST', `/api/v1/stories/${id}/claim`, null),
    startStory: (id: string) => apiCall(agentKey, 'POST', `/api/v1/stories/${id}/start`, null),
    requestReview: (id: string) => apiCall(agentKey, 'POST', `/api/v1/stories/${id}/request-review`, null),
    reportStory: (id: string, a: { artifact_type?: string; artifact_path?: string; token_usage?: unknown } = {}) => {
      const body: Record<string, unknown> = {};
      if (a.artifact_type || a.artifact_path) {
        const artifact: Record<string, string> = {};
        if (a.artifact_type) artifact.artifact_type = a.artifact_type;
        if (a.artifact_path) artifact.path = a.artifact_path;
        body.artifact = artifact;
      }
      if (a.token_usage) body.token_usage = a.token_usage;
      return apiCall(orch, 'POST', `/api/v1/stories/${id}/report`, Object.keys(body).length > 0 ? body : null);
    },
    reviewComplete: (
      id: string,
      a: {
        review_type: string;
        findings_count?: number;
        fixes_count?: number;
        disproved_count?: number;
        summary?: string;
      },
    ) => {
      const body: Record<string, unknown> = { review_type: a.review_type };
      if (a.findings_count != null) body.findings_count = a.findings_count;
      if (a.fixes_count != null) body.fixes_count = a.fixes_count;
      if (a.disproved_count != null) body.disproved_count = a.disproved_count;
      if (a.summary) body.summary = a.summary;
      return apiCall(orch, 'POST', `/api/v1/stories/${id}/review-complete`, body);
    },
    verifyStory: (id: string, a: { summary?: string; review_type?: string } = {}) => {
      const body: Record<string, unknown> = {};
      if (a.summary) body.summary = a.summary;
      if (a.review_type) body.review_type = a.review_type;
      return apiCall(orch, 'POST', `/api/v1/stories/${id}/verify`, body);
    },
    rejectStory: (id: string, reason: string) => apiCall(orch, 'POST', `/api/v1/stories/${id}/reject`, { reason }),
    backfillStory: (id: string, a: { reason: string; evidence_url?: string; pr_number?: number }) =>
      apiCall(orch, 'POST', `/api/v1/stories/${id}/backfill`, a),
    verifyAllInEpic: (epicId: string, review_type: string, summary: string) =>
      apiCall(orch, 'POST', `/api/v1/epics/${epicId}/verify-all`, { review_type, summary }),
  };
}

const backlog = {
  epics: [
    {
      number: '1',
      title: 'Checkout',
      stories: [
        {
          number: '1.1',
          title: 'Cart totals',
          acceptance_criteria: [{ id: 'AC-1.1.1', description: 'sums line items' }, 'rounds to cents'],
          estimated_hours: 3,
          metadata: { area: 'cart' },
        },
        { number: '1.2', title: 'Pay by card', acceptance_criteria: ['charges the card'], estimated_hours: 5 },
        { number: '1.10', title: 'Receipts', acceptance_criteria: ['emails a receipt'], metadata: {} },
      ],
    },
  ],
  story_dependencies: [{ story: '1.2', depends_on: '1.1' }],
};

describe("loopctl's MCP server, request for request", () => {
  it('drives a story from import to verified with three keys, makes its dependent ready, refuses every breach', async () => {
    const [implementer, reviewer] = team.agents;
    const orch = loopctlTools({ orch: team.orchestrator.key });
    const review = loopctlTools({ orch: reviewer.key });
    const impl = loopctlTools({ orch: implementer.key, agent: implementer.key });
    const statuses: [string, number][] = [];
    const call = async (tool: string, reply: Promise<Reply>, expected: number) => {
      const r = await reply;
      statuses.push([tool, r.status]);
      expect(r.status, `${tool}: ${JSON.stringify(r.body)}`).toBe(expected);
      return r.body;
    };

    const project = (
      await call(
        'create_project',
        orch.createProject({
          name: 'Shop',
          slug: 'shop',
          repo_url: 'https://example.test/shop',
          description: 'the shop',
          tech_stack: 'elixir',
          mission: 'sell things',
        }),
        201,
      )
    ).data;
    expect(project).toMatchObject({
      repo_url: 'https://example.test/shop',
      tech_stack: 'elixir',
      mission: 'sell things',
    });
    const imported = (await call('import_stories', orch.importStories(project.id, backlog), 201)).data;
    expect(imported).toMatchObject({ stories_created: 3, epics_created: 1, dependencies_created: 1 });

    // Natural order, offset and total_count, as list_stories pages.
    const page = await call('list_stories', orch.listStories({ project_id: project.id }), 200);
    expect(page.data.map((s: any) => s.number)).toEqual(['1.1', '1.2', '1.10']);
    expect(page.meta.total_count).toBe(3);
    const second = await call('list_stories', orch.listStories({ project_id: project.id, limit: 1, offset: 1 }), 200);
    expect(second.data.map((s: any) => s.number)).toEqual(['1.2']);
    expect(second.meta).toMatchObject({ total_count: 3, offset: 1 });
    const byNumber = new Map<string, any>(page.data.map((s: any) => [s.number, s]));
    const first = byNumber.get('1.1');
    const dependent = byNumber.get('1.2');
    expect(first).toMatchObject({ estimated_hours: 3, metadata: { area: 'cart' } });

    const progress = (await call('get_progress', orch.getProgress(project.id), 200)).data;
    expect(progress.total.by_agent_status).toEqual({
      pending: 3,
      contracted: 0,
      assigned: 0,
      implementing: 0,
      review_requested: 0,
      reported_done: 0,
    });
    expect(progress.total.by_verified_status).toEqual({ unverified: 3, verified: 0, rejected: 0 });

    const ready = await call('list_ready_stories', orch.listReadyStories(project.id), 200);
    expect(ready.data.map((s: any) => s.number)).toEqual(['1.1', '1.10']);
    const blocked = await stack.api.get(`/api/v1/stories/blocked?project_id=${project.id}`, team.orchestrator.key);
    expect(blocked.body.data.map((s: any) => [s.number, s.blocking_dependencies])).toEqual([
      ['1.2', [{ id: first.id, number: '1.1', verified_status: 'unverified' }]],
    ]);

    const ac = (await call('get_acceptance_criteria', orch.getAcceptanceCriteria(first.id), 200)).data;
    expect(ac).toMatchObject({ ac_count: 2, acceptance_criteria: backlog.epics[0].stories[0].acceptance_criteria });

    await call('contract_story', impl.contractStory(first.id, 'Cart totals', 2), 200);
    await call('claim_story', impl.claimStory(dependent.id), 409); // dependencies_not_met
    await call('claim_story', impl.claimStory(first.id), 200);
    await call('start_story', review.startStory(first.id), 403); // not the assignee
    await call('start_story', impl.startStory(first.id), 200);
    await call('request_review', impl.requestReview(first.id), 200);
    await call('backfill_story', orch.backfillStory(first.id, { reason: 'done before' }), 409); // claimed: no laundering

    const usage = { input_tokens: 1200, output_tokens: 300, model_name: 'claude-sonnet-4-5', cost_millicents: 4500 };
    const selfReport = await call('report_story', impl.reportStory(first.id, { artifact_type: 'pr' }), 409);
    expect(selfReport.error.code).toBe('self_report_blocked');
    await call(
      'report_story',
      review.reportStory(first.id, {
        artifact_type: 'pr',
        artifact_path: 'https://example.test/pr/1',
        token_usage: usage,
      }),
      200,
    );
    const selfReview = await call(
      'review_complete',
      impl.reviewComplete(first.id, { review_type: 'single_reviewer' }),
      409,
    );
    expect(selfReview.error.code).toBe('self_review_blocked');
    const blank = await call('review_complete', review.reviewComplete(first.id, { review_type: ' ' }), 422);
    expect(blank.error.code).toBe('review_required');
    const early = await call('verify_story', orch.verifyStory(first.id, { summary: 'ok' }), 422);
    expect(early.error.code).toBe('review_required');
    // No summary, no counts: as loopctl's review agents send it.
    const reviewed = (
      await call('review_complete', review.reviewComplete(first.id, { review_type: 'single_reviewer' }), 200)
    ).data;
    expect(reviewed.review).toMatchObject({
      review_type: 'single_reviewer',
      findings_count: 0,
      artifact: { artifact_type: 'pr', path: 'https://example.test/pr/1' },
    });
    const byImplementer = await call('verify_story', impl.verifyStory(first.id), 403);
    expect(byImplementer.error.code).toBe('forbidden');
    const verified = (
      await call(
        'verify_story',
        orch.verifyStory(first.id, { summary: 'criteria met', review_type: 'single_reviewer' }),
        200,
      )
    ).data;
    expect(verified).toMatchObject({ verified_status: 'verified', verified_by_agent_id: team.orchestrator.id });

    const story = (await call('get_story', orch.getStory(first.id), 200)).data;
    expect(story.token_usage).toMatchObject({ input_tokens: 1200, output_tokens: 300, cost_millicents: 4500 });
    expect(story.artifact).toEqual({ artifact_type: 'pr', path: 'https://example.test/pr/1' });
    const nowReady = await call('list_ready_stories', orch.listReadyStories(project.id), 200);
    expect(nowReady.data.map((s: any) => s.number)).toEqual(['1.2', '1.10']);
    await call('contract_story', impl.contractStory(dependent.id, 'Pay by card', 1), 200);
    await call('claim_story', impl.claimStory(dependent.id), 200);

    const costed = (await call('get_progress', orch.getProgress(project.id, true), 200)).data;
    expect(costed.cost).toMatchObject({ input_tokens: 1200, output_tokens: 300, cost_millicents: 4500 });

    // One-off story by epic number, backfill of a never-claimed one, and verify-all.
    const extra = (
      await call(
        'create_story',
        orch.createStoryByEpicNumber(project.id, 1, { number: '1.3', title: 'Coupons', acceptance_criteria: [] }),
        201,
      )
    ).data;
    expect(extra).toMatchObject({ number: '1.3', agent_status: 'pending' });
    const backfilled = (
      await call(
        'backfill_story',
        orch.backfillStory(byNumber.get('1.10').id, { reason: 'shipped before onboarding', pr_number: 12 }),
        200,
      )
    ).data;
    expect(backfilled).toMatchObject({ verified_status: 'verified', backfilled: true });
    const afterBackfill = (await call('get_progress', orch.getProgress(project.id), 200)).data;
    expect(afterBackfill.total).toMatchObject({ total: 4, verified: 1, backfilled: 1 });

    const epics = await stack.api.get(`/api/v1/projects/${project.id}/epics`, team.orchestrator.key);
    const all = (await call('verify_all_in_epic', orch.verifyAllInEpic(epics.body.data[0].id, 'batch', 'pass'), 200))
      .data;
    expect(all.verified_count).toBe(0);
    expect(all.results.map((r: any) => [r.number, r.outcome])).toEqual([
      ['1.1', 'already_verified'],
      ['1.2', 'not_reported'],
      ['1.3', 'not_reported'],
      ['1.10', 'already_verified'],
    ]);
    console.log(`loopctl tool calls: ${statuses.map(([t, s]) => `${t} ${s}`).join(', ')}`);
  });

  it('binds a review to the reported artifact, and verify-all judges each story by the gates', async () => {
    const [implementer, reviewer] = team.agents;
    const orch = loopctlTools({ orch: team.orchestrator.key });
    const review = loopctlTools({ orch: reviewer.key });
    const impl = loopctlTools({ orch: implementer.key, agent: implementer.key });
    const project = (await orch.createProject({ name: 'Gates', slug: 'gates' })).body.data;
    const r = await orch.importStories(project.id, {
      epics: [
        {
          number: 7,
          title: 'E',
          stories: [
            { number: '7.1', title: 'A', acceptance_criteria: [] },
            { number: '7.2', title: 'B', acceptance_criteria: [] },
          ],
        },
      ],
    });
    expect(r.status).toBe(201);
    const [a, b] = r.body.data.stories;
    for (const s of [a, b]) {
      for (const step of [
        () => impl.contractStory(s.id, s.title, 0),
        () => impl.claimStory(s.id),
        () => impl.startStory(s.id),
        () => impl.requestReview(s.id),
      ])
        expect((await step()).status).toBe(200);
    }
    expect((await review.reportStory(a.id, { artifact_path: 'branch-a' })).status).toBe(200);
    const mismatch = await apiCall(reviewer.key, 'POST', `/api/v1/stories/${a.id}/review-complete`, {
      review_type: 'single_reviewer',
      artifact: { path: 'branch-b' },
    });
    expect([mismatch.status, mismatch.body.error.code]).toEqual([409, 'artifact_mismatch']);
    const same = await apiCall(reviewer.key, 'POST', `/api/v1/stories/${a.id}/review-complete`, {
      review_type: 'single_reviewer',
      artifact: { path: 'branch-a' },
    });
    expect(same.status).toBe(200);
    // b: reported and reviewed by the orchestrator itself, so verify-all must refuse it (stricter than loopctl).
    expect((await orch.reportStory(b.id)).status).toBe(200);
    expect((await orch.reviewComplete(b.id, { review_type: 'orchestrator' })).status).toBe(200);
    const epics = await stack.api.get(`/api/v1/projects/${project.id}/epics`, team.orchestrator.key);
    const all = await orch.verifyAllInEpic(epics.body.data[0].id, 'batch', 'pass');
    expect(all.status).toBe(200);
    expect(all.body.data.results.map((x: any) => [x.number, x.outcome])).toEqual([
      ['7.1', 'verified'],
      ['7.2', 'verifier_is_reviewer'],
    ]);
  });

  it('the rest of its tools: tenant, projects, filters, a story by epic id, a reject and a second round, delete', async () => {
    const [implementer, reviewer] = team.agents;
    const orch = loopctlTools({ orch: team.orchestrator.key, agent: implementer.key });
    const review = loopctlTools({ orch: reviewer.key });
    const impl = loopctlTools({ orch: implementer.key, agent: implementer.key });
    expect((await orch.getTenant()).status).toBe(200);
    const project = (await orch.createProject({ name: 'Rounds', slug: 'rounds' })).body.data;
    expect((await orch.listProjects()).body.data.map((p: any) => p.slug)).toContain('rounds');
    const payload = {
      epics: [{ number: '4', title: 'E', stories: [{ number: '4.1', title: 'Pay', acceptance_criteria: ['pays'] }] }],
    };
    expect((await orch.importStories(project.id, payload)).status).toBe(201);
    // The same payload again changes nothing.
    const again = await orch.importStories(project.id, payload);
    expect([again.status, again.body.data.stories_unchanged]).toEqual([201, ['4.1']]);
    const [story] = (await orch.listStories({ project_id: project.id })).body.data;
    // create_story with an epic id posts the bare story object.
    const byEpicId = await orch.createStoryByEpicId(story.epic_id, { number: '4.2', title: 'Refund' });
    expect([byEpicId.status, byEpicId.body.data.acceptance_criteria]).toEqual([201, []]);

    for (const step of [
      () => impl.contractStory(story.id, 'Pay', 1),
      () => impl.claimStory(story.id),
      () => impl.startStory(story.id),
      () => impl.requestReview(story.id),
      () => review.reportStory(story.id, { artifact_type: 'branch', artifact_path: 'feat/pay' }),
      () =>
        review.reviewComplete(story.id, {
          review_type: 'enhanced_6_agent',
          findings_count: 3,
          fixes_count: 2,
          disproved_count: 1,
        }),
    ])
      expect((await step()).status).toBe(200);
    const blank = await orch.rejectStory(story.id, ' ');
    expect([blank.status, blank.body.error.code]).toEqual([422, 'reason_required']);
    const rejected = await orch.rejectStory(story.id, 'misses 3-D Secure');
    expect([rejected.status, rejected.body.data]).toEqual([
      200,
      expect.objectContaining({ agent_status: 'pending', verified_status: 'rejected', iteration: 2 }),
    ]);
    // The second round: the same implementer, a report and review of the new artifact, verified.
    for (const step of [
      () => impl.contractStory(story.id, 'Pay', 1),
      () => impl.claimStory(story.id),
      () => impl.startStory(story.id),
      () => impl.requestReview(story.id),
      () => review.reportStory(story.id, { artifact_type: 'branch', artifact_path: 'feat/pay-3ds' }),
      () => review.reviewComplete(story.id, { review_type: 'single_reviewer' }),
      () => orch.verifyStory(story.id, { summary: '3-D Secure added' }),
    ])
      expect((await step()).status).toBe(200);
    const filtered = await orch.listStories({
      project_id: project.id,
      verified_status: 'verified',
      epic_id: story.epic_id,
      include_token_totals: true,
    });
    expect(filtered.status).toBe(200);
    expect(filtered.body.data.map((s: any) => [s.number, s.iteration])).toEqual([['4.1', 2]]);
    expect(filtered.body.meta.total_count).toBe(1);

    // Its tools for what API.md does not cover (bulk mark-complete, token analytics, the knowledge
    // wiki, dispatch, routes) get a clear 404, never a 500.
    for (const [method, path, body] of [
      [
        'POST',
        '/api/v1/stories/bulk/mark-complete',
        { stories: [{ story_id: story.id, summary: 's', review_type: 'r' }] },
      ],
      ['POST', '/api/v1/token-usage', { story_id: story.id, input_tokens: 1, output_tokens: 1, model_name: 'm' }],
      ['GET', `/api/v1/projects/${project.id}/knowledge/index`, null],
      ['GET', '/api/v1/routes', null],
    ] as const) {
      const r = await apiCall(team.orchestrator.key, method, path, body);
      expect([r.status, r.body.error.code], path).toEqual([404, 'not_found']);
    }

    const archived = await orch.deleteProject(team.admin.key, project.id);
    expect([archived.status, archived.body.data.status]).toEqual([200, 'archived']);
  });
});
