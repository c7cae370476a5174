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
export const LIFECYCLE_ACTIONS = ACTIONS.filter((a) => a !== 'edit' && a !== 'delete') as Exclude<
  Action,
  'edit' | 'delete'
>[];

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
