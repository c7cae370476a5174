/**
 * The story workflow's messages, shared by the workflow and every client (gateway, tests): no
 * caller spells an update's name as a string.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { ACTIONS, type Action, type AgentStatus, type VerifiedStatus } from '../src/custody/actions.js';
import type { Actor } from '../src/custody/actor.js';
import type { ActionEnvelope, KeyRingNews } from '../src/custody/identity.js';
import type { DependencyStatus, ExpiredLease, Rejection, StoryState, Transition } from '../src/custody/rules.js';
import type { ViolationNews } from '../src/custody/violation-news.js';

export const STORY_WORKFLOW_TYPE = 'storyWorkflow';

export interface StoryFacts {
  tenantId: string;
  projectId: string;
  storyId: string;
  number: string;
  title: string;
  acCount: number;
  dependsOn: string[];
}

export interface StoryWorkflowSettings {
  /** Continue-as-new after this many accepted transitions in one run (the server also suggests it). */
  maxTransitionsPerRun: number;
  /** Processed update ids remembered across runs, newest kept. */
  rememberedUpdates: number;
  /** A claim without a heartbeat for this long expires (the project's lease_ttl). */
  leaseTtlMs: number;
  /** A story waiting this long for review or verification is stalled (the project's stall_after). */
  stallAfterMs: number;
}

export const DEFAULT_SETTINGS: StoryWorkflowSettings = {
  maxTransitionsPerRun: 500,
  rememberedUpdates: 1000,
  leaseTtlMs: 30 * 60_000,
  stallAfterMs: 24 * 60 * 60_000,
};

/** One accepted transition, waiting in the workflow's outbox until the database has it. */
export interface TransitionRecord extends Transition {
  updateId: string;
  seq: number;
  actor: Actor;
  payload: unknown;
  occurredAt: string;
  /**
   * The gateway-signed envelope the transition was accepted under: the worker checks it against
   * its own key ring and judges the transition again before writing it. Absent for what time
   * does (an expired lease, a stall), which the worker re-derives from the stored projection.
   */
  envelope?: ActionEnvelope;
}

/** The story as the workflow judged a refused action: what the rejected attempt's audit row records. */
export interface JudgedStory {
  agent_status: AgentStatus;
  verified_status: VerifiedStatus;
  iteration: number;
  /** The story's latest accepted transition when it judged (absent from workers before it was sent). */
  seq?: number;
}

/** The details of a refused update's ApplicationFailure (whose type is the rejection's code). */
export interface RefusalDetails extends Rejection {
  judged: JudgedStory;
}

export interface ProcessedUpdate {
  seq: number;
  bodyDigest: string;
  action: Action;
}

export interface StoryWorkflowInput {
  facts: StoryFacts;
  /** base64url Ed25519 public keys whose signatures this story accepts (the gateway's). */
  trustedKeys: string[];
  settings?: Partial<StoryWorkflowSettings>;
  /** What the creator already knew of its dependencies (a dependency verified before this story existed). */
  knownDependencyStatus?: Record<string, DependencyStatus>;
  /** Present when the workflow continues as new: everything custody needs to carry on. */
  carried?: {
    state: StoryState;
    seq: number;
    outbox: TransitionRecord[];
    processed: [string, ProcessedUpdate][];
    /** Absolute workflow times, so a new run keeps the same deadlines. */
    leaseExpiresAt?: number | null;
    waitingSince?: number | null;
    stalled?: boolean;
    /** Names of the agents that acted, by agent id, from signed envelopes (for the details shown). */
    agentNames?: Record<string, string>;
    violations?: number;
    /** The last claim that ran out (its holder is told `lease_expired`). */
    expiredLease?: ExpiredLease | null;
    /** The keys the story trusts now (key ring news may have changed them since its first start). */
    trustedKeys?: string[];
    keyRingIssuedAt?: number;
  };
}

export interface StoryView {
  workflowId: string;
  state: StoryState;
  /** The sequence number of the latest accepted transition, all of it persisted. */
  seq: number;
  /** True when this answer is for an update id that had already been applied. */
  repeated: boolean;
  /** When the current claim expires without a heartbeat (ms since the epoch), if one is held. */
  leaseExpiresAt: number | null;
  stalled: boolean;
  /** The public keys the story accepts now: the gateway sends key ring news when they differ from its ring. */
  trustedKeys?: string[];
  /** The worker refused to write a batch: the story takes no action until an admin resumes it. */
  held?: boolean;
}

export interface DependencyNews extends DependencyStatus {
  storyId: string;
  /** Signed by the trusted path (src/custody/identity.ts, signDependencyNews); checked by the story. */
  signature?: string;
}

export const storyUpdates = Object.fromEntries(
  ACTIONS.map((action) => [action, defineUpdate<StoryView, [ActionEnvelope]>(action)]),
) as Record<Action, ReturnType<typeof defineUpdate<StoryView, [ActionEnvelope]>>>;

/** The assignee keeps its claim alive; judged like an action, but changes nothing else. */
export const heartbeatUpdate = defineUpdate<StoryView, [ActionEnvelope]>('heartbeat');

export const dependencyStatusSignal = defineSignal<[DependencyNews]>('dependencyStatus');
/** The story's custody violations so far, from the gateway (signed; see src/custody/violation-news.ts). */
export const custodyViolationsSignal = defineSignal<[ViolationNews]>('custodyViolations');
/** The keys a story is to trust from now on (src/custody/identity.ts, signKeyRingNews). */
export const keyRingSignal = defineSignal<[KeyRingNews]>('keyRing');
export const storyQuery = defineQuery<StoryView>('story');
