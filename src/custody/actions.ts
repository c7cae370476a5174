/**
 * The lifecycle's vocabulary: story states, roles, actions and the shape of each action's body.
 * Pure data and zod schemas only: imported by the workflow bundle, the gateway and the clients.
 */
import { z } from 'zod';

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
] as const;
export type Action = (typeof ACTIONS)[number];

export function isAction(value: unknown): value is Action {
  return typeof value === 'string' && (ACTIONS as readonly string[]).includes(value);
}

const text = (max: number) => z.string().max(max);
const count = z.number().int().min(-1_000_000).max(1_000_000);

/** Body schemas per action. Shape only: the meaning (findings math, blank reasons) is a custody rule. */
export const ACTION_BODIES = {
  contract: z.strictObject({ story_title: text(1000), ac_count: count }),
  claim: z.strictObject({}),
  start: z.strictObject({}),
  'request-review': z.strictObject({}),
  report: z.strictObject({
    artifact: z.union([text(20_000), z.record(z.string().max(200), z.unknown())]).optional(),
  }),
  'review-complete': z.strictObject({
    review_type: text(64),
    findings_count: count,
    fixes_count: count,
    disproved_count: count,
    summary: text(20_000),
  }),
  verify: z.strictObject({ summary: text(20_000).optional() }),
  reject: z.strictObject({ reason: text(20_000).optional() }),
  unclaim: z.strictObject({}),
  'force-unclaim': z.strictObject({ reason: text(20_000).optional() }),
} satisfies Record<Action, z.ZodType>;

export type ActionBody<A extends Action> = z.infer<(typeof ACTION_BODIES)[A]>;

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
};
