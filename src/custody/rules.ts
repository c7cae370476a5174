/**
 * The custody rules: a pure function of (story state, actor, action, body) that either accepts
 * the action, with the story's next state, or rejects it with a stable code. No Temporal, no I/O:
 * the workflow's update validators call it, and so do its handlers, so a rule lives in one place.
 */
import {
  ACTIONS,
  ACTION_RULES,
  ROLES,
  isAction,
  type Action,
  type ActionRule,
  type VerifiedStatus,
  type AgentStatus,
} from './actions.js';
import { bodyShapeIssues } from './body-shape.js';
import { unstorableTextPath } from './storable-text.js';
import type { ErrorCode } from './errors.js';
import type { SignedActor } from './actor.js';
import {
  EMPTY_PROGRESS,
  aggregationMathProblem,
  aggregationStanding,
  artifactKey,
  currentRound,
  iterationReviewers,
  reviewStanding,
  voidForNewArtifact,
  type PinnedPolicy,
  type ReviewProgress,
  type ReviewRefusal,
} from './policy.js';

export interface ReviewRecord {
  reviewer_agent_id: string;
  review_type: string;
  findings_count: number;
  fixes_count: number;
  disproved_count: number;
  summary: string;
  iteration: number;
  /** The reported artifact this review is of (null when the report named none). */
  artifact?: unknown;
}

export interface DependencyStatus {
  verified: boolean;
  /** The dependency's own transition sequence when this was true; older news never overwrites newer. */
  seq: number;
}

export interface StoryState {
  tenantId: string;
  projectId: string;
  storyId: string;
  number: string;
  title: string;
  acCount: number;
  agentStatus: AgentStatus;
  verifiedStatus: VerifiedStatus;
  assignedAgentId: string | null;
  /** Every agent that has held this story, in any iteration: none of them may report, review or verify it. */
  implementerAgentIds: string[];
  reportedByAgentId: string | null;
  reviewerAgentId: string | null;
  verifiedByAgentId: string | null;
  iteration: number;
  /** The latest review; it counts for the current iteration only when its iteration matches. */
  review: ReviewRecord | null;
  dependencies: Record<string, DependencyStatus>;
  /** What the latest report named (a string or an object); absent in states from before it was kept. */
  artifact?: unknown;
  /** Verified by `backfill` (work done before custody), not through the lifecycle. */
  backfilled?: boolean;
  /** Withdrawn while pending (`DELETE /stories/:id`): it takes no action any more. */
  deleted?: boolean;
  /**
   * The review policy this iteration runs under, pinned by its contract (the project's policy then).
   * Absent or null: the story has no policy of its own and is reviewed once, as custody always did.
   */
  reviewPolicy?: PinnedPolicy | null;
  /** The reviews and sign-offs of this iteration's rounds (with a policy only). */
  reviewProgress?: ReviewProgress | null;
  /** The identity of the artifact verified (`artifactKey`), once verified. */
  verifiedArtifact?: string | null;
}

/** A story whose iteration runs under a policy its contract pinned. */
export function policyOf(state: StoryState): PinnedPolicy | null {
  return state.reviewPolicy ?? null;
}

/**
 * The review round a story waits on (reported, not verified, under a policy with a round open):
 * what its deadline is measured for and what `story.stalled` names.
 */
export function openRoundOf(state: StoryState): { name: string; deadlineMs: number | null } | null {
  const policy = policyOf(state);
  if (policy === null || state.agentStatus !== 'reported_done' || state.verifiedStatus === 'verified') return null;
  const open = currentRound(policy, progressOf(state));
  if (open === null) return null;
  const seconds = policy.rounds[open.index].deadline_seconds;
  return { name: open.name, deadlineMs: seconds === undefined ? null : seconds * 1000 };
}

function progressOf(state: StoryState): ReviewProgress {
  return state.reviewProgress ?? EMPTY_PROGRESS;
}

/** A refusal by the rules: a code of the error table (src/custody/errors.ts decides its status). */
export interface Rejection {
  code: ErrorCode;
  message: string;
  context: Record<string, unknown>;
}

/** What time alone does to a story (no caller): an expired claim lease, a stall. */
export type TimedEvent = 'lease-expired' | 'stalled';

export interface Transition {
  action: Action | TimedEvent;
  from: { agent_status: AgentStatus; verified_status: VerifiedStatus };
  to: { agent_status: AgentStatus; verified_status: VerifiedStatus };
  iteration: number;
}

export type Decision = { ok: true; state: StoryState; transition: Transition } | { ok: false; rejection: Rejection };

export function newStoryState(facts: {
  tenantId: string;
  projectId: string;
  storyId: string;
  number: string;
  title: string;
  acCount: number;
  dependsOn: readonly string[];
}): StoryState {
  return {
    tenantId: facts.tenantId,
    projectId: facts.projectId,
    storyId: facts.storyId,
    number: facts.number,
    title: facts.title,
    acCount: facts.acCount,
    agentStatus: 'pending',
    verifiedStatus: 'unverified',
    assignedAgentId: null,
    implementerAgentIds: [],
    reportedByAgentId: null,
    reviewerAgentId: null,
    verifiedByAgentId: null,
    iteration: 1,
    review: null,
    dependencies: Object.fromEntries(facts.dependsOn.map((id) => [id, { verified: false, seq: 0 }])),
    artifact: null,
    backfilled: false,
    deleted: false,
  };
}

function reject(code: ErrorCode, message: string, context: Record<string, unknown> = {}): Decision {
  return { ok: false, rejection: { code, message, context } };
}

const NOT_VERIFIED: readonly VerifiedStatus[] = ['unverified', 'rejected'];

function validActor(actor: unknown): actor is SignedActor {
  if (typeof actor !== 'object' || actor === null) return false;
  const a = actor as Record<string, unknown>;
  return (
    typeof a.agentId === 'string' &&
    a.agentId.length > 0 &&
    typeof a.tenantId === 'string' &&
    a.tenantId.length > 0 &&
    typeof a.role === 'string' &&
    (ROLES as readonly string[]).includes(a.role)
  );
}

/**
 * Blank as `decide` has always judged it (whitespace only). It stays so because `decide` runs again
 * on replay; the stricter test (`lacksLetterOrDigit`) runs in the update validator only.
 */
function isBlank(value: string | undefined): boolean {
  return value === undefined || value.trim().length === 0;
}

/** Text that must not be blank holds at least one letter or digit: "\u200b" or "--" is blank. */
export function lacksLetterOrDigit(value: string | undefined): boolean {
  return value === undefined || !/[\p{L}\p{N}]/u.test(value);
}

/**
 * Refuses reasons, review types and summaries with no letter or digit (invisible or punctuation-only
 * text). Apart from `decide`, like `checkStorableBody`: histories that accepted such text before
 * this check existed must replay as they ran, so it runs in the update validator only.
 */
export function checkMeaningfulText(action: unknown, body: unknown): Rejection | null {
  const data = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  // Text that is given but blank; whether it may be absent is `decide`'s and the schema's call.
  const blank = (key: string) => typeof data[key] === 'string' && lacksLetterOrDigit(data[key]);
  switch (action) {
    case 'review-complete':
      if (blank('review_type') || blank('summary'))
        return rejectionOf('review_required', 'A review type and a summary must hold a letter or digit.');
      return null;
    case 'aggregate':
      if (blank('summary')) return rejectionOf('review_required', "A round's summary must hold a letter or digit.");
      return null;
    case 'reject':
    case 'force-unclaim':
    case 'backfill':
      if (blank('reason')) return rejectionOf('reason_required', `A ${action} needs a reason with a letter or digit.`);
      return null;
    default:
      return null;
  }
}

export function hasReviewThisIteration(state: StoryState): boolean {
  return state.review !== null && state.review.iteration === state.iteration;
}

/**
 * Checks who may act and from which state, without looking at the body. `next_actions` uses this
 * alone; `decide` adds the body checks.
 */
function checkStanding(state: StoryState, actor: unknown, action: unknown, rules: RuleSet): Rejection | null {
  if (!validActor(actor)) {
    return rejectionOf('unauthorized', 'The caller has no valid identity.');
  }
  if (actor.tenantId !== state.tenantId) {
    // Another tenant's story is indistinguishable from a missing one.
    return rejectionOf('not_found', 'Story not found.');
  }
  if (!isAction(action)) {
    return rejectionOf('not_found', 'Unknown action.');
  }
  if (state.deleted === true) {
    return rejectionOf('not_found', 'Story not found.');
  }
  const rule: ActionRule = ACTION_RULES[action];
  if (!rule.roles.includes(actor.role)) {
    return rejectionOf('forbidden', `The ${actor.role} role may not ${action} a story.`, {
      role: actor.role,
      allowed_roles: rule.roles,
    });
  }
  const verifiedOk = (rule.fromVerified ?? NOT_VERIFIED).includes(state.verifiedStatus);
  // Under a policy a story reported done may be reported again (fixes: a new artifact, same iteration).
  const from: readonly AgentStatus[] =
    action === 'report' && policyOf(state) !== null ? [...rule.from, 'reported_done'] : rule.from;
  if (!from.includes(state.agentStatus) || !verifiedOk) {
    if (rule.outOfStateCode) {
      return rejectionOf(rule.outOfStateCode, `Only a pending story may be changed; this one is ${describe(state)}.`, {
        current_agent_status: state.agentStatus,
        current_verified_status: state.verifiedStatus,
        attempted_action: action,
      });
    }
    return rejectionOf('invalid_transition', `Cannot ${action} a story that is ${describe(state)}.`, {
      current_agent_status: state.agentStatus,
      current_verified_status: state.verifiedStatus,
      attempted_action: action,
    });
  }
  return ACTION_GUARDS[action]?.(state, actor, action, rules) ?? null;
}

/**
 * `replayed`: the rules the workflow's handler runs, also when a history replays, so they must
 * decide as they did when that history was written. `current`: those and the rules that came
 * later, judged where nothing replays (the update validator, `next_actions`, the worker).
 */
type RuleSet = 'replayed' | 'current';

/** What an action checks of the caller and the story beyond roles and states (none: no guard). */
type Guard = (state: StoryState, actor: SignedActor, action: Action, rules: RuleSet) => Rejection | null;

const assigneeOnly: Guard = (state, actor, action) =>
  state.assignedAgentId !== actor.agentId
    ? rejectionOf('not_assigned_agent', `Only the assigned agent may ${action} this story.`)
    : null;

const isImplementer = (state: StoryState, actor: SignedActor) => state.implementerAgentIds.includes(actor.agentId);

export const ACTION_GUARDS: Partial<Record<Action, Guard>> = {
  claim: (state) => {
    const unmet = Object.entries(state.dependencies)
      .filter(([, dep]) => !dep.verified)
      .map(([id]) => id);
    if (unmet.length > 0) {
      return rejectionOf(
        'dependencies_not_met',
        'Every dependency must be verified before this story can be claimed.',
        {
          unverified_dependencies: unmet,
        },
      );
    }
    return null;
  },
  start: assigneeOnly,
  'request-review': assigneeOnly,
  unclaim: assigneeOnly,
  report: (state, actor) =>
    isImplementer(state, actor)
      ? rejectionOf('self_report_blocked', 'The implementer of a story may not report it done; another agent must.', {
          implementer_agent_id: actor.agentId,
        })
      : null,
  'review-complete': (state, actor, action) => {
    if (isImplementer(state, actor)) {
      return rejectionOf('self_review_blocked', 'The implementer of a story may not review it.', {
        implementer_agent_id: actor.agentId,
      });
    }
    if (policyOf(state) !== null) return reviewRefusal(state, actor, action, undefined);
    if (hasReviewThisIteration(state)) {
      return rejectionOf('invalid_transition', 'This iteration has already been reviewed.', {
        current_agent_status: state.agentStatus,
        current_verified_status: state.verifiedStatus,
        attempted_action: action,
      });
    }
    return null;
  },
  aggregate: (state, actor, _action, rules) => aggregationRefusal(state, actor, undefined, rules),
  verify: (state, actor, _action, rules) => {
    if (isImplementer(state, actor)) {
      return rejectionOf('self_verify_blocked', 'The implementer of a story may not verify it.', {
        implementer_agent_id: actor.agentId,
      });
    }
    if (policyOf(state) !== null) return verifyRefusal(state, actor, rules);
    if (hasReviewThisIteration(state) && state.review!.reviewer_agent_id === actor.agentId) {
      return rejectionOf(
        'verifier_is_reviewer',
        'The reviewer of a story may not also verify it; verify with a key of another agent.',
        { reviewer_agent_id: actor.agentId },
      );
    }
    if (!hasReviewThisIteration(state)) {
      return rejectionOf(
        'review_required',
        'A story must be reviewed (review-complete) in this iteration before it is verified.',
        { iteration: state.iteration },
      );
    }
    return null;
  },
  // Backfill attests work done before custody: a story that anyone claimed (or that was ever
  // rejected, so went through custody) cannot have its history laundered into `verified`.
  backfill: (state, _actor, action) =>
    state.implementerAgentIds.length > 0 || state.iteration > 1 || state.reportedByAgentId !== null
      ? rejectionOf('invalid_transition', 'Only a story that was never claimed may be backfilled.', {
          current_agent_status: state.agentStatus,
          current_verified_status: state.verifiedStatus,
          attempted_action: action,
        })
      : null,
};

function rejectionOf(code: ErrorCode, message: string, context: Record<string, unknown> = {}): Rejection {
  return { code, message, context };
}

function wrongState(state: StoryState, action: string, message: string): Rejection {
  return rejectionOf('invalid_transition', message, {
    current_agent_status: state.agentStatus,
    current_verified_status: state.verifiedStatus,
    attempted_action: action,
  });
}

/** A policy's refusal in the error vocabulary. */
function policyRejection(state: StoryState, action: string, refusal: ReviewRefusal, agentId: string): Rejection {
  switch (refusal.code) {
    case 'self_review_blocked':
      return rejectionOf('self_review_blocked', 'The implementer of a story may not review it.', {
        implementer_agent_id: agentId,
      });
    case 'duplicate_review':
      return rejectionOf('duplicate_review', `You already reviewed round ${refusal.round}; another reviewer must.`, {
        round: refusal.round,
        reviewer_agent_id: agentId,
      });
    case 'aggregator_is_reviewer':
      return rejectionOf(
        'aggregator_is_reviewer',
        `You reviewed round ${refusal.round}; its summary must be signed by an agent who did not.`,
        { round: refusal.round, reviewer_agent_id: agentId },
      );
    case 'unknown_round':
      return rejectionOf('unknown_round', `The review policy has no round ${refusal.round}.`, {
        round: refusal.round,
        rounds: policyOf(state)?.rounds.map((r) => r.name) ?? [],
      });
    case 'round_not_current':
      if (refusal.current === null && refusal.round === '')
        return wrongState(state, action, 'Every review round of this iteration is complete.');
      return rejectionOf('round_not_current', `Round ${refusal.round} is not the round now open.`, {
        round: refusal.round,
        current_round: refusal.current,
      });
    case 'round_incomplete':
      return rejectionOf('round_incomplete', `Round ${refusal.round} does not have its reviewers yet.`, {
        round: refusal.round,
        missing_reviewers: refusal.missing_reviewers,
        missing_labels: refusal.missing_labels,
      });
    case 'aggregation_not_required':
      return wrongState(
        state,
        action,
        refusal.round === null
          ? 'Every review round of this iteration is complete.'
          : `Round ${refusal.round} is not signed by an aggregator.`,
      );
  }
}

function reviewRefusal(
  state: StoryState,
  actor: SignedActor,
  action: string,
  round: string | undefined,
): Rejection | null {
  const implementer = state.implementerAgentIds.includes(actor.agentId);
  const standing = reviewStanding(
    policyOf(state)!,
    progressOf(state),
    { agentId: actor.agentId, isImplementer: implementer },
    round,
  );
  return 'code' in standing ? policyRejection(state, action, standing, actor.agentId) : null;
}

/**
 * Who may sign the open round. A reviewer whose review of the round a new report voided read the
 * round's work all the same, so may not sign it either (the current rules; histories from before
 * them accepted such a sign-off and replay so).
 */
function aggregationRefusal(
  state: StoryState,
  actor: SignedActor,
  round: string | undefined,
  rules: RuleSet = 'replayed',
): Rejection | null {
  const policy = policyOf(state);
  if (policy === null) return wrongState(state, 'aggregate', 'This story has no review round an aggregator signs.');
  const implementer = state.implementerAgentIds.includes(actor.agentId);
  const progress = progressOf(state);
  const standing = aggregationStanding(policy, progress, { agentId: actor.agentId, isImplementer: implementer }, round);
  if ('code' in standing) return policyRejection(state, 'aggregate', standing, actor.agentId);
  const readTheRound = progress.reviews.some(
    (r) => r.round === standing.round.name && r.voided === true && r.reviewer_agent_id === actor.agentId,
  );
  if (rules === 'current' && readTheRound) {
    const refusal = { code: 'aggregator_is_reviewer', round: standing.round.name } as const;
    return policyRejection(state, 'aggregate', refusal, actor.agentId);
  }
  return null;
}

/**
 * Under a policy: nobody who reviewed or signed a round verifies, and only once every round is
 * complete. A review or sign-off a new report voided still makes its author a reviewer of the
 * iteration (the current rules; histories from before them accepted such a verify and replay so).
 */
function verifyRefusal(state: StoryState, actor: SignedActor, rules: RuleSet): Rejection | null {
  const policy = policyOf(state)!;
  const progress = progressOf(state);
  if (iterationReviewers(progress, { voided: rules === 'current' }).includes(actor.agentId)) {
    return rejectionOf(
      'verifier_is_reviewer',
      'A reviewer or aggregator of a story may not also verify it; verify with a key of another agent.',
      { reviewer_agent_id: actor.agentId },
    );
  }
  const open = currentRound(policy, progress);
  if (open !== null) {
    return rejectionOf('round_incomplete', `Round ${open.name} of the review policy is not complete.`, {
      round: open.name,
      missing_reviewers: open.missing_reviewers,
      missing_labels: open.missing_labels,
      aggregator_required: open.aggregator_required,
      aggregated: open.aggregated_by !== null,
      policy_version: policy.version,
    });
  }
  return null;
}

function labelsOf(actor: SignedActor): string[] {
  return Array.isArray(actor.labels) ? [...new Set(actor.labels.filter((l) => typeof l === 'string'))].sort() : [];
}

/**
 * A review, sign-off or verify that names an artifact must name the one reported, which is the one
 * every counting review is of (by identity: see `artifactKey`).
 */
function artifactMismatch(state: StoryState, named: unknown, action: 'review' | 'verify' = 'review'): Rejection | null {
  if (named === undefined || artifactKey(named) === artifactKey(state.artifact ?? null)) return null;
  return rejectionOf(
    'artifact_mismatch',
    action === 'verify'
      ? 'The verify names another artifact than the one reported and reviewed.'
      : 'The review names another artifact than the one reported.',
    action === 'verify'
      ? { reported_artifact: state.artifact ?? null, named_artifact: named }
      : { reported_artifact: state.artifact ?? null, reviewed_artifact: named },
  );
}

function describe(state: StoryState): string {
  return state.verifiedStatus === 'unverified' ? state.agentStatus : `${state.agentStatus} (${state.verifiedStatus})`;
}

/** The actions the actor could take now, body aside: what `next_actions` shows. */
export function availableActions(state: StoryState, actor: unknown): Action[] {
  return ACTIONS.filter((action) => checkStanding(state, actor, action, 'current') === null);
}

/**
 * Refuses a body holding text the database cannot store (a NUL, a lone surrogate): accepted, it
 * would fail persistence forever. Apart from `decide` because it must run in the update validator
 * only: `decide` runs again in the handler on replay, and histories that accepted such a body
 * before this check existed must replay as they ran.
 */
export function checkStorableBody(body: unknown): Rejection | null {
  const path = unstorableTextPath(body);
  if (path === null) return null;
  return rejectionOf('invalid_body', 'The request body holds a NUL character or an unpaired surrogate.', {
    issues: [{ path, message: 'text that cannot be stored' }],
  });
}

/**
 * Rules that came after histories were written (a blank review type; a review of another artifact
 * than the one reported): like `checkStorableBody`, judged in the update validator only, so
 * histories that accepted such a body replay as they ran. Run after `decide` accepted.
 */
export function checkLaterRules(state: StoryState, action: unknown, body: unknown): Rejection | null {
  if (action !== 'review-complete' || typeof body !== 'object' || body === null) return null;
  const b = body as { review_type?: unknown; artifact?: unknown };
  if (typeof b.review_type !== 'string' || !hasLetterOrDigit(b.review_type)) {
    return rejectionOf('review_required', 'A review needs a review_type (a letter or a digit at least).');
  }
  return artifactMismatch(state, b.artifact);
}

/** Every custody rule for an action: what the update validator applies (`decide`, then the later rules). */
export function judge(state: StoryState, actor: unknown, action: unknown, body: unknown): Decision {
  const decision = decideUnder(state, actor, action, body, 'current');
  if (!decision.ok) return decision;
  const later = checkLaterRules(state, action, body);
  return later ? { ok: false, rejection: later } : decision;
}

function hasLetterOrDigit(value: string): boolean {
  return /[\p{L}\p{N}]/u.test(value);
}

/** Decides one action by the rules the workflow's handler replays. Never throws; never mutates `state`. */
export function decide(state: StoryState, actor: unknown, action: unknown, body: unknown): Decision {
  return decideUnder(state, actor, action, body, 'replayed');
}

function decideUnder(state: StoryState, actor: unknown, action: unknown, body: unknown, rules: RuleSet): Decision {
  const standing = checkStanding(state, actor, action, rules);
  if (standing) return { ok: false, rejection: standing };
  const act = action as Action;
  const who = actor as SignedActor;
  const issues = bodyShapeIssues(act, body ?? {});
  if (issues.length > 0) return reject('invalid_body', 'The request body does not match the action.', { issues });
  const data = (body ?? {}) as Record<string, unknown>;
  const next: StoryState = { ...state, implementerAgentIds: [...state.implementerAgentIds] };

  const refused = ACTION_EFFECTS[act](next, { state, actor: who, body: data, action: act });
  if (refused) return { ok: false, rejection: refused };

  return {
    ok: true,
    state: next,
    transition: {
      action: act,
      from: { agent_status: state.agentStatus, verified_status: state.verifiedStatus },
      to: { agent_status: next.agentStatus, verified_status: next.verifiedStatus },
      iteration: next.iteration,
    },
  };
}

/**
 * What an accepted action does to the story: `next` (a copy of the story) is changed in place.
 * An effect may still refuse on what the body means (a contract that does not match, a blank reason).
 */
type Effect = (
  next: StoryState,
  input: { state: StoryState; actor: SignedActor; body: Record<string, unknown>; action: Action },
) => Rejection | null;

const blankReason: (next: StoryState, input: { body: Record<string, unknown>; action: Action }) => Rejection | null = (
  _next,
  { body, action },
) =>
  isBlank((body as { reason?: string }).reason) ? rejectionOf('reason_required', `A ${action} needs a reason.`) : null;

export const ACTION_EFFECTS: Record<Action, Effect> = {
  contract: (next, { state, body }) => {
    const b = body as { story_title: string; ac_count: number };
    if (b.story_title !== state.title || b.ac_count !== state.acCount) {
      return rejectionOf(
        'contract_mismatch',
        'The contract does not match the story: check its title and number of acceptance criteria.',
        {
          expected: { story_title: state.title, ac_count: state.acCount },
          provided: { story_title: b.story_title, ac_count: b.ac_count },
        },
      );
    }
    next.agentStatus = 'contracted';
    // The iteration keeps the policy its contract carried (set by the gateway from the project).
    const pinned = (body as { review_policy?: PinnedPolicy }).review_policy;
    if (pinned !== undefined) {
      next.reviewPolicy = pinned;
      next.reviewProgress = { reviews: [], aggregations: [] };
    } else if (state.reviewPolicy != null) {
      next.reviewPolicy = null;
      next.reviewProgress = null;
    }
    return null;
  },
  claim: (next, { actor }) => {
    next.agentStatus = 'assigned';
    next.assignedAgentId = actor.agentId;
    if (!next.implementerAgentIds.includes(actor.agentId)) next.implementerAgentIds.push(actor.agentId);
    return null;
  },
  start: (next) => {
    next.agentStatus = 'implementing';
    return null;
  },
  'request-review': (next) => {
    next.agentStatus = 'review_requested';
    return null;
  },
  report: (next, { state, actor, body }) => {
    next.agentStatus = 'reported_done';
    next.reportedByAgentId = actor.agentId;
    next.artifact = body.artifact ?? null;
    const policy = policyOf(state);
    if (state.agentStatus === 'reported_done' && policy !== null) {
      // A new artifact in the same iteration: what was reviewed of the old one stops counting.
      next.reviewProgress = voidForNewArtifact(policy, progressOf(state));
      next.review = null;
      next.reviewerAgentId = null;
    }
    return null;
  },
  'review-complete': (next, { state, actor, body }) => {
    const given = body as Partial<Omit<ReviewRecord, 'reviewer_agent_id' | 'iteration'>>;
    // loopctl's clients leave out the counts when there were no findings, and the summary.
    const b = {
      review_type: given.review_type ?? '',
      findings_count: given.findings_count ?? 0,
      fixes_count: given.fixes_count ?? 0,
      disproved_count: given.disproved_count ?? 0,
      summary: given.summary ?? '',
    };
    const counts = [b.findings_count, b.fixes_count, b.disproved_count];
    if (counts.some((n) => n < 0) || b.fixes_count + b.disproved_count !== b.findings_count) {
      return rejectionOf(
        'findings_math_mismatch',
        'fixes_count + disproved_count must equal findings_count, and none may be negative.',
        { findings_count: b.findings_count, fixes_count: b.fixes_count, disproved_count: b.disproved_count },
      );
    }
    const policy = policyOf(state);
    if (policy !== null) {
      const refusal = reviewRefusal(state, actor, 'review-complete', (body as { round?: string }).round);
      if (refusal) return refusal;
      const mismatch = artifactMismatch(state, (body as { artifact?: unknown }).artifact);
      if (mismatch) return mismatch;
      const progress = progressOf(state);
      const round = currentRound(policy, progress)!;
      next.reviewProgress = {
        ...progress,
        reviews: [
          ...progress.reviews,
          {
            round: round.name,
            reviewer_agent_id: actor.agentId,
            reviewer_labels: labelsOf(actor),
            ...b,
            artifact_key: artifactKey(state.artifact ?? null),
          },
        ],
      };
    }
    next.review = {
      ...b,
      reviewer_agent_id: actor.agentId,
      iteration: state.iteration,
      artifact: state.artifact ?? null,
    };
    next.reviewerAgentId = actor.agentId;
    return null;
  },
  aggregate: (next, { state, actor, body }) => {
    const given = body as {
      round?: string;
      summary: string;
      findings_count?: number;
      fixes_count?: number;
      disproved_count?: number;
      artifact?: unknown;
    };
    const refusal = aggregationRefusal(state, actor, given.round);
    if (refusal) return refusal;
    if (isBlank(given.summary)) return rejectionOf('review_required', "An aggregation needs the round's summary.");
    const mismatch = artifactMismatch(state, given.artifact);
    if (mismatch) return mismatch;
    const progress = progressOf(state);
    const round = currentRound(policyOf(state)!, progress)!;
    const counts = {
      findings_count: given.findings_count ?? round.findings_count,
      fixes_count: given.fixes_count ?? 0,
      disproved_count: given.disproved_count ?? 0,
    };
    const problem = aggregationMathProblem(round, counts);
    if (problem) {
      return rejectionOf('findings_math_mismatch', `Round ${round.name}: ${problem}.`, {
        round: round.name,
        round_findings_count: round.findings_count,
        ...counts,
      });
    }
    next.reviewProgress = {
      ...progress,
      aggregations: [
        ...progress.aggregations,
        {
          round: round.name,
          aggregator_agent_id: actor.agentId,
          ...counts,
          summary: given.summary,
          artifact_key: artifactKey(state.artifact ?? null),
        },
      ],
    };
    return null;
  },
  verify: (next, { state, actor, body }) => {
    // A verify that names what it verified must name what was reviewed (absent: that one).
    const mismatch = artifactMismatch(state, (body as { artifact?: unknown }).artifact, 'verify');
    if (mismatch) return mismatch;
    next.verifiedStatus = 'verified';
    next.verifiedByAgentId = actor.agentId;
    next.verifiedArtifact = artifactKey(state.artifact ?? null);
    return null;
  },
  reject: (next, input) => {
    const blank = blankReason(next, input);
    if (blank) return blank;
    next.agentStatus = 'pending';
    next.verifiedStatus = 'rejected';
    next.iteration = input.state.iteration + 1;
    next.reportedByAgentId = null;
    next.reviewerAgentId = null;
    next.verifiedByAgentId = null;
    next.artifact = null;
    next.backfilled = false;
    next.assignedAgentId = null;
    if (input.state.verifiedArtifact != null) next.verifiedArtifact = null;
    if (input.state.reviewProgress != null) next.reviewProgress = null;
    return null;
  },
  'force-unclaim': (next, input) => {
    const blank = blankReason(next, input);
    if (blank) return blank;
    next.agentStatus = 'contracted';
    next.assignedAgentId = null;
    return null;
  },
  unclaim: (next) => {
    next.agentStatus = 'contracted';
    next.assignedAgentId = null;
    return null;
  },
  backfill: (next, input) => {
    const blank = blankReason(next, input);
    if (blank) return blank;
    next.agentStatus = 'reported_done';
    next.verifiedStatus = 'verified';
    next.verifiedByAgentId = input.actor.agentId;
    next.backfilled = true;
    return null;
  },
  edit: (next, { state, body }) => {
    const b = body as { title?: string; ac_count?: number; remove_dependencies?: string[] };
    if (b.title !== undefined) next.title = b.title;
    if (b.ac_count !== undefined) next.acCount = b.ac_count;
    if (b.remove_dependencies !== undefined) {
      next.dependencies = Object.fromEntries(
        Object.entries(state.dependencies).filter(([id]) => !b.remove_dependencies!.includes(id)),
      );
    }
    return null;
  },
  delete: (next) => {
    next.deleted = true;
    return null;
  },
};

/** Applies news about a dependency; stale news (a lower sequence) is ignored. */
export function applyDependencyStatus(state: StoryState, dependencyId: string, status: DependencyStatus): StoryState {
  const known = state.dependencies[dependencyId];
  if (known && known.seq > status.seq) return state;
  return { ...state, dependencies: { ...state.dependencies, [dependencyId]: status } };
}

/** A claim's lease runs while the assignee holds the story and works on it. */
export function holdsLease(state: StoryState): boolean {
  return state.assignedAgentId !== null && (state.agentStatus === 'assigned' || state.agentStatus === 'implementing');
}

/** Waiting on someone other than the implementer: a review, or a verification. */
export function isAwaitingOthers(state: StoryState): boolean {
  return (
    state.verifiedStatus !== 'verified' &&
    (state.agentStatus === 'review_requested' || state.agentStatus === 'reported_done')
  );
}

/** Only the assignee keeps its claim alive, and only while the lease runs. */
export function checkHeartbeat(state: StoryState, actor: unknown): Rejection | null {
  if (!validActor(actor)) return rejectionOf('unauthorized', 'The caller has no valid identity.');
  if (actor.tenantId !== state.tenantId) return rejectionOf('not_found', 'Story not found.');
  if (!holdsLease(state)) {
    return rejectionOf('invalid_transition', `Cannot heartbeat a story that is ${describe(state)}.`, {
      current_agent_status: state.agentStatus,
      current_verified_status: state.verifiedStatus,
      attempted_action: 'heartbeat',
    });
  }
  if (state.assignedAgentId !== actor.agentId) {
    return rejectionOf('not_assigned_agent', 'Only the assigned agent may keep its claim alive.');
  }
  return null;
}

/** The lease ran out: the story goes back to `contracted` for someone else to claim. */
export function expireLease(state: StoryState): { state: StoryState; transition: Transition } | null {
  if (!holdsLease(state)) return null;
  const next: StoryState = { ...state, agentStatus: 'contracted', assignedAgentId: null };
  return {
    state: next,
    transition: {
      action: 'lease-expired',
      from: { agent_status: state.agentStatus, verified_status: state.verifiedStatus },
      to: { agent_status: next.agentStatus, verified_status: next.verifiedStatus },
      iteration: state.iteration,
    },
  };
}

/** The last claim that ran out: its holder's next call is told so, with when (409 `lease_expired`). */
export interface ExpiredLease {
  agentId: string;
  /** ISO time the lease ended. */
  expiredAt: string;
  /** The iteration it was held in: a later iteration is another story for the holder. */
  iteration: number;
}

/** What only the holder of a claim does; a former holder refused one of these lost the claim to time. */
const HOLDER_ACTIONS: ReadonlySet<string> = new Set(['start', 'request-review', 'unclaim', 'heartbeat']);

/**
 * A refusal, explained by the lease when that is why: the caller held the claim until its lease ran
 * out, tries what only a holder may, and was refused only because it no longer holds the story
 * (`invalid_transition` or `not_assigned_agent`). Any other refusal is returned unchanged.
 */
export function explainByLease(
  refusal: Rejection,
  state: StoryState,
  actor: unknown,
  action: string,
  expired: ExpiredLease | null,
): Rejection {
  if (expired === null || !HOLDER_ACTIONS.has(action)) return refusal;
  if (refusal.code !== 'invalid_transition' && refusal.code !== 'not_assigned_agent') return refusal;
  if (!validActor(actor) || actor.tenantId !== state.tenantId || actor.agentId !== expired.agentId) return refusal;
  if (expired.iteration !== state.iteration || state.assignedAgentId === actor.agentId) return refusal;
  return rejectionOf('lease_expired', `Your claim on this story expired at ${expired.expiredAt}: claim it again.`, {
    expired_at: expired.expiredAt,
    current_agent_status: state.agentStatus,
    current_verified_status: state.verifiedStatus,
    attempted_action: action,
  });
}
