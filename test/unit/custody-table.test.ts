/**
 * The custody rules, exhaustively: every action × every reachable story state × every kind of
 * caller, generated as a table and checked against an oracle written from the contract's
 * lifecycle table (shared/API.md), not from the implementation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACTION_SPECS, ROUTED_ACTIONS, actionPath, type RoutedAction } from '../../src/custody/action-specs.js';
import {
  ACTIONS,
  ACTION_RULES,
  AGENT_STATUSES,
  EVENT_OF_ACTION,
  type Action,
  type AgentStatus,
  type VerifiedStatus,
} from '../../src/custody/actions.js';
import { statusOf } from '../../src/custody/errors.js';
import {
  applyDependencyStatus,
  availableActions,
  checkHeartbeat,
  decide,
  expireLease,
  explainByLease,
  judge,
  newStoryState,
  type StoryState,
} from '../../src/custody/rules.js';
import { storyUpdates } from '../../workflows/messages.js';

const TENANT = 'tenant-1';
const IMPLEMENTER = 'agent-impl';
const EARLIER_IMPLEMENTER = 'agent-impl-1st-iteration';
const REVIEWER = 'agent-reviewer';
const OTHER = 'agent-other';
const ORCH = 'orch-1';
const ORCH_REVIEWER = 'orch-reviewer';
const ADMIN = 'admin-1';

type ActorKind =
  | 'implementer'
  | 'earlier_implementer'
  | 'other_agent'
  | 'reviewer'
  | 'orchestrator'
  | 'orchestrator_reviewer'
  | 'admin'
  | 'no_identity'
  | 'empty_agent'
  | 'unknown_role'
  | 'other_tenant';

const ACTORS: Record<ActorKind, unknown> = {
  implementer: { agentId: IMPLEMENTER, role: 'agent', tenantId: TENANT },
  earlier_implementer: { agentId: EARLIER_IMPLEMENTER, role: 'agent', tenantId: TENANT },
  other_agent: { agentId: OTHER, role: 'agent', tenantId: TENANT },
  reviewer: { agentId: REVIEWER, role: 'agent', tenantId: TENANT },
  orchestrator: { agentId: ORCH, role: 'orchestrator', tenantId: TENANT },
  orchestrator_reviewer: { agentId: ORCH_REVIEWER, role: 'orchestrator', tenantId: TENANT },
  admin: { agentId: ADMIN, role: 'admin', tenantId: TENANT },
  no_identity: null,
  empty_agent: { agentId: '', role: 'agent', tenantId: TENANT },
  unknown_role: { agentId: OTHER, role: 'superuser', tenantId: TENANT },
  other_tenant: { agentId: OTHER, role: 'agent', tenantId: 'tenant-2' },
};

interface Shape {
  agentStatus: AgentStatus;
  verifiedStatus: VerifiedStatus;
  /** Who reviewed this iteration, if anyone. */
  reviewedBy: null | 'agent' | 'orchestrator';
  unverifiedDependency: boolean;
  /** Second iteration, after a reject: the first implementer is one too. */
  reworked: boolean;
}

const ASSIGNED_STATES: AgentStatus[] = ['assigned', 'implementing', 'review_requested', 'reported_done'];

/** Every state the lifecycle can reach (reviews only once reported; verified only when reported). */
function reachableShapes(): Shape[] {
  const shapes: Shape[] = [];
  for (const agentStatus of AGENT_STATUSES) {
    for (const verifiedStatus of ['unverified', 'verified', 'rejected'] as const) {
      for (const reworked of [false, true]) {
        if (verifiedStatus === 'rejected' && !reworked) continue;
        if (verifiedStatus === 'unverified' && reworked) continue;
        if (verifiedStatus === 'verified' && agentStatus !== 'reported_done') continue;
        const reviews: Shape['reviewedBy'][] =
          agentStatus === 'reported_done'
            ? verifiedStatus === 'verified'
              ? ['agent', 'orchestrator']
              : [null, 'agent', 'orchestrator']
            : [null];
        for (const reviewedBy of reviews) {
          for (const unverifiedDependency of [false, true]) {
            shapes.push({ agentStatus, verifiedStatus, reviewedBy, unverifiedDependency, reworked });
          }
        }
      }
    }
  }
  return shapes;
}

function stateOf(shape: Shape): StoryState {
  let state = newStoryState({
    tenantId: TENANT,
    projectId: 'p',
    storyId: 's',
    number: '1.1',
    title: 'Landing page',
    acCount: 2,
    dependsOn: ['dep'],
  });
  state = applyDependencyStatus(state, 'dep', { verified: !shape.unverifiedDependency, seq: 1 });
  const held = ASSIGNED_STATES.includes(shape.agentStatus);
  const reviewer = shape.reviewedBy === 'agent' ? REVIEWER : shape.reviewedBy === 'orchestrator' ? ORCH_REVIEWER : null;
  const iteration = shape.reworked ? 2 : 1;
  return {
    ...state,
    agentStatus: shape.agentStatus,
    verifiedStatus: shape.verifiedStatus,
    iteration,
    assignedAgentId: held ? IMPLEMENTER : null,
    implementerAgentIds: [...(shape.reworked ? [EARLIER_IMPLEMENTER] : []), ...(held ? [IMPLEMENTER] : [])],
    reportedByAgentId: shape.agentStatus === 'reported_done' ? OTHER : null,
    reviewerAgentId: reviewer,
    verifiedByAgentId: shape.verifiedStatus === 'verified' ? ORCH : null,
    review: reviewer
      ? {
          reviewer_agent_id: reviewer,
          review_type: 'standard',
          findings_count: 0,
          fixes_count: 0,
          disproved_count: 0,
          summary: 'ok',
          iteration,
        }
      : null,
  };
}

const VALID_BODIES: Record<Action, unknown> = {
  contract: { story_title: 'Landing page', ac_count: 2 },
  claim: {},
  start: {},
  'request-review': {},
  report: { artifact: 'https://example.test/pr/1' },
  'review-complete': {
    review_type: 'standard',
    findings_count: 3,
    fixes_count: 2,
    disproved_count: 1,
    summary: 'two fixed, one disproved',
  },
  aggregate: { summary: 'three findings, all fixed', findings_count: 3, fixes_count: 3, disproved_count: 0 },
  verify: { summary: 'criteria met' },
  reject: { reason: 'regression' },
  unclaim: {},
  'force-unclaim': { reason: 'agent vanished' },
  backfill: { reason: 'shipped before custody', evidence_url: 'https://example.test/pr/7', pr_number: 7 },
  edit: { title: 'Landing page, v2', ac_count: 3 },
  delete: {},
};

/** The contract's lifecycle table, restated: which roles, from which states. */
const TABLE: Record<Action, { roles: string[]; from: AgentStatus[]; verified?: VerifiedStatus[] }> = {
  contract: { roles: ['agent', 'orchestrator'], from: ['pending'] },
  claim: { roles: ['agent'], from: ['contracted'] },
  start: { roles: ['agent'], from: ['assigned'] },
  'request-review': { roles: ['agent'], from: ['implementing'] },
  report: { roles: ['agent', 'orchestrator'], from: ['review_requested'] },
  'review-complete': { roles: ['agent', 'orchestrator'], from: ['reported_done'] },
  aggregate: { roles: ['agent', 'orchestrator'], from: ['reported_done'] },
  verify: { roles: ['orchestrator'], from: ['reported_done'] },
  reject: { roles: ['orchestrator'], from: ['reported_done'], verified: ['unverified', 'rejected', 'verified'] },
  unclaim: { roles: ['agent'], from: ['assigned', 'implementing'] },
  'force-unclaim': { roles: ['orchestrator', 'admin'], from: ['assigned', 'implementing', 'review_requested'] },
  // Never claimed, never verified: the reachable shapes that pass are exactly the never-claimed ones.
  backfill: { roles: ['orchestrator'], from: ['pending', 'contracted'], verified: ['unverified'] },
  edit: { roles: ['admin', 'orchestrator'], from: ['pending'] },
  delete: { roles: ['admin', 'orchestrator'], from: ['pending'] },
};

/** Edits and withdrawals of a story past pending have their own code. */
const WRONG_STATE_CODE: Partial<Record<Action, string>> = { edit: 'story_in_progress', delete: 'story_in_progress' };

/** The expected outcome: 'ok' or the error code, in the documented order of checks. */
function oracle(shape: Shape, kind: ActorKind, action: Action): string {
  if (kind === 'no_identity' || kind === 'empty_agent' || kind === 'unknown_role') return 'unauthorized';
  if (kind === 'other_tenant') return 'not_found';
  const actor = ACTORS[kind] as { agentId: string; role: string };
  const row = TABLE[action];
  if (!row.roles.includes(actor.role)) return 'forbidden';
  const verifiedOk = (row.verified ?? ['unverified', 'rejected']).includes(shape.verifiedStatus);
  if (!row.from.includes(shape.agentStatus) || !verifiedOk) return WRONG_STATE_CODE[action] ?? 'invalid_transition';
  const implementer =
    kind === 'implementer' || kind === 'earlier_implementer'
      ? kind === 'implementer'
        ? ASSIGNED_STATES.includes(shape.agentStatus)
        : shape.reworked
      : false;
  const reviewerId =
    shape.reviewedBy === 'agent' ? REVIEWER : shape.reviewedBy === 'orchestrator' ? ORCH_REVIEWER : null;
  switch (action) {
    case 'claim':
      return shape.unverifiedDependency ? 'dependencies_not_met' : 'ok';
    case 'start':
    case 'request-review':
    case 'unclaim':
      return kind === 'implementer' && ASSIGNED_STATES.includes(shape.agentStatus) ? 'ok' : 'not_assigned_agent';
    case 'report':
      return implementer ? 'self_report_blocked' : 'ok';
    case 'review-complete':
      if (implementer) return 'self_review_blocked';
      return shape.reviewedBy ? 'invalid_transition' : 'ok';
    case 'aggregate':
      // Without a review policy no round is signed by an aggregator.
      return 'invalid_transition';
    case 'verify':
      if (implementer) return 'self_verify_blocked';
      if (reviewerId !== null && actor.agentId === reviewerId) return 'verifier_is_reviewer';
      return shape.reviewedBy ? 'ok' : 'review_required';
    default:
      return 'ok';
  }
}

/** What an accepted action leaves behind, per the contract's effect column. */
function expectedEffect(shape: Shape, kind: ActorKind, action: Action): Partial<StoryState> {
  const actor = ACTORS[kind] as { agentId: string };
  switch (action) {
    case 'contract':
      return { agentStatus: 'contracted' };
    case 'claim':
      return { agentStatus: 'assigned', assignedAgentId: actor.agentId };
    case 'start':
      return { agentStatus: 'implementing' };
    case 'request-review':
      return { agentStatus: 'review_requested' };
    case 'report':
      return { agentStatus: 'reported_done', reportedByAgentId: actor.agentId };
    case 'review-complete':
      return { agentStatus: 'reported_done', reviewerAgentId: actor.agentId };
    case 'aggregate':
      return {};
    case 'verify':
      return { verifiedStatus: 'verified', verifiedByAgentId: actor.agentId };
    case 'reject':
      return {
        agentStatus: 'pending',
        verifiedStatus: 'rejected',
        iteration: (shape.reworked ? 2 : 1) + 1,
        assignedAgentId: null,
      };
    case 'unclaim':
    case 'force-unclaim':
      return { agentStatus: 'contracted', assignedAgentId: null };
    case 'backfill':
      return {
        agentStatus: 'reported_done',
        verifiedStatus: 'verified',
        backfilled: true,
        verifiedByAgentId: actor.agentId,
      };
    case 'edit':
      return { agentStatus: shape.agentStatus, title: 'Landing page, v2', acCount: 3 };
    case 'delete':
      return { agentStatus: shape.agentStatus, deleted: true };
  }
}

const shapes = reachableShapes();
const name = (s: Shape) =>
  `${s.agentStatus}/${s.verifiedStatus}${s.reviewedBy ? `, reviewed by ${s.reviewedBy}` : ''}${s.unverifiedDependency ? ', dependency unverified' : ''}${s.reworked ? ', iteration 2' : ''}`;
const cases = shapes.flatMap((shape) =>
  (Object.keys(ACTORS) as ActorKind[]).flatMap((kind) =>
    ACTIONS.map((action) => ({ shape, kind, action, label: `${action} by ${kind} on ${name(shape)}` })),
  ),
);

describe('custody rules: the whole table', () => {
  it('covers every action, every reachable state and every kind of caller', () => {
    expect(new Set(cases.map((c) => c.action)).size).toBe(ACTIONS.length);
    expect(new Set(cases.map((c) => c.shape.agentStatus)).size).toBe(AGENT_STATUSES.length);
    expect(cases.length).toBeGreaterThan(2000);
  });

  it.each(cases)('$label', ({ shape, kind, action }) => {
    const state = stateOf(shape);
    const before = structuredClone(state);
    const decision = decide(state, ACTORS[kind], action, VALID_BODIES[action]);
    const expected = oracle(shape, kind, action);
    expect(state).toEqual(before);
    if (expected === 'ok') {
      expect(decision.ok, JSON.stringify(decision)).toBe(true);
      if (!decision.ok) return;
      expect(decision.state).toMatchObject(expectedEffect(shape, kind, action));
      expect(decision.transition).toMatchObject({
        action,
        from: { agent_status: shape.agentStatus, verified_status: shape.verifiedStatus },
      });
    } else {
      expect(decision.ok).toBe(false);
      if (decision.ok) return;
      expect(decision.rejection.code).toBe(expected);
      if (
        expected === 'invalid_transition' &&
        !(action === 'review-complete' && shape.reviewedBy && TABLE[action].from.includes(shape.agentStatus))
      ) {
        expect(decision.rejection.context).toEqual({
          current_agent_status: shape.agentStatus,
          current_verified_status: shape.verifiedStatus,
          attempted_action: action,
        });
      }
      // The rules say the code only; its status is the error table's.
      expect(decision.rejection).not.toHaveProperty('status');
      expect(statusOf(decision.rejection.code)).toBe(
        { unauthorized: 401, not_found: 404, forbidden: 403, not_assigned_agent: 403, review_required: 422 }[
          expected
        ] ?? 409,
      );
    }
  });

  it('offers as next_actions exactly the actions that would be accepted with a valid body', () => {
    for (const { shape, kind } of cases.filter((c) => c.action === 'contract')) {
      const offered = availableActions(stateOf(shape), ACTORS[kind]);
      const accepted = ACTIONS.filter((action) => oracle(shape, kind, action) === 'ok');
      expect(offered, `${kind} on ${name(shape)}`).toEqual(accepted);
    }
  });
});

describe('custody rules: bodies', () => {
  const reported = stateOf({
    agentStatus: 'reported_done',
    verifiedStatus: 'unverified',
    reviewedBy: null,
    unverifiedDependency: false,
    reworked: false,
  });
  const pending = stateOf({
    agentStatus: 'pending',
    verifiedStatus: 'unverified',
    reviewedBy: null,
    unverifiedDependency: false,
    reworked: false,
  });
  const review = (f: number, x: number, d: number, summary = 'ok') => ({
    review_type: 'standard',
    findings_count: f,
    fixes_count: x,
    disproved_count: d,
    summary,
  });

  it.each([
    [3, 1, 1],
    [1, 2, 0],
    [0, 1, -1],
    [-1, -1, 0],
    [2, 0, 1],
  ])('findings %i = fixes %i + disproved %i does not add up: findings_math_mismatch', (f, x, d) => {
    const decision = decide(reported, ACTORS.reviewer, 'review-complete', review(f, x, d));
    expect(decision.ok ? 'ok' : decision.rejection.code).toBe('findings_math_mismatch');
  });

  it('accepts findings that add up, and a blank summary (loopctl clients send none; API.md v1.1)', () => {
    expect(decide(reported, ACTORS.reviewer, 'review-complete', review(5, 3, 2)).ok).toBe(true);
    const blank = decide(reported, ACTORS.reviewer, 'review-complete', review(0, 0, 0, '  '));
    expect(blank.ok ? 'ok' : blank.rejection.code).toBe('ok');
  });

  it('matches a contract to the story, exactly', () => {
    for (const body of [
      { story_title: 'Landing Page', ac_count: 2 },
      { story_title: 'Landing page ', ac_count: 2 },
      { story_title: 'Landing page', ac_count: 3 },
    ]) {
      const decision = decide(pending, ACTORS.implementer, 'contract', body);
      expect(decision.ok ? 'ok' : decision.rejection.code).toBe('contract_mismatch');
      if (!decision.ok)
        expect(decision.rejection.context).toEqual({
          expected: { story_title: 'Landing page', ac_count: 2 },
          provided: body,
        });
    }
  });

  it('refuses bodies of the wrong shape, and identity smuggled into them', () => {
    const cases: [Action, unknown][] = [
      ['contract', { story_title: 'Landing page' }],
      ['contract', { story_title: 'Landing page', ac_count: '2' }],
      ['claim', { agent_id: OTHER }],
      ['report', { reported_by_agent_id: OTHER }],
      ['review-complete', { ...review(0, 0, 0), reviewer_agent_id: OTHER }],
      ['verify', { summary: 'x', verified_by_agent_id: ORCH }],
      ['reject', { reason: 42 }],
      ['contract', 'not an object'],
      ['contract', [1, 2]],
    ];
    for (const [action, body] of cases) {
      const state =
        action === 'contract'
          ? pending
          : action === 'claim'
            ? stateOf({
                agentStatus: 'contracted',
                verifiedStatus: 'unverified',
                reviewedBy: null,
                unverifiedDependency: false,
                reworked: false,
              })
            : action === 'report'
              ? stateOf({
                  agentStatus: 'review_requested',
                  verifiedStatus: 'unverified',
                  reviewedBy: null,
                  unverifiedDependency: false,
                  reworked: false,
                })
              : action === 'verify'
                ? stateOf({
                    agentStatus: 'reported_done',
                    verifiedStatus: 'unverified',
                    reviewedBy: 'agent',
                    unverifiedDependency: false,
                    reworked: false,
                  })
                : reported;
      const actor =
        action === 'verify' || action === 'reject'
          ? ACTORS.orchestrator
          : action === 'report' || action === 'review-complete'
            ? ACTORS.reviewer
            : ACTORS.other_agent;
      const decision = decide(state, actor, action, body);
      expect(decision.ok ? 'ok' : decision.rejection.code, `${action} ${JSON.stringify(body)}`).toBe('invalid_body');
    }
  });

  it('needs a reason to reject or force-unclaim', () => {
    const held = stateOf({
      agentStatus: 'implementing',
      verifiedStatus: 'unverified',
      reviewedBy: null,
      unverifiedDependency: false,
      reworked: false,
    });
    for (const body of [{}, { reason: '' }, { reason: '   ' }]) {
      const r1 = decide(reported, ACTORS.orchestrator, 'reject', body);
      const r2 = decide(held, ACTORS.admin, 'force-unclaim', body);
      expect([r1.ok ? 'ok' : r1.rejection.code, r2.ok ? 'ok' : r2.rejection.code]).toEqual([
        'reason_required',
        'reason_required',
      ]);
    }
  });
});

describe('custody rules: whole lifecycles', () => {
  const step = (state: StoryState, actor: unknown, action: Action, body: unknown = VALID_BODIES[action]) => {
    const decision = decide(state, actor, action, body);
    if (!decision.ok) throw new Error(`${action}: ${decision.rejection.code}`);
    return decision.state;
  };
  const fresh = () =>
    newStoryState({
      tenantId: TENANT,
      projectId: 'p',
      storyId: 's',
      number: '1.1',
      title: 'Landing page',
      acCount: 2,
      dependsOn: [],
    });

  it('ends verified when three distinct parties take their parts', () => {
    let s = fresh();
    for (const action of ['contract', 'claim', 'start', 'request-review'] as const)
      s = step(s, ACTORS.implementer, action);
    s = step(s, ACTORS.reviewer, 'report');
    s = step(s, ACTORS.reviewer, 'review-complete');
    s = step(s, ACTORS.orchestrator, 'verify');
    expect(s).toMatchObject({
      agentStatus: 'reported_done',
      verifiedStatus: 'verified',
      assignedAgentId: IMPLEMENTER,
      reviewerAgentId: REVIEWER,
      verifiedByAgentId: ORCH,
      iteration: 1,
    });
  });

  it('keeps every implementer of every iteration out of report, review and verify after a rework', () => {
    let s = fresh();
    for (const action of ['contract', 'claim', 'start', 'request-review'] as const)
      s = step(s, ACTORS.implementer, action);
    s = step(s, ACTORS.reviewer, 'report');
    s = step(s, ACTORS.reviewer, 'review-complete');
    s = step(s, ACTORS.orchestrator, 'reject');
    expect(s).toMatchObject({
      iteration: 2,
      agentStatus: 'pending',
      verifiedStatus: 'rejected',
      assignedAgentId: null,
    });
    for (const action of ['contract', 'claim', 'start', 'request-review'] as const)
      s = step(s, ACTORS.other_agent, action);
    const selfReport = decide(s, ACTORS.implementer, 'report', {});
    expect(selfReport.ok ? 'ok' : selfReport.rejection.code).toBe('self_report_blocked');
    s = step(s, ACTORS.orchestrator_reviewer, 'report');
    const selfReview = decide(s, ACTORS.implementer, 'review-complete', VALID_BODIES['review-complete']);
    expect(selfReview.ok ? 'ok' : selfReview.rejection.code).toBe('self_review_blocked');
    // The reviewer of iteration 1 may review iteration 2 too; its old review does not count.
    const early = decide(s, ACTORS.orchestrator, 'verify', {});
    expect(early.ok ? 'ok' : early.rejection.code).toBe('review_required');
    s = step(s, ACTORS.reviewer, 'review-complete');
    s = step(s, ACTORS.orchestrator_reviewer, 'verify');
    expect(s).toMatchObject({ verifiedStatus: 'verified', iteration: 2, implementerAgentIds: [IMPLEMENTER, OTHER] });
  });

  it('ignores stale news about a dependency', () => {
    let s = newStoryState({
      tenantId: TENANT,
      projectId: 'p',
      storyId: 's',
      number: '1',
      title: 't',
      acCount: 0,
      dependsOn: ['d'],
    });
    s = applyDependencyStatus(s, 'd', { verified: true, seq: 7 });
    s = applyDependencyStatus(s, 'd', { verified: false, seq: 6 });
    expect(s.dependencies.d).toEqual({ verified: true, seq: 7 });
    s = applyDependencyStatus(s, 'd', { verified: false, seq: 8 });
    expect(s.dependencies.d).toEqual({ verified: false, seq: 8 });
  });

  it('never throws on junk, and never accepts it', () => {
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const junk = [
      null,
      undefined,
      0,
      -1,
      'x',
      '',
      [],
      {},
      { agentId: 1 },
      { agentId: 'a', role: 'agent' },
      { role: 'orchestrator' },
      NaN,
      true,
      Symbol.for('s'),
    ];
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
    for (let i = 0; i < 500; i++) {
      const state = stateOf(pick(shapes));
      const decision = decide(
        state,
        pick(junk),
        pick([...ACTIONS, 'delete', '', null, '__proto__'] as unknown[]),
        pick(junk),
      );
      expect(decision.ok).toBe(false);
    }
  });
});

describe('custody rules: loopctl bodies, backfill, edits', () => {
  const fresh = () =>
    newStoryState({
      tenantId: TENANT,
      projectId: 'p',
      storyId: 's',
      number: '1.1',
      title: 'Landing page',
      acCount: 2,
      dependsOn: [],
    });
  const step = (state: StoryState, actor: unknown, action: Action, body: unknown = VALID_BODIES[action]) => {
    const decision = judge(state, actor, action, body);
    if (!decision.ok) throw new Error(`${action}: ${decision.rejection.code}`);
    return decision.state;
  };
  const code = (d: ReturnType<typeof judge>) => (d.ok ? 'ok' : d.rejection.code);
  const reported = (artifact: unknown) => {
    let s = fresh();
    for (const action of ['contract', 'claim', 'start', 'request-review'] as const)
      s = step(s, ACTORS.implementer, action);
    return step(s, ACTORS.reviewer, 'report', artifact === undefined ? {} : { artifact });
  };
  const pr = { artifact_type: 'pr', path: 'https://example.test/pr/9' };

  it('takes a review without counts or summary (counts 0), bound to the reported artifact', () => {
    const s = step(reported(pr), ACTORS.reviewer, 'review-complete', { review_type: 'single_reviewer' });
    expect(s.review).toMatchObject({
      findings_count: 0,
      fixes_count: 0,
      disproved_count: 0,
      summary: '',
      artifact: pr,
    });
    // Key order does not make another artifact.
    const same = { path: pr.path, artifact_type: 'pr' };
    expect(code(judge(reported(pr), ACTORS.reviewer, 'review-complete', { review_type: 'x', artifact: same }))).toBe(
      'ok',
    );
  });

  it('refuses a blank review_type (review_required) and a review of another artifact (artifact_mismatch)', () => {
    for (const review_type of ['', '   ', '--'])
      expect(code(judge(reported(pr), ACTORS.reviewer, 'review-complete', { review_type }))).toBe('review_required');
    const other = judge(reported(pr), ACTORS.reviewer, 'review-complete', { review_type: 'x', artifact: 'main' });
    expect(code(other)).toBe('artifact_mismatch');
    expect(other.ok ? null : statusOf(other.rejection.code)).toBe(409);
    // Nothing reported: naming an artifact in the review is a mismatch too.
    expect(
      code(judge(reported(undefined), ACTORS.reviewer, 'review-complete', { review_type: 'x', artifact: 'a' })),
    ).toBe('artifact_mismatch');
  });

  it('backfills only a story nobody ever claimed, with a reason', () => {
    expect(code(judge(fresh(), ACTORS.orchestrator, 'backfill', {}))).toBe('reason_required');
    expect(code(judge(fresh(), ACTORS.orchestrator, 'backfill', { reason: ' ' }))).toBe('reason_required');
    // Claimed then given back: contracted again, but it went through custody.
    let s = step(fresh(), ACTORS.implementer, 'contract');
    s = step(s, ACTORS.implementer, 'claim');
    s = step(s, ACTORS.implementer, 'unclaim');
    expect(s.agentStatus).toBe('contracted');
    expect(code(judge(s, ACTORS.orchestrator, 'backfill', VALID_BODIES.backfill))).toBe('invalid_transition');
    // Backfilled, then rejected: pending again, never backfillable again.
    let b = step(fresh(), ACTORS.orchestrator, 'backfill');
    expect(b).toMatchObject({ verifiedStatus: 'verified', backfilled: true });
    b = step(b, ACTORS.orchestrator, 'reject', { reason: 'not actually done' });
    expect(b).toMatchObject({ agentStatus: 'pending', verifiedStatus: 'rejected', backfilled: false });
    expect(code(judge(b, ACTORS.orchestrator, 'backfill', VALID_BODIES.backfill))).toBe('invalid_transition');
  });

  it('edits change what a contract must match; a deleted story takes no action', () => {
    const edited = step(fresh(), ACTORS.orchestrator, 'edit', { title: 'Home page', ac_count: 4 });
    expect(code(judge(edited, ACTORS.implementer, 'contract', { story_title: 'Landing page', ac_count: 2 }))).toBe(
      'contract_mismatch',
    );
    expect(code(judge(edited, ACTORS.implementer, 'contract', { story_title: 'Home page', ac_count: 4 }))).toBe('ok');
    const withDep = newStoryState({ ...fresh(), acCount: 2, dependsOn: ['d1', 'd2'] });
    const freed = step(withDep, ACTORS.orchestrator, 'edit', { remove_dependencies: ['d1'] });
    expect(Object.keys(freed.dependencies)).toEqual(['d2']);
    const gone = step(fresh(), ACTORS.admin, 'delete');
    for (const action of ACTIONS)
      expect(code(judge(gone, ACTORS.orchestrator, action, VALID_BODIES[action]))).toBe('not_found');
  });
});

describe('custody rules: a claim that ran out', () => {
  const claimed = () => {
    let s = newStoryState({
      tenantId: TENANT,
      projectId: 'p',
      storyId: 's',
      number: '1.1',
      title: 'Landing page',
      acCount: 2,
      dependsOn: [],
    });
    for (const action of ['contract', 'claim'] as const) {
      const d = decide(s, ACTORS.implementer, action, VALID_BODIES[action]);
      if (!d.ok) throw new Error(action);
      s = d.state;
    }
    return s;
  };
  const EXPIRED_AT = '2026-01-01T00:00:00.000Z';
  const expired = (state: StoryState) => ({ agentId: IMPLEMENTER, expiredAt: EXPIRED_AT, iteration: state.iteration });

  it('tells the former holder lease_expired (409, with when) for what only a holder does', () => {
    const after = expireLease(claimed())!.state;
    for (const action of ['start', 'unclaim'] as const) {
      const d = decide(after, ACTORS.implementer, action, VALID_BODIES[action]);
      expect(d.ok).toBe(false);
      if (d.ok) continue;
      expect(d.rejection.code).toBe('invalid_transition');
      const explained = explainByLease(d.rejection, after, ACTORS.implementer, action, expired(after));
      expect(statusOf(explained.code)).toBe(409);
      expect(explained).toMatchObject({
        code: 'lease_expired',
        context: { expired_at: EXPIRED_AT, attempted_action: action, current_agent_status: 'contracted' },
      });
    }
    const beat = checkHeartbeat(after, ACTORS.implementer)!;
    expect(explainByLease(beat, after, ACTORS.implementer, 'heartbeat', expired(after)).code).toBe('lease_expired');
  });

  it('leaves every other refusal as it was', () => {
    const after = expireLease(claimed())!.state;
    const lease = expired(after);
    // Someone else's refusal, an action no holder takes, a later iteration, no expiry on record.
    const other = checkHeartbeat(after, ACTORS.other_agent)!;
    expect(explainByLease(other, after, ACTORS.other_agent, 'heartbeat', lease).code).toBe('invalid_transition');
    const report = decide(after, ACTORS.implementer, 'report', VALID_BODIES.report);
    if (report.ok) throw new Error('report accepted');
    expect(explainByLease(report.rejection, after, ACTORS.implementer, 'report', lease).code).toBe(
      report.rejection.code,
    );
    const later = { ...after, iteration: after.iteration + 1 };
    const start = decide(later, ACTORS.implementer, 'start', VALID_BODIES.start);
    if (start.ok) throw new Error('start accepted');
    expect(explainByLease(start.rejection, later, ACTORS.implementer, 'start', lease).code).toBe('invalid_transition');
    expect(explainByLease(start.rejection, after, ACTORS.implementer, 'start', null).code).toBe('invalid_transition');
    expect(explainByLease(start.rejection, after, null, 'start', lease).code).toBe('invalid_transition');
  });

  it('is not the answer once the former holder claims again', () => {
    const after = expireLease(claimed())!.state;
    const again = decide(after, ACTORS.implementer, 'claim', VALID_BODIES.claim);
    if (!again.ok) throw new Error('claim refused');
    const review = decide(again.state, ACTORS.implementer, 'request-review', VALID_BODIES['request-review']);
    if (review.ok) throw new Error('request-review accepted before start');
    expect(
      explainByLease(review.rejection, again.state, ACTORS.implementer, 'request-review', expired(after)).code,
    ).toBe('invalid_transition');
  });
});

describe('every action has one spec, and everything derived from it covers the action', () => {
  it.each(ACTIONS.map((action) => [action]))('%s: a spec, a rule with roles and states, an effect', (action) => {
    const spec = ACTION_SPECS[action];
    expect(spec, `${action} has no spec in src/custody/action-specs.ts`).toBeDefined();
    expect(spec.name).toBe(action);
    expect(spec.rule).toBe(ACTION_RULES[action]);
    expect(spec.rule.roles.length).toBeGreaterThan(0);
    expect(spec.rule.from.length).toBeGreaterThan(0);
    expect(typeof spec.effect, `${action} has no effect in ACTION_EFFECTS`).toBe('function');
    expect(spec.body.safeParse(VALID_BODIES[action]).success).toBe(true);
    expect(spec.event).toMatch(/^story\.[a-z_]+$/);
    expect(EVENT_OF_ACTION[action]).toBe(spec.event);
    expect(TABLE[action], `the oracle has no row for ${action}`).toBeDefined();
    expect(spec.http.summary.length).toBeGreaterThan(0);
    // The workflow takes it as an update of its own name.
    expect(storyUpdates[action]?.name).toBe(action);
  });

  it('routes each action: its own POST route, or a route that translates to it', () => {
    for (const action of ACTIONS) {
      const http = ACTION_SPECS[action].http;
      expect(ROUTED_ACTIONS.includes(action as RoutedAction)).toBe(!('via' in http));
    }
    expect(ROUTED_ACTIONS.map(actionPath)).toEqual(ROUTED_ACTIONS.map((a) => `/stories/:id/${a}`));
  });

  it('names tools, commands and events once each', () => {
    const tools = ACTIONS.flatMap((a) => ACTION_SPECS[a].mcp?.name ?? []);
    const commands = ACTIONS.flatMap((a) => ACTION_SPECS[a].cli?.command ?? []);
    const events = ACTIONS.map((a) => ACTION_SPECS[a].event);
    expect(new Set(tools).size).toBe(tools.length);
    expect(new Set(commands).size).toBe(commands.length);
    expect(new Set(events).size).toBe(events.length);
  });

  it("takes the fields of a tool's or command's arguments from the action's body", () => {
    for (const action of ACTIONS) {
      const { mcp, cli, body } = ACTION_SPECS[action];
      const fields = Object.keys((body as unknown as { shape: Record<string, unknown> }).shape);
      const args = [...(mcp && mcp.args !== 'custom' ? mcp.args : []), ...(cli?.options ?? [])];
      for (const arg of args) expect(fields, `${action}: ${arg.field}`).toContain(arg.field);
    }
  });
});

/**
 * Review policies: generated policies × actions × callers. A model of the contract (issue 19:
 * rounds in order, distinct reviewers, required labels, an aggregator who reviewed none of its
 * round, verify once every round is complete, a new report voiding what the open round had) is
 * walked beside the rules; at each step every action of every caller is judged by both.
 */
describe('custody rules under generated review policies', () => {
  const LABELS = ['architect', 'business-analyst', 'engineer', 'security-adversary'];
  const POLICY_ACTORS: Record<string, { agentId: string; role: string; tenantId: string; labels: string[] }> = {
    implementer: { agentId: IMPLEMENTER, role: 'agent', tenantId: TENANT, labels: ['engineer'] },
    ba: { agentId: 'rev-ba', role: 'agent', tenantId: TENANT, labels: ['business-analyst'] },
    arch: { agentId: 'rev-arch', role: 'agent', tenantId: TENANT, labels: ['architect'] },
    eng: { agentId: 'rev-eng', role: 'agent', tenantId: TENANT, labels: ['engineer'] },
    sec: { agentId: 'rev-sec', role: 'agent', tenantId: TENANT, labels: ['security-adversary', 'engineer'] },
    plain: { agentId: 'rev-plain', role: 'agent', tenantId: TENANT, labels: [] },
    orch: { agentId: ORCH, role: 'orchestrator', tenantId: TENANT, labels: [] },
    orch2: { agentId: ORCH_REVIEWER, role: 'orchestrator', tenantId: TENANT, labels: ['architect'] },
    admin: { agentId: ADMIN, role: 'admin', tenantId: TENANT, labels: [] },
    stranger: { agentId: 'rev-ba', role: 'agent', tenantId: 'tenant-2', labels: ['business-analyst'] },
  };
  type Round = { name: string; min_reviewers: number; required_labels: string[]; aggregator_required: boolean };

  /** The model: what each round has, by the contract's words. */
  interface Model {
    rounds: Round[];
    reviewers: Map<string, { labels: string[]; findings: number }>[];
    aggregator: (string | null)[];
    /** Whose review or sign-off a new report voided: still reviewers of the iteration. */
    voided: Set<string>;
    artifact: string;
    verified: boolean;
  }
  const iterationReviewers = (m: Model) =>
    new Set([...m.reviewers.flatMap((r) => [...r.keys()]), ...m.aggregator.filter(Boolean), ...m.voided]);
  const complete = (m: Model, i: number) => {
    const held = new Set([...m.reviewers[i].values()].flatMap((r) => r.labels));
    const r = m.rounds[i];
    return (
      m.reviewers[i].size >= r.min_reviewers &&
      r.required_labels.every((l) => held.has(l)) &&
      (!r.aggregator_required || m.aggregator[i] !== null)
    );
  };
  const reviewed = (m: Model, i: number) => {
    const held = new Set([...m.reviewers[i].values()].flatMap((r) => r.labels));
    return m.reviewers[i].size >= m.rounds[i].min_reviewers && m.rounds[i].required_labels.every((l) => held.has(l));
  };
  const open = (m: Model) => m.rounds.findIndex((_, i) => !complete(m, i));
  const roundFindings = (m: Model, i: number) => [...m.reviewers[i].values()].reduce((a, r) => a + r.findings, 0);

  interface Step {
    actor: string;
    action: 'review-complete' | 'aggregate' | 'verify' | 'report';
    /** Which round the body names: none, the open one, another one, one the policy does not have. */
    round: 'none' | 'open' | 'other' | 'unknown';
    findings: number;
    mathRight: boolean;
    staleArtifact: boolean;
  }

  function body(m: Model, step: Step): Record<string, unknown> {
    const i = open(m);
    const roundName =
      step.round === 'open'
        ? m.rounds[Math.max(i, 0)].name
        : step.round === 'other'
          ? m.rounds[(Math.max(i, 0) + 1) % m.rounds.length].name
          : step.round === 'unknown'
            ? 'no-such-round'
            : undefined;
    const artifact = step.staleArtifact ? 'ffffffff' : m.artifact;
    switch (step.action) {
      case 'review-complete':
        return {
          review_type: 'team',
          findings_count: step.findings,
          fixes_count: step.mathRight ? step.findings : step.findings + 1,
          disproved_count: 0,
          summary: 'reviewed',
          artifact,
          ...(roundName ? { round: roundName } : {}),
        };
      case 'aggregate': {
        const total = i >= 0 ? roundFindings(m, i) : 0;
        return {
          summary: 'classified',
          findings_count: step.mathRight ? total : total + 1,
          fixes_count: step.mathRight ? total : total + 1,
          disproved_count: 0,
          artifact,
          ...(roundName ? { round: roundName } : {}),
        };
      }
      case 'report':
        return { artifact: { artifact_type: 'commit', path: `${m.artifact.slice(0, 6)}0${m.reviewers.length}aa` } };
      case 'verify':
        return { summary: 'done' };
    }
  }

  /** The expected outcome, in the order the contract lists the checks. */
  function expected(m: Model, step: Step, b: Record<string, unknown>): string {
    const a = POLICY_ACTORS[step.actor];
    if (a.tenantId !== TENANT) return 'not_found';
    const roles = {
      'review-complete': ['agent', 'orchestrator'],
      aggregate: ['agent', 'orchestrator'],
      verify: ['orchestrator'],
      report: ['agent', 'orchestrator'],
    }[step.action];
    if (!roles.includes(a.role)) return 'forbidden';
    if (m.verified) return 'invalid_transition';
    const implementer = a.agentId === IMPLEMENTER;
    const i = open(m);
    const named = b.round as string | undefined;
    const namedProblem = () => {
      if (named === undefined) return null;
      if (!m.rounds.some((r) => r.name === named)) return 'unknown_round';
      if (i < 0 || m.rounds[i].name !== named) return 'round_not_current';
      return null;
    };
    const stale = step.staleArtifact;
    switch (step.action) {
      case 'report':
        return implementer ? 'self_report_blocked' : 'ok';
      case 'review-complete':
        if (implementer) return 'self_review_blocked';
        if (i < 0) return 'invalid_transition';
        if (m.reviewers[i].has(a.agentId)) return 'duplicate_review';
        if (!step.mathRight) return 'findings_math_mismatch';
        return namedProblem() ?? (stale ? 'artifact_mismatch' : 'ok');
      case 'aggregate':
        if (i < 0 || !m.rounds[i].aggregator_required) return 'invalid_transition';
        if (implementer) return 'self_review_blocked';
        if (m.reviewers[i].has(a.agentId)) return 'aggregator_is_reviewer';
        if (!reviewed(m, i)) return 'round_incomplete';
        return namedProblem() ?? (stale ? 'artifact_mismatch' : step.mathRight ? 'ok' : 'findings_math_mismatch');
      case 'verify': {
        if (implementer) return 'self_verify_blocked';
        if (iterationReviewers(m).has(a.agentId)) return 'verifier_is_reviewer';
        return i >= 0 ? 'round_incomplete' : 'ok';
      }
    }
  }

  /** What an accepted step does to the model. */
  function advance(m: Model, step: Step, b: Record<string, unknown>): void {
    const a = POLICY_ACTORS[step.actor];
    const i = open(m);
    switch (step.action) {
      case 'review-complete':
        m.reviewers[i].set(a.agentId, { labels: a.labels, findings: step.findings });
        return;
      case 'aggregate':
        m.aggregator[i] = a.agentId;
        return;
      case 'verify':
        m.verified = true;
        return;
      case 'report': {
        // The open round starts again; with every round complete, the last round's sign-off does.
        const last = m.rounds.length - 1;
        const voidedRound = i >= 0 ? i : m.rounds[last].aggregator_required ? null : last;
        if (voidedRound === null) {
          if (m.aggregator[last]) m.voided.add(m.aggregator[last]);
          m.aggregator[last] = null;
        } else {
          for (const id of m.reviewers[voidedRound].keys()) m.voided.add(id);
          m.reviewers[voidedRound] = new Map();
        }
        m.artifact = ((b.artifact as { path: string }).path ?? '').toLowerCase();
        return;
      }
    }
  }

  const roundArb = fc.record({
    min_reviewers: fc.integer({ min: 1, max: 4 }),
    required_labels: fc.subarray(LABELS, { maxLength: 2 }),
    aggregator_required: fc.boolean(),
  });
  const policyArb = fc
    .array(roundArb, { minLength: 1, maxLength: 3 })
    .map((rounds) => rounds.map((r, i) => ({ name: `round-${i + 1}`, ...r })));
  const stepArb: fc.Arbitrary<Step> = fc.record({
    actor: fc.constantFrom(...Object.keys(POLICY_ACTORS)),
    action: fc.constantFrom('review-complete', 'review-complete', 'review-complete', 'aggregate', 'verify', 'report'),
    round: fc.constantFrom('none', 'none', 'open', 'other', 'unknown'),
    findings: fc.integer({ min: 0, max: 5 }),
    mathRight: fc.integer({ min: 0, max: 9 }).map((n) => n < 8),
    staleArtifact: fc.constantFrom(false, false, false, true),
  });

  function reportedUnder(rounds: Round[], artifact: string): StoryState {
    let s = newStoryState({
      tenantId: TENANT,
      projectId: 'p',
      storyId: 's',
      number: '1.1',
      title: 'Landing page',
      acCount: 2,
      dependsOn: [],
    });
    const go = (actor: unknown, action: Action, b: unknown) => {
      const d = decide(s, actor, action, b);
      if (!d.ok) throw new Error(`${action}: ${d.rejection.code}`);
      s = d.state;
    };
    go(ACTORS.implementer, 'contract', {
      story_title: 'Landing page',
      ac_count: 2,
      review_policy: { version: 3, rounds },
    });
    for (const action of ['claim', 'start', 'request-review'] as const) go(ACTORS.implementer, action, {});
    go(ACTORS.orchestrator, 'report', { artifact: { artifact_type: 'commit', path: artifact } });
    return s;
  }

  it('judges every step of generated pipelines as the contract says, for every caller and action', () => {
    let judged = 0;
    const outcomes = new Set<string>();
    fc.assert(
      fc.property(policyArb, fc.array(stepArb, { minLength: 1, maxLength: 40 }), (rounds, steps) => {
        const m: Model = {
          rounds,
          reviewers: rounds.map(() => new Map()),
          aggregator: rounds.map(() => null),
          voided: new Set(),
          artifact: 'abcdef0123',
          verified: false,
        };
        let state = reportedUnder(rounds, m.artifact);
        for (const step of steps) {
          const b = body(m, step);
          const want = expected(m, step, b);
          const before = structuredClone(state);
          const got = judge(state, POLICY_ACTORS[step.actor], step.action, b);
          expect(state).toEqual(before);
          const code = got.ok ? 'ok' : got.rejection.code;
          expect(code, `${step.actor} ${step.action} ${JSON.stringify(b)} under ${JSON.stringify(rounds)}`).toBe(want);
          judged++;
          outcomes.add(`${step.action}:${code}`);
          if (got.ok) {
            advance(m, step, b);
            state = got.state;
            if (step.action === 'verify') {
              expect(state.verifiedArtifact).toBe(`commit:${m.artifact}`);
            }
          }
          // next_actions offers what the contract allows to this caller now, body aside.
          const offered = availableActions(state, POLICY_ACTORS.orch);
          const i = open(m);
          expect(offered.includes('verify')).toBe(!m.verified && i < 0 && !iterationReviewers(m).has(ORCH));
        }
      }),
      { numRuns: 2000, seed: 19 },
    );
    // The walk reached every refusal the policy adds, and acceptance of every action.
    for (const outcome of [
      'review-complete:ok',
      'review-complete:duplicate_review',
      'review-complete:round_not_current',
      'review-complete:unknown_round',
      'review-complete:artifact_mismatch',
      'review-complete:self_review_blocked',
      'aggregate:ok',
      'aggregate:aggregator_is_reviewer',
      'aggregate:round_incomplete',
      'aggregate:findings_math_mismatch',
      'verify:ok',
      'verify:round_incomplete',
      'verify:verifier_is_reviewer',
      'report:ok',
    ])
      expect(outcomes, outcome).toContain(outcome);
    expect(judged).toBeGreaterThan(10_000);
  });
});
