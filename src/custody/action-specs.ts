/**
 * One spec per action: who may take it, from which states and with what body (its rule,
 * ./actions.ts), what it checks and does (its guard and effect, ./rules.ts), its HTTP route, its MCP
 * tool, its CLI command and its webhook event. The workflow's update definitions, the gateway's routes and
 * their OpenAPI entries, the MCP tools, the CLI commands and the metrics' labels are derived from
 * this table; adding an action is one entry here, its rule, and tests.
 *
 * Outside the workflow bundle (it holds zod schemas): the workflow reads ./actions.ts only.
 */
import type { z } from 'zod';
import { bodySchema } from './action-bodies.js';
import { ACTIONS, ACTION_RULES, type Action, type ActionRule } from './actions.js';
import type { ErrorCode } from './errors.js';
import { ACTION_EFFECTS, ACTION_GUARDS } from './rules.js';

/** Which key an MCP tool uses (src/mcp/tools.ts says which variables hold it). */
export type McpKey = 'agent' | 'review' | 'orch' | 'read';

/** An argument of a tool or command: one body field, a string or an integer. */
export interface ArgSpec {
  field: string;
  kind: 'text' | 'integer';
  required?: boolean;
  /** The CLI's flag for it (`--title <title>`). */
  flag?: string;
  description?: string;
}

export interface McpToolSpec {
  name: string;
  description: string;
  key: McpKey;
  /**
   * The tool's arguments besides `story_id`, sent as the body; `custom` when src/mcp/tools.ts maps
   * them itself (loopctl's argument names differ from the body's).
   */
  args: readonly ArgSpec[] | 'custom';
  /** What the server's claim keeper does after it: keep the claim alive, or stop. */
  claim?: 'hold' | 'release';
}

export interface CliCommandSpec {
  /** `custody <command> <story>`. */
  command: string;
  description: string;
  options: readonly ArgSpec[];
}

/** The interface part of a spec, written per action below. */
interface ActionInterface {
  /**
   * `POST /stories/:id/<action>`, summarised; or `via`, the route that reaches the workflow with
   * this action after translating its own body (judged by the same rules).
   */
  http: { summary: string } | { via: string; summary: string };
  /** The codes this action may answer with besides every action's (COMMON_ACTION_ERRORS). */
  errors: readonly ErrorCode[];
  mcp: McpToolSpec | null;
  cli: CliCommandSpec | null;
}

export interface ActionSpec extends ActionInterface {
  name: Action;
  rule: ActionRule;
  /** The body's zod schema, from the rule's body: the gateway validates with it; OpenAPI is generated from it. */
  body: z.ZodType;
  /** What it checks beyond roles and states (./rules.ts ACTION_GUARDS); null when nothing. */
  guard: ((typeof ACTION_GUARDS)[Action] & {}) | null;
  /** What it does to the story (./rules.ts ACTION_EFFECTS). */
  effect: (typeof ACTION_EFFECTS)[Action];
  /** The webhook event an accepted one emits. */
  event: string;
}

export const COMMON_ACTION_ERRORS: readonly ErrorCode[] = [
  'invalid_transition',
  'forbidden',
  'timeout',
  'quota_exceeded',
  'story_closed',
  'story_held',
];

const reason = (required: boolean): ArgSpec => ({ field: 'reason', kind: 'text', required, flag: '--reason <text>' });

const INTERFACES = {
  contract: {
    http: { summary: 'Contract a pending story: title and number of acceptance criteria must match' },
    errors: ['contract_mismatch'],
    mcp: {
      name: 'contract_story',
      description:
        'Contract a pending story: its exact title and number of acceptance criteria (pending -> contracted).',
      key: 'agent',
      args: [
        { field: 'story_title', kind: 'text', required: true },
        { field: 'ac_count', kind: 'integer', required: true },
      ],
    },
    cli: {
      command: 'contract',
      description: 'contract a story',
      options: [
        { field: 'story_title', kind: 'text', required: true, flag: '--title <title>' },
        { field: 'ac_count', kind: 'integer', required: true, flag: '--ac-count <n>' },
      ],
    },
  },
  claim: {
    http: { summary: 'Claim a contracted story whose dependencies are verified (one claimant wins)' },
    errors: ['dependencies_not_met'],
    mcp: {
      name: 'claim_story',
      description:
        'Claim a contracted story whose dependencies are verified (-> assigned). While this server runs it keeps the claim alive.',
      key: 'agent',
      args: [],
      claim: 'hold',
    },
    cli: { command: 'claim', description: 'claim a contracted story', options: [] },
  },
  start: {
    http: { summary: 'Start implementing (the assignee only)' },
    errors: ['not_assigned_agent'],
    mcp: {
      name: 'start_story',
      description: 'Start implementing a story you claimed (assigned -> implementing).',
      key: 'agent',
      args: [],
      claim: 'hold',
    },
    cli: { command: 'start', description: 'start implementing', options: [] },
  },
  'request-review': {
    http: { summary: 'Ask for review (the assignee only)' },
    errors: ['not_assigned_agent'],
    mcp: {
      name: 'request_review',
      description: 'Ask for review of a story you implemented (implementing -> review_requested); the claim ends.',
      key: 'agent',
      args: [],
      claim: 'release',
    },
    cli: { command: 'request-review', description: 'ask for review', options: [] },
  },
  report: {
    http: { summary: 'Report the story done: never by its implementer (self_report_blocked)' },
    errors: ['self_report_blocked'],
    mcp: {
      name: 'report_story',
      description: 'Report a story done (review_requested -> reported_done); never by its implementer.',
      key: 'review',
      args: 'custom',
    },
    cli: {
      command: 'report',
      description: 'report done',
      options: [{ field: 'artifact', kind: 'text', flag: '--artifact <text>' }],
    },
  },
  'review-complete': {
    http: {
      summary:
        "Record one reviewer's review (of the round now open, under a review policy): never by the implementer, " +
        'once per reviewer per round; fixes + disproved = findings',
    },
    errors: [
      'self_review_blocked',
      'findings_math_mismatch',
      'review_required',
      'artifact_mismatch',
      'duplicate_review',
      'round_not_current',
      'unknown_round',
    ],
    mcp: {
      name: 'review_complete',
      description:
        'Record your review of the reported work (never by its implementer; once per reviewer per round under a review policy); fixes_count + disproved_count must equal findings_count. Name the artifact you reviewed (a commit SHA) and the round, if you like: another one is refused.',
      key: 'review',
      args: 'custom',
    },
    cli: {
      command: 'review-complete',
      description: 'record a review',
      options: [
        { field: 'review_type', kind: 'text', required: true, flag: '--type <type>' },
        { field: 'findings_count', kind: 'integer', required: true, flag: '--findings <n>' },
        { field: 'fixes_count', kind: 'integer', required: true, flag: '--fixes <n>' },
        { field: 'disproved_count', kind: 'integer', required: true, flag: '--disproved <n>' },
        { field: 'summary', kind: 'text', required: true, flag: '--summary <text>' },
        { field: 'round', kind: 'text', flag: '--round <name>' },
        { field: 'artifact', kind: 'text', flag: '--artifact <sha>' },
      ],
    },
  },
  aggregate: {
    http: {
      summary:
        "Sign a review round's summary (rounds whose policy needs an aggregator): never by one of the round's " +
        "reviewers; the classified findings are the round's",
    },
    errors: [
      'self_review_blocked',
      'aggregator_is_reviewer',
      'findings_math_mismatch',
      'review_required',
      'artifact_mismatch',
      'round_incomplete',
      'round_not_current',
      'unknown_round',
    ],
    mcp: {
      name: 'aggregate_review',
      description:
        "Sign the summary of the review round now open (verify-classify-aggregate): never by one of its reviewers; fixes_count + disproved_count must equal findings_count, which must equal the round's reviewers' findings.",
      key: 'review',
      args: [
        { field: 'summary', kind: 'text', required: true },
        { field: 'findings_count', kind: 'integer' },
        { field: 'fixes_count', kind: 'integer' },
        { field: 'disproved_count', kind: 'integer' },
        { field: 'round', kind: 'text' },
        { field: 'artifact', kind: 'text' },
      ],
    },
    cli: {
      command: 'aggregate',
      description: "sign a review round's summary",
      options: [
        { field: 'summary', kind: 'text', required: true, flag: '--summary <text>' },
        { field: 'findings_count', kind: 'integer', flag: '--findings <n>' },
        { field: 'fixes_count', kind: 'integer', flag: '--fixes <n>' },
        { field: 'disproved_count', kind: 'integer', flag: '--disproved <n>' },
        { field: 'round', kind: 'text', flag: '--round <name>' },
        { field: 'artifact', kind: 'text', flag: '--artifact <sha>' },
      ],
    },
  },
  verify: {
    http: {
      summary:
        'Verify a reviewed story (every round of its review policy complete): never by the implementer nor by a reviewer',
    },
    errors: ['self_verify_blocked', 'verifier_is_reviewer', 'review_required', 'round_incomplete', 'artifact_mismatch'],
    mcp: {
      name: 'verify_story',
      description:
        'Verify a reviewed story (not by its implementer nor a reviewer; under a review policy, once every round is complete). Name the artifact you verified (a commit SHA), if you like: another one than the reviewed one is refused.',
      key: 'orch',
      args: [
        { field: 'summary', kind: 'text' },
        { field: 'review_type', kind: 'text' },
        { field: 'artifact', kind: 'text' },
      ],
    },
    cli: {
      command: 'verify',
      description: 'verify a reviewed story',
      options: [
        { field: 'summary', kind: 'text', flag: '--summary <text>' },
        { field: 'artifact', kind: 'text', flag: '--artifact <sha>' },
      ],
    },
  },
  reject: {
    http: { summary: 'Reject: back to pending, iteration + 1 (a reason is required)' },
    errors: ['reason_required'],
    mcp: {
      name: 'reject_story',
      description: 'Reject a story back to pending (iteration + 1), with a reason.',
      key: 'orch',
      args: [reason(true)],
    },
    cli: { command: 'reject', description: 'reject back to pending', options: [reason(true)] },
  },
  unclaim: {
    http: { summary: 'Give the story back (the assignee only)' },
    errors: ['not_assigned_agent'],
    mcp: {
      name: 'unclaim_story',
      description: 'Give back a story you claimed (-> contracted).',
      key: 'agent',
      args: [],
      claim: 'release',
    },
    cli: { command: 'unclaim', description: 'give a claim back', options: [] },
  },
  'force-unclaim': {
    http: { summary: 'Take the story back from its assignee (a reason is required)' },
    errors: ['reason_required'],
    mcp: {
      name: 'force_unclaim_story',
      description: 'Take a story back from its assignee (-> contracted), with a reason.',
      key: 'orch',
      args: [reason(true)],
    },
    cli: { command: 'force-unclaim', description: 'take a claim back', options: [reason(true)] },
  },
  backfill: {
    http: {
      summary:
        'Mark a never-claimed story verified for work done before custody (backfilled: true; a reason is required)',
    },
    errors: ['reason_required'],
    mcp: {
      name: 'backfill_story',
      description: 'Attest work done before custody on a story never claimed (-> verified, backfilled).',
      key: 'orch',
      args: [reason(true), { field: 'evidence_url', kind: 'text' }, { field: 'pr_number', kind: 'integer' }],
    },
    cli: null,
  },
  edit: {
    http: { via: 'PATCH /stories/:id', summary: 'Edit a pending story (PATCH /stories/:id)' },
    errors: ['story_in_progress'],
    mcp: null,
    cli: null,
  },
  delete: {
    http: { via: 'DELETE /stories/:id', summary: 'Withdraw a pending story (DELETE /stories/:id)' },
    errors: ['story_in_progress'],
    mcp: null,
    cli: null,
  },
} as const satisfies Record<Action, ActionInterface>;

function specOf(name: Action): ActionSpec {
  const face: ActionInterface = INTERFACES[name];
  return {
    name,
    rule: ACTION_RULES[name],
    body: bodySchema(ACTION_RULES[name].body),
    guard: ACTION_GUARDS[name] ?? null,
    effect: ACTION_EFFECTS[name],
    event: ACTION_RULES[name].event,
    ...face,
  };
}

export const ACTION_SPECS = Object.fromEntries(ACTIONS.map((name) => [name, specOf(name)])) as Record<
  Action,
  ActionSpec
>;

/** The actions with a route of their own (`POST /stories/:id/<action>`). */
export type RoutedAction = {
  [A in Action]: (typeof INTERFACES)[A]['http'] extends { via: string } ? never : A;
}[Action];

export const ROUTED_ACTIONS = ACTIONS.filter(
  (action): action is RoutedAction => !('via' in INTERFACES[action].http),
) as readonly RoutedAction[] as readonly [RoutedAction, ...RoutedAction[]];

/** The path of an action's own route. */
export function actionPath(action: RoutedAction): string {
  return `/stories/:id/${action}`;
}
