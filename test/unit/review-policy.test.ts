/**
 * Review policies and artifact identity (src/custody/policy.ts), and the issue's pipeline through
 * the custody rules: 3 reviewers and an aggregation, fixes, 4 reviewers with a security adversary
 * and an aggregation, fixes and a summary, verify; and each refusal on the way.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Action } from '../../src/custody/actions.js';
import { statusOf } from '../../src/custody/errors.js';
import {
  DEFAULT_POLICY,
  EMPTY_PROGRESS,
  artifactKey,
  currentRound,
  fileSetDigest,
  normalisePolicy,
  policyIssues,
  roundStatuses,
  voidForNewArtifact,
  type ReviewPolicy,
  type ReviewProgress,
} from '../../src/custody/policy.js';
import { availableActions, decide, judge, newStoryState, type StoryState } from '../../src/custody/rules.js';

const SHA1 = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const SHA2 = 'b1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const SHA3 = 'c1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const T = 'tenant-1';
const agent = (id: string, labels: string[] = [], role = 'agent') => ({ agentId: id, role, tenantId: T, labels });
const IMPL = agent('impl', ['engineer']);
const BA = agent('ba', ['business-analyst']);
const ARCH = agent('arch', ['architect']);
const ENG = agent('eng', ['engineer']);
const SEC = agent('sec', ['security-adversary']);
const AGG = agent('aggregator', ['architect']);
const ORCH = agent('orch', [], 'orchestrator');

const PIPELINE: ReviewPolicy = {
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

const code = (d: ReturnType<typeof judge>) => (d.ok ? 'ok' : d.rejection.code);

function step(state: StoryState, actor: unknown, action: Action, body: unknown): StoryState {
  const d = judge(state, actor, action, body);
  if (!d.ok) throw new Error(`${action}: ${d.rejection.code} ${d.rejection.message}`);
  return d.state;
}

function reported(policy: ReviewPolicy | null, artifact: unknown = { artifact_type: 'commit', path: SHA1 }) {
  let s = newStoryState({
    tenantId: T,
    projectId: 'p',
    storyId: 's',
    number: '1.1',
    title: 'Checkout',
    acCount: 2,
    dependsOn: [],
  });
  s = step(s, IMPL, 'contract', {
    story_title: 'Checkout',
    ac_count: 2,
    ...(policy ? { review_policy: normalisePolicy(policy, 2) } : {}),
  });
  for (const action of ['claim', 'start', 'request-review'] as const) s = step(s, IMPL, action, {});
  return step(s, ORCH, 'report', { artifact });
}

const review = (findings: number, extra: Record<string, unknown> = {}) => ({
  review_type: 'team',
  findings_count: findings,
  fixes_count: findings,
  disproved_count: 0,
  summary: 'found things',
  ...extra,
});

describe('artifact identity', () => {
  it('is the SHA for a commit, however it is named; a URL beside it does not change it', () => {
    const key = `commit:${SHA1}`;
    for (const named of [
      SHA1,
      SHA1.toUpperCase(),
      { artifact_type: 'commit', path: SHA1 },
      { artifact_type: 'commit', path: SHA1, url: 'https://example.test/c/1' },
      { sha: SHA1 },
      { commit: SHA1, url: 'https://example.test/c/1' },
    ])
      expect(artifactKey(named), JSON.stringify(named)).toBe(key);
    expect(artifactKey({ artifact_type: 'commit', path: SHA2 })).not.toBe(key);
  });

  it('is the digest of a set of files, in any order, or the digest it names', () => {
    const files = [
      { path: 'src/a.ts', sha256: 'a'.repeat(64) },
      { path: 'src/b.ts', sha256: 'b'.repeat(64) },
    ];
    const expected = createHash('sha256')
      .update(`src/a.ts\u0000${'a'.repeat(64)}\nsrc/b.ts\u0000${'b'.repeat(64)}\n`)
      .digest('hex');
    expect(fileSetDigest(files)).toBe(expected);
    expect(fileSetDigest([...files].reverse())).toBe(expected);
    expect(artifactKey({ files })).toBe(`files:sha256:${expected}`);
    expect(artifactKey({ digest: `sha256:${expected}`, url: 'https://x.test' })).toBe(`files:sha256:${expected}`);
    expect(artifactKey(`sha256:${expected}`)).toBe(`files:sha256:${expected}`);
    expect(artifactKey({ files: [files[0]] })).not.toBe(`files:sha256:${expected}`);
  });

  it("is itself for anything else (loopctl's {artifact_type, path}, a branch), key order aside", () => {
    expect(artifactKey({ artifact_type: 'pr', path: 'https://example.test/pr/1' })).toBe(
      artifactKey({ path: 'https://example.test/pr/1', artifact_type: 'pr' }),
    );
    expect(artifactKey('main')).toBe('text:main');
    expect(artifactKey('main')).not.toBe(artifactKey({ path: 'main' }));
    // Identities stay short: a long text or a large object is known by its digest.
    const large = { blob: 'y'.repeat(240_000) };
    expect(artifactKey(large)).toMatch(/^json:sha256:[0-9a-f]{64}$/);
    expect(artifactKey({ ...large })).toBe(artifactKey(large));
    expect(artifactKey('z'.repeat(201))).toMatch(/^text:sha256:[0-9a-f]{64}$/);
    expect(artifactKey(null)).toBeNull();
    expect(artifactKey(undefined)).toBeNull();
  });
});

describe('policy shape', () => {
  it('accepts the pipeline and the default, and says what is wrong with bad ones', () => {
    expect(policyIssues(PIPELINE)).toEqual([]);
    expect(policyIssues(DEFAULT_POLICY)).toEqual([]);
    const bad: [unknown, string][] = [
      [null, ''],
      [{ rounds: [] }, 'rounds'],
      [{ rounds: Array.from({ length: 11 }, (_, i) => ({ ...PIPELINE.rounds[1], name: `r${i}` })) }, 'rounds'],
      [{ rounds: [{ ...PIPELINE.rounds[0], name: 'Team Review' }] }, 'rounds.0.name'],
      [{ rounds: [PIPELINE.rounds[0], PIPELINE.rounds[0]] }, 'rounds.1.name'],
      [{ rounds: [{ ...PIPELINE.rounds[0], min_reviewers: 0 }] }, 'rounds.0.min_reviewers'],
      [{ rounds: [{ ...PIPELINE.rounds[0], min_reviewers: 2.5 }] }, 'rounds.0.min_reviewers'],
      [{ rounds: [{ ...PIPELINE.rounds[0], required_labels: ['x', 'x'] }] }, 'rounds.0.required_labels'],
      [{ rounds: [{ ...PIPELINE.rounds[0], aggregator_required: 'yes' }] }, 'rounds.0.aggregator_required'],
      [{ rounds: [{ ...PIPELINE.rounds[0], deadline_seconds: 0 }] }, 'rounds.0.deadline_seconds'],
      [{ rounds: [{ ...PIPELINE.rounds[0], reviewers: ['a'] }] }, 'rounds.0.reviewers'],
      [{ ...PIPELINE, owner: 'me' }, 'owner'],
    ];
    for (const [policy, path] of bad) expect(policyIssues(policy).map((i) => i.path)).toContain(path);
  });

  it('normalises labels in order, keeping everything else', () => {
    const pinned = normalisePolicy(
      { rounds: [{ ...PIPELINE.rounds[0], required_labels: ['engineer', 'architect'], deadline_seconds: 60 }] },
      7,
    );
    expect(pinned).toEqual({
      version: 7,
      rounds: [
        {
          name: 'team',
          min_reviewers: 3,
          required_labels: ['architect', 'engineer'],
          aggregator_required: true,
          deadline_seconds: 60,
        },
      ],
    });
  });
});

describe('rounds: completeness and findings math', () => {
  const entry = (round: string, id: string, labels: string[], findings: number) => ({
    round,
    reviewer_agent_id: id,
    reviewer_labels: labels,
    review_type: 't',
    findings_count: findings,
    fixes_count: findings,
    disproved_count: 0,
    summary: '',
    artifact_key: null,
  });

  it('needs distinct reviewers, every label and the sign-off, in order', () => {
    let progress: ReviewProgress = EMPTY_PROGRESS;
    expect(currentRound(PIPELINE, progress)?.name).toBe('team');
    progress = {
      ...progress,
      reviews: [entry('team', 'ba', ['business-analyst'], 2), entry('team', 'arch', ['architect'], 1)],
    };
    expect(roundStatuses(PIPELINE, progress)[0]).toMatchObject({
      missing_reviewers: 1,
      missing_labels: ['engineer'],
      complete: false,
      findings_count: 3,
    });
    progress = { ...progress, reviews: [...progress.reviews, entry('team', 'plain', [], 0)] };
    expect(roundStatuses(PIPELINE, progress)[0]).toMatchObject({ missing_reviewers: 0, missing_labels: ['engineer'] });
    progress = { ...progress, reviews: [...progress.reviews, entry('team', 'eng', ['engineer'], 4)] };
    const team = roundStatuses(PIPELINE, progress)[0];
    expect(team).toMatchObject({ missing_labels: [], complete: false, findings_count: 7, fixes_count: 7 });
    progress = {
      ...progress,
      aggregations: [
        {
          round: 'team',
          aggregator_agent_id: 'agg',
          findings_count: 7,
          fixes_count: 5,
          disproved_count: 2,
          summary: 's',
          artifact_key: null,
        },
      ],
    };
    expect(roundStatuses(PIPELINE, progress)[0].complete).toBe(true);
    expect(currentRound(PIPELINE, progress)?.name).toBe('adversarial');
  });

  it('a new artifact voids the open round; with every round complete, the last sign-off', () => {
    const policy = { rounds: [{ name: 'only', min_reviewers: 1, required_labels: [], aggregator_required: false }] };
    const done: ReviewProgress = { reviews: [entry('only', 'r', [], 0)], aggregations: [] };
    expect(currentRound(policy, done)).toBeNull();
    const voided = voidForNewArtifact(policy, done);
    expect(voided.reviews[0].voided).toBe(true);
    expect(currentRound(policy, voided)?.name).toBe('only');
  });
});

describe('the pipeline under a policy (issue 19)', () => {
  it('runs 3 reviewers + aggregation, fixes, 4 reviewers + aggregation, fixes and a summary, verify', () => {
    let s = reported(PIPELINE);
    expect(s.reviewPolicy).toEqual(normalisePolicy(PIPELINE, 2));
    // Round 1: the team.
    s = step(s, BA, 'review-complete', review(2));
    s = step(s, ARCH, 'review-complete', review(1, { round: 'team' }));
    expect(code(judge(s, AGG, 'aggregate', { summary: 'x', findings_count: 3, fixes_count: 3 }))).toBe(
      'round_incomplete',
    );
    // A review of a stale artifact.
    expect(code(judge(s, ENG, 'review-complete', review(0, { artifact: SHA2 })))).toBe('artifact_mismatch');
    s = step(s, ENG, 'review-complete', review(1, { artifact: SHA1 }));
    // A reviewer reviewing twice in one round.
    expect(code(judge(s, ARCH, 'review-complete', review(0)))).toBe('duplicate_review');
    // An implementer reviewing.
    expect(code(judge(s, IMPL, 'review-complete', review(0)))).toBe('self_review_blocked');
    // An aggregator who reviewed its own round.
    expect(code(judge(s, ARCH, 'aggregate', { summary: 'x', findings_count: 4, fixes_count: 4 }))).toBe(
      'aggregator_is_reviewer',
    );
    // The round's findings math: 4 found by the reviewers.
    expect(code(judge(s, AGG, 'aggregate', { summary: 'x', findings_count: 3, fixes_count: 3 }))).toBe(
      'findings_math_mismatch',
    );
    expect(code(judge(s, AGG, 'aggregate', { summary: 'x', findings_count: 4, fixes_count: 3 }))).toBe(
      'findings_math_mismatch',
    );
    expect(code(judge(s, ORCH, 'verify', {}))).toBe('round_incomplete');
    s = step(s, AGG, 'aggregate', {
      summary: '3 fixed, 1 disproved',
      findings_count: 4,
      fixes_count: 3,
      disproved_count: 1,
    });
    // Fixes: a new commit, reported; round 2 is open.
    s = step(s, ORCH, 'report', { artifact: { artifact_type: 'commit', path: SHA2 } });
    expect(code(judge(s, BA, 'review-complete', review(0, { round: 'team' })))).toBe('round_not_current');
    expect(code(judge(s, BA, 'review-complete', review(0, { round: 'security' })))).toBe('unknown_round');
    expect(code(judge(s, BA, 'review-complete', review(0, { artifact: SHA1 })))).toBe('artifact_mismatch');
    for (const reviewer of [BA, ARCH, ENG]) s = step(s, reviewer, 'review-complete', review(1));
    // Verify before the second round is complete.
    const early = judge(s, ORCH, 'verify', {});
    expect(early.ok ? null : statusOf(early.rejection.code)).toBe(409);
    expect(early.ok ? null : early.rejection).toMatchObject({
      code: 'round_incomplete',
      context: { round: 'adversarial', missing_reviewers: 1, missing_labels: ['security-adversary'] },
    });
    s = step(s, SEC, 'review-complete', review(2));
    s = step(s, AGG, 'aggregate', { summary: 'all five fixed', findings_count: 5, fixes_count: 5 });
    expect(availableActions(s, ORCH)).toContain('verify');
    // Fixes and a summary: the new commit reopens the last sign-off.
    s = step(s, ORCH, 'report', { artifact: { artifact_type: 'commit', path: SHA3 } });
    expect(code(judge(s, ORCH, 'verify', {}))).toBe('round_incomplete');
    expect(code(judge(s, SEC, 'review-complete', review(0)))).toBe('duplicate_review');
    s = step(s, AGG, 'aggregate', { summary: 'fixes in', findings_count: 5, fixes_count: 5, artifact: SHA3 });
    // Nobody who reviewed or signed verifies.
    expect(code(judge(s, { ...AGG, role: 'orchestrator' }, 'verify', {}))).toBe('verifier_is_reviewer');
    s = step(s, ORCH, 'verify', { summary: 'done' });
    expect(s).toMatchObject({ verifiedStatus: 'verified', verifiedArtifact: `commit:${SHA3}` });
  });

  it('the default policy, pinned, is the single review custody always had; a new report voids it', () => {
    let s = reported(DEFAULT_POLICY);
    expect(code(judge(s, ORCH, 'verify', {}))).toBe('round_incomplete');
    s = step(s, BA, 'review-complete', review(0));
    expect(code(judge(s, ARCH, 'review-complete', review(0)))).toBe('invalid_transition');
    expect(code(judge(s, BA, 'aggregate', { summary: 'x' }))).toBe('invalid_transition');
    const reReported = step(s, ORCH, 'report', { artifact: SHA2 });
    expect(code(judge(reReported, ORCH, 'verify', {}))).toBe('round_incomplete');
    expect(step(s, ORCH, 'verify', {})).toMatchObject({
      verifiedStatus: 'verified',
      verifiedArtifact: `commit:${SHA1}`,
    });
  });

  it('a reviewer or signer whose work a new report voided is still a reviewer of the iteration: no verify', () => {
    const REVIEWING_ORCH = agent('orch-reviewer', ['architect'], 'orchestrator');
    // The default policy: the single review, voided by a new artifact, then reviewed again by another.
    let s = step(reported(DEFAULT_POLICY), REVIEWING_ORCH, 'review-complete', review(0));
    s = step(s, ORCH, 'report', { artifact: SHA2 });
    s = step(s, BA, 'review-complete', review(0));
    expect(code(judge(s, REVIEWING_ORCH, 'verify', {}))).toBe('verifier_is_reviewer');
    expect(availableActions(s, REVIEWING_ORCH)).not.toContain('verify');
    expect(step(s, ORCH, 'verify', {}).verifiedStatus).toBe('verified');
    // A sign-off voided by a re-report after every round was complete.
    const signed: ReviewPolicy = {
      rounds: [{ name: 'team', min_reviewers: 1, required_labels: [], aggregator_required: true }],
    };
    let p = step(reported(signed), BA, 'review-complete', review(0));
    p = step(p, REVIEWING_ORCH, 'aggregate', { summary: 'fine', findings_count: 0 });
    p = step(p, ORCH, 'report', { artifact: SHA3 });
    p = step(p, AGG, 'aggregate', { summary: 'fine again', findings_count: 0 });
    expect(code(judge(p, REVIEWING_ORCH, 'verify', {}))).toBe('verifier_is_reviewer');
    expect(step(p, ORCH, 'verify', {}).verifiedStatus).toBe('verified');
  });

  it('a reviewer whose review of the round a new report voided may not sign that round', () => {
    const REVIEWING_ORCH = agent('orch-reviewer', [], 'orchestrator');
    const signed: ReviewPolicy = {
      rounds: [{ name: 'team', min_reviewers: 1, required_labels: [], aggregator_required: true }],
    };
    let p = step(reported(signed), REVIEWING_ORCH, 'review-complete', review(0));
    p = step(p, ORCH, 'report', { artifact: SHA3 });
    p = step(p, BA, 'review-complete', review(0));
    expect(code(judge(p, REVIEWING_ORCH, 'aggregate', { summary: 'fine', findings_count: 0 }))).toBe(
      'aggregator_is_reviewer',
    );
    expect(availableActions(p, REVIEWING_ORCH)).not.toContain('aggregate');
    // Histories from before the rule replay as they ran: the handler's rules accept it.
    expect(decide(p, REVIEWING_ORCH, 'aggregate', { summary: 'fine', findings_count: 0 }).ok).toBe(true);
    expect(step(p, AGG, 'aggregate', { summary: 'fine', findings_count: 0 }).agentStatus).toBe('reported_done');
  });

  it('without a policy a review cannot be voided: one report and one review per iteration', () => {
    const REVIEWING_ORCH = agent('orch-reviewer', [], 'orchestrator');
    const s = step(reported(null), REVIEWING_ORCH, 'review-complete', review(0));
    expect(code(judge(s, ORCH, 'report', { artifact: SHA2 }))).toBe('invalid_transition');
    expect(code(judge(s, BA, 'review-complete', review(0)))).toBe('invalid_transition');
    expect(code(judge(s, REVIEWING_ORCH, 'verify', {}))).toBe('verifier_is_reviewer');
  });

  it('without a policy nothing changes: no second report, no aggregation', () => {
    const s = reported(null);
    expect(s.reviewPolicy).toBeUndefined();
    expect(code(judge(s, ORCH, 'report', { artifact: SHA2 }))).toBe('invalid_transition');
    expect(code(judge(s, BA, 'aggregate', { summary: 'x' }))).toBe('invalid_transition');
    const reviewed = step(s, BA, 'review-complete', review(0));
    expect(step(reviewed, ORCH, 'verify', {}).verifiedArtifact).toBe(`commit:${SHA1}`);
  });

  it('a verify that names an artifact names the reviewed one (409 artifact_mismatch), by identity', () => {
    for (const policy of [null, DEFAULT_POLICY]) {
      const reviewed = step(reported(policy), BA, 'review-complete', review(0));
      const other = judge(reviewed, ORCH, 'verify', { artifact: SHA2 });
      expect(code(other)).toBe('artifact_mismatch');
      expect(statusOf('artifact_mismatch')).toBe(409);
      const named = { artifact_type: 'commit', path: SHA1.toUpperCase() };
      expect(step(reviewed, ORCH, 'verify', { artifact: named }).verifiedArtifact).toBe(`commit:${SHA1}`);
    }
  });

  it('an iteration keeps its policy; the next contract pins the one of its day', () => {
    let s = reported(PIPELINE);
    s = step(s, ORCH, 'reject', { reason: 'wrong feature' });
    expect(s.reviewProgress).toBeNull();
    const again = step(s, IMPL, 'contract', { story_title: 'Checkout', ac_count: 2 });
    expect(again.reviewPolicy).toBeNull();
    const pinned = step(s, IMPL, 'contract', {
      story_title: 'Checkout',
      ac_count: 2,
      review_policy: normalisePolicy(DEFAULT_POLICY, 5),
    });
    expect(pinned.reviewPolicy?.version).toBe(5);
  });

  it('refuses a policy of the wrong shape in a contract (the gateway sets it; nobody else reaches it)', () => {
    const s = newStoryState({
      tenantId: T,
      projectId: 'p',
      storyId: 's',
      number: '1',
      title: 'a',
      acCount: 0,
      dependsOn: [],
    });
    for (const review_policy of [{ rounds: [] }, { rounds: PIPELINE.rounds }, 'default'])
      expect(code(judge(s, IMPL, 'contract', { story_title: 'a', ac_count: 0, review_policy }))).toBe('invalid_body');
  });
});
