/**
 * The lifecycle's vocabulary: story states, roles, actions and their rules and bodies, events. Pure data, no
 * dependencies: imported by the workflow bundle, where every module is instantiated again for each workflow.
 * The gateway's zod schemas of the bodies (./action-bodies.ts, outside the bundle) and the workflow's own check
 * (./body-shape.ts) are both derived from the bodies written here.
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

/**
 * One field of an action's body, as plain data. Shape only: what a value means (findings math, blank
 * reasons) is a custody rule.
 */
export type BodyField = (
  | { type: 'text'; max: number }
  | { type: 'integer'; min: number; max: number }
  | { type: 'texts'; maxItems: number; max: number }
  /** An object of any values whose keys have at most `maxKey` characters. */
  | { type: 'record'; maxKey: number }
  /** Text of at most `max` characters, or a record. */
  | { type: 'text-or-record'; max: number; maxKey: number }
  | { type: 'object'; fields: BodyShape }
  /**
   * The project's review policy, which the iteration keeps from its contract on: set by the gateway,
   * never by a caller, so it is no part of the HTTP body.
   */
  | { type: 'pinned-policy' }
) & { optional?: boolean };

/** An action's body: an object with these fields and no others. */
export type BodyShape = Readonly<Record<string, BodyField>>;

const text = (max: number) => ({ type: 'text', max }) as const;
const optional = <F extends BodyField>(field: F) => ({ ...field, optional: true }) as const;
const COUNT = { type: 'integer', min: -1_000_000, max: 1_000_000 } as const;
const TOKENS = optional({ type: 'integer', min: 0, max: 1e15 });
const ARTIFACT = { type: 'text-or-record', max: 20_000, maxKey: 200 } as const;
const REASON = { reason: optional(text(20_000)) };

/**
 * Who may take an action, from which states, what body it takes and what it announces: the part of an
 * action's spec the workflow needs.
 */
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
  /** Its body: the gateway's zod schema, the OpenAPI entry and the workflow's check are derived from it. */
  body: BodyShape;
}

/**
 * Every action's rule and body, in the order `next_actions` lists them. The rest of an action's spec
 * (route, MCP tool, CLI command) is in ./action-specs.ts, outside the workflow bundle; its guards
 * and effect are in ./rules.ts (ACTION_GUARDS, ACTION_EFFECTS).
 */
export const ACTION_RULES = {
  contract: {
    roles: ['agent', 'orchestrator'],
    from: ['pending'],
    event: 'story.contracted',
    body: { story_title: text(1000), ac_count: COUNT, review_policy: optional({ type: 'pinned-policy' }) },
  },
  claim: { roles: ['agent'], from: ['contracted'], event: 'story.claimed', body: {} },
  start: { roles: ['agent'], from: ['assigned'], event: 'story.started', body: {} },
  'request-review': { roles: ['agent'], from: ['implementing'], event: 'story.review_requested', body: {} },
  report: {
    roles: ['agent', 'orchestrator'],
    from: ['review_requested'],
    event: 'story.reported',
    body: {
      artifact: optional(ARTIFACT),
      /** loopctl's token accounting for the work reported; stored, and summed per story and project. */
      token_usage: optional({
        type: 'object',
        fields: {
          input_tokens: TOKENS,
          output_tokens: TOKENS,
          model_name: optional(text(200)),
          cost_millicents: TOKENS,
        },
      }),
    },
  },
  'review-complete': {
    roles: ['agent', 'orchestrator'],
    from: ['reported_done'],
    event: 'story.review_complete',
    body: {
      review_type: text(64),
      findings_count: optional(COUNT),
      fixes_count: optional(COUNT),
      disproved_count: optional(COUNT),
      summary: optional(text(20_000)),
      /** The artifact reviewed; absent, the review is of the latest report's artifact. */
      artifact: optional(ARTIFACT),
      /** The review policy's round this review is for; absent, the round now open. */
      round: optional(text(64)),
    },
  },
  /** An aggregator signs a review round's summary (rounds that need one, under a review policy). */
  aggregate: {
    roles: ['agent', 'orchestrator'],
    from: ['reported_done'],
    event: 'story.review_aggregated',
    body: {
      /** The round signed; absent, the round now open. */
      round: optional(text(64)),
      /** The round's summary the aggregator signs. */
      summary: text(20_000),
      /** The round's findings as the aggregator classified them: fixes + disproved = findings = the reviewers' sum. */
      findings_count: optional(COUNT),
      fixes_count: optional(COUNT),
      disproved_count: optional(COUNT),
      /** The artifact the summary is of; absent, the latest report's. */
      artifact: optional(ARTIFACT),
    },
  },
  verify: {
    roles: ['orchestrator'],
    from: ['reported_done'],
    event: 'story.verified',
    body: {
      summary: optional(text(20_000)),
      review_type: optional(text(64)),
      /** The artifact verified; absent, the reviewed one (the latest report's), as loopctl's clients send it. */
      artifact: optional(ARTIFACT),
    },
  },
  reject: {
    roles: ['orchestrator'],
    from: ['reported_done'],
    fromVerified: ['unverified', 'rejected', 'verified'],
    event: 'story.rejected',
    body: REASON,
  },
  unclaim: { roles: ['agent'], from: ['assigned', 'implementing'], event: 'story.unclaimed', body: {} },
  'force-unclaim': {
    roles: ['orchestrator', 'admin'],
    from: ['assigned', 'implementing', 'review_requested'],
    event: 'story.force_unclaimed',
    body: REASON,
  },
  backfill: {
    roles: ['orchestrator'],
    from: ['pending', 'contracted'],
    fromVerified: ['unverified'],
    event: 'story.backfilled',
    body: {
      ...REASON,
      evidence_url: optional(text(2000)),
      pr_number: optional({ type: 'integer', min: 0, max: 1_000_000_000 }),
    },
  },
  /**
   * Sent by the gateway for `PATCH /stories/:id` and `DELETE /story_dependencies/:id`. Edits and withdrawals
   * are refused past `pending` with their own code: the story is being worked on.
   */
  edit: {
    roles: ['admin', 'orchestrator'],
    from: ['pending'],
    outOfStateCode: 'story_in_progress',
    event: 'story.updated',
    body: {
      title: optional(text(500)),
      ac_count: optional(COUNT),
      remove_dependencies: optional({ type: 'texts', maxItems: 100, max: 64 }),
      /** Fields only the read model keeps (description, criteria, …), written with the transition. */
      content: optional({ type: 'record', maxKey: 200 }),
    },
  },
  delete: {
    roles: ['admin', 'orchestrator'],
    from: ['pending'],
    outOfStateCode: 'story_in_progress',
    event: 'story.deleted',
    body: {},
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
