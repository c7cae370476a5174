/**
 * The lifecycle's vocabulary: story states, roles, actions, events. Pure data, no dependencies:
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

export const ACTIONS = [
  'contract',
  'claim',
  'start',
  'request-review',
  'report',
  'review-complete',
  'verify',
  'reject',
  'unclaim',
  'force-unclaim',
  'backfill',
  'edit',
  'delete',
] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * Actions with a route of their own (`POST /stories/:id/<action>`); `edit` and `delete` reach the
 * workflow through `PATCH` and `DELETE /stories/:id`, judged by the same rules.
 */
export const LIFECYCLE_ACTIONS = ACTIONS.filter(
  (a): a is Exclude<Action, 'edit' | 'delete'> => a !== 'edit' && a !== 'delete',
);

export function isAction(value: unknown): value is Action {
  return typeof value === 'string' && (ACTIONS as readonly string[]).includes(value);
}

/** The events a transition emits, named as webhooks name them. */
export const EVENT_OF_ACTION: Record<Action | 'lease-expired' | 'stalled', string> = {
  'lease-expired': 'story.lease_expired',
  stalled: 'story.stalled',
  contract: 'story.contracted',
  claim: 'story.claimed',
  start: 'story.started',
  'request-review': 'story.review_requested',
  report: 'story.reported',
  'review-complete': 'story.review_complete',
  verify: 'story.verified',
  reject: 'story.rejected',
  unclaim: 'story.unclaimed',
  'force-unclaim': 'story.force_unclaimed',
  backfill: 'story.backfilled',
  edit: 'story.updated',
  delete: 'story.deleted',
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
