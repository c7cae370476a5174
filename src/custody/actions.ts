/**
 * The lifecycle's vocabulary: story states, roles, actions and their rules, events. Pure data, no dependencies:
 * imported by the workflow bundle, where every module is instantiated again for each workflow.
 * The zod schemas of the action bodies live in ./action-bodies.ts, outside the bundle.
 */

export const AGENT_STATUSES = [
  'pending',
  'contracted',
  'assigned',
  'implementing',
  'review_requested',
  'reported_done',
] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

export const VERIFIED_STATUSES = ['unverified', 'verified', 'rejected'] as const;
export type VerifiedStatus = (typeof VERIFIED_STATUSES)[number];

export const ROLES = ['admin', 'orchestrator', 'agent'] as const;
export type Role = (typeof ROLES)[number];

/** Who may take an action, from which states, and what it announces: the part of an action's spec the workflow needs. */
export interface ActionRule {
  roles: readonly Role[];
  /** The agent statuses the action may start from; `verified` stories accept only what lists it. */
  from: readonly AgentStatus[];
  /** The verified statuses it may start from (default: not verified). */
  fromVerified?: readonly VerifiedStatus[];
  /** Refused outside `from` with this code instead of `invalid_transition`. */
  outOfStateCode?: 'story_in_progress';
  /** The webhook event an accepted one emits. */
  event: string;
}

/**
 * Every action's rule, in the order `next_actions` lists them. The rest of an action's spec (body,
 * route, MCP tool, CLI command) is in ./action-specs.ts, outside the workflow bundle; its guards
 * and effect are in ./rules.ts (ACTION_GUARDS, ACTION_EFFECTS).
 */
export const ACTION_RULES = {
  contract: { roles: ['agent', 'orchestrator'], from: ['pending'], event: 'story.contracted' },
  claim: { roles: ['agent'], from: ['contracted'], event: 'story.claimed' },
  start: { roles: ['agent'], from: ['assigned'], event: 'story.started' },
  'request-review': { roles: ['agent'], from: ['implementing'], event: 'story.review_requested' },
  report: { roles: ['agent', 'orchestrator'], from: ['review_requested'], event: 'story.reported' },
  'review-complete': { roles: ['agent', 'orchestrator'], from: ['reported_done'], event: 'story.review_complete' },
  /** An aggregator signs a review round's summary (rounds that need one, under a review policy). */
  aggregate: { roles: ['agent', 'orchestrator'], from: ['reported_done'], event: 'story.review_aggregated' },
  verify: { roles: ['orchestrator'], from: ['reported_done'], event: 'story.verified' },
  reject: {
    roles: ['orchestrator'],
    from: ['reported_done'],
    fromVerified: ['unverified', 'rejected', 'verified'],
    event: 'story.rejected',
  },
  unclaim: { roles: ['agent'], from: ['assigned', 'implementing'], event: 'story.unclaimed' },
  'force-unclaim': {
    roles: ['orchestrator', 'admin'],
    from: ['assigned', 'implementing', 'review_requested'],
    event: 'story.force_unclaimed',
  },
  backfill: {
    roles: ['orchestrator'],
    from: ['pending', 'contracted'],
    fromVerified: ['unverified'],
    event: 'story.backfilled',
  },
  // Edits and withdrawals are refused past `pending` with their own code: the story is being worked on.
  edit: {
    roles: ['admin', 'orchestrator'],
    from: ['pending'],
    outOfStateCode: 'story_in_progress',
    event: 'story.updated',
  },
  delete: {
    roles: ['admin', 'orchestrator'],
    from: ['pending'],
    outOfStateCode: 'story_in_progress',
    event: 'story.deleted',
  },
} as const satisfies Record<string, ActionRule>;

export type Action = keyof typeof ACTION_RULES;
export const ACTIONS = Object.keys(ACTION_RULES) as readonly Action[] as readonly [Action, ...Action[]];

export function isAction(value: unknown): value is Action {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ACTION_RULES, value);
}

/** The events a transition emits, named as webhooks name them. */
export const EVENT_OF_ACTION: Record<Action | 'lease-expired' | 'stalled', string> = {
  'lease-expired': 'story.lease_expired',
  stalled: 'story.stalled',
  ...(Object.fromEntries(ACTIONS.map((action) => [action, ACTION_RULES[action].event])) as Record<Action, string>),
};

/**
 * loopctl's names for what a transition means, sent besides custody's own event: receivers
 * written for loopctl subscribe to these. `story.status_changed` goes with every transition that
 * changes a status; `epic.completed` when an epic's last story is verified.
 */
export const LOOPCTL_EVENTS = [
  'story.status_changed',
  'story.review_completed',
  'artifact.reported',
  'epic.completed',
  'agent.registered',
  'project.imported',
  'webhook.test',
] as const;

export function eventsOfTransition(
  action: Action | 'lease-expired' | 'stalled',
  from: { agent_status: string; verified_status: string },
  to: { agent_status: string; verified_status: string },
): string[] {
  const events = [EVENT_OF_ACTION[action]];
  if (action === 'report') events.push('artifact.reported');
  if (action === 'review-complete') events.push('story.review_completed');
  if (from.agent_status !== to.agent_status || from.verified_status !== to.verified_status)
    events.push('story.status_changed');
  return events;
}
