/**
 * The worker's judgement of a batch of transitions a story workflow asks it to write. The
 * workflow's input is whatever its starter sent (its trusted keys, its carried state, its outbox),
 * so nothing in the batch is taken on trust: every action must carry an envelope signed by a key
 * of the worker's own ring, the batch must continue the stored sequence, and each transition is
 * judged again by the custody rules from the stored projection. What the worker writes is what it
 * derived here, never the state the workflow handed it. Pure: no I/O, no clock of its own.
 */
import { isAction } from './actions.js';
import { SYSTEM_ACTOR, agentActor, type Actor } from './actor.js';
import { envelopeProblem, type ActionEnvelope, type SignatureVerifier } from './identity.js';
import { custodyRecordOf, type CustodyRecord } from './policy.js';
import {
  keepsRoundClock,
  keptClocksAfter,
  keptClocksOf,
  stallAfterFor,
  stallDeadline,
  stallPayload,
  type KeptClocks,
} from './clocks.js';
import { expireLease, isAwaitingOthers, judge, type StoryState, type Transition } from './rules.js';

/** One transition as the workflow's outbox holds it (workflows/messages.ts, TransitionRecord). */
export interface OutboxTransition extends Transition {
  updateId: string;
  seq: number;
  actor: Actor;
  payload: unknown;
  occurredAt: string;
  envelope?: ActionEnvelope;
}

/** A transition as it is to be written: actor and payload from the signed envelope, or re-derived. */
export interface JudgedTransition extends Transition {
  /** The link of the artifact chain a report, review, sign-off or verify adds (absent for the rest). */
  record?: CustodyRecord | null;
  updateId: string;
  seq: number;
  actor: Actor;
  payload: Record<string, unknown>;
  occurredAt: string;
}

export type IntegrityReason =
  | 'empty_batch'
  | 'story_held'
  | 'replayed_update'
  | 'sequence_broken'
  | 'unsigned'
  | 'signature_untrusted'
  | 'envelope_mismatch'
  | 'against_the_rules'
  | 'transition_mismatch'
  | 'timed_event_unfounded';

/** The clocks the database keeps for a story (ms since the epoch; null: none written). */
export interface StoredClocks {
  /** The earliest the current claim's lease runs out: set by a claim, moved later by heartbeats. */
  leaseExpiresAt: number | null;
  /** Since when the story waits on others (a review round's wait: since the round opened). */
  waitingSince: number | null;
}

export type BatchJudgement =
  | { ok: true; state: StoryState; stalled: boolean; clocks: StoredClocks; transitions: JudgedTransition[] }
  | { ok: false; reason: IntegrityReason; seq: number | null; detail: string };

/** How far ahead of the worker's clock a timed event may claim to have happened (clock skew). */
const CLOCK_SKEW_MS = 60_000;

function sameTransition(a: Transition, b: Transition): boolean {
  return (
    a.action === b.action &&
    a.iteration === b.iteration &&
    a.from?.agent_status === b.from.agent_status &&
    a.from?.verified_status === b.from.verified_status &&
    a.to?.agent_status === b.to.agent_status &&
    a.to?.verified_status === b.to.verified_status
  );
}

const iso = (ms: number) => new Date(ms).toISOString();

function timeOf(value: unknown): number | null {
  if (typeof value !== 'string') return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

/**
 * Judges `transitions` (oldest first) against the stored projection: `stored` is the story as the
 * database has it at `storedVersion`, with the dependencies the database knows to be verified.
 */
export function judgeBatch(
  stored: { state: StoryState; stalled: boolean; version: number; clocks?: StoredClocks },
  transitions: readonly OutboxTransition[],
  context: {
    workflowId: string;
    acceptedKeys: readonly string[];
    nowMs: number;
    verify?: SignatureVerifier;
    /** The project's clocks (its stories' workflows are started with them). */
    timings: { leaseTtlMs: number; stallAfterMs: number };
  },
): BatchJudgement {
  if (!Array.isArray(transitions) || transitions.length === 0) {
    return { ok: false, reason: 'empty_batch', seq: null, detail: 'no transitions' };
  }
  const { leaseTtlMs, stallAfterMs } = context.timings;
  let state = stored.state;
  let stalled = stored.stalled;
  // Absent: a story the database kept no clocks for; every running one is then judged as before.
  let clocks: KeptClocks = keptClocksOf(
    state,
    stored.clocks ?? { leaseExpiresAt: null, waitingSince: null },
    leaseTtlMs,
  );
  const judged: JudgedTransition[] = [];
  let expected = stored.version + 1;
  for (const t of transitions) {
    const fail = (reason: IntegrityReason, detail: string): BatchJudgement => ({
      ok: false,
      reason,
      seq: typeof t?.seq === 'number' ? t.seq : null,
      detail,
    });
    if (typeof t !== 'object' || t === null || t.seq !== expected) {
      return fail('sequence_broken', `expected sequence ${expected}, got ${String(t?.seq)}`);
    }
    expected++;
    const occurredMs = timeOf(t.occurredAt);
    if (occurredMs === null) return fail('envelope_mismatch', 'no time of occurrence');
    const occurredAt = new Date(occurredMs).toISOString();
    if (t.action === 'lease-expired') {
      const payload = (t.payload ?? {}) as Record<string, unknown>;
      const expiredAt = timeOf(payload.lease_expired_at);
      const expiry = expireLease(state);
      if (!expiry) return fail('timed_event_unfounded', 'no lease was held');
      if (expiredAt === null || expiredAt > context.nowMs + CLOCK_SKEW_MS) {
        return fail('timed_event_unfounded', 'the lease has not run out');
      }
      if (leaseTtlMs <= 0) return fail('timed_event_unfounded', "the project's claims have no lease");
      // The lease runs at least until the deadline the claim and the heartbeats set (the run's
      // input, where a forged one would put an earlier one, is not asked).
      const deadline = clocks.leaseExpiresAt;
      if (deadline != null && (expiredAt < deadline || context.nowMs + CLOCK_SKEW_MS < deadline)) {
        return fail('timed_event_unfounded', `the lease runs until ${iso(deadline)}`);
      }
      if (!sameTransition(t, expiry.transition)) return fail('transition_mismatch', 'lease expiry differs');
      judged.push({
        ...expiry.transition,
        updateId: String(t.updateId),
        seq: t.seq,
        actor: SYSTEM_ACTOR,
        payload: { lease_expired_at: new Date(expiredAt).toISOString(), previous_assignee: state.assignedAgentId },
        occurredAt,
      });
      clocks = keptClocksAfter(clocks, state, expiry.state, 'lease-expired', leaseTtlMs, occurredMs);
      state = expiry.state;
      stalled = false;
      continue;
    }
    if (t.action === 'stalled') {
      const payload = (t.payload ?? {}) as Record<string, unknown>;
      const since = timeOf(payload.waiting_since);
      if (!isAwaitingOthers(state) || since === null || since > context.nowMs + CLOCK_SKEW_MS) {
        return fail('timed_event_unfounded', 'the story is not waiting on others');
      }
      // Not before the wait the database knows has lasted its step's time. The shorter of the
      // round's deadline and the project's: a run from before review policies times a round by
      // the project's, and must not be held for it.
      if (clocks.waitingSince != null) {
        const due = stallDeadline(clocks.waitingSince, Math.min(stallAfterFor(state, stallAfterMs), stallAfterMs));
        if (occurredMs < due || context.nowMs + CLOCK_SKEW_MS < due) {
          return fail('timed_event_unfounded', `the wait since ${iso(clocks.waitingSince)} lasts until ${iso(due)}`);
        }
      }
      const transition: Transition = {
        action: 'stalled',
        from: { agent_status: state.agentStatus, verified_status: state.verifiedStatus },
        to: { agent_status: state.agentStatus, verified_status: state.verifiedStatus },
        iteration: state.iteration,
      };
      if (!sameTransition(t, transition)) return fail('transition_mismatch', 'stall differs');
      judged.push({
        ...transition,
        updateId: String(t.updateId),
        seq: t.seq,
        actor: SYSTEM_ACTOR,
        // Since when it waited, as the database knows it when it does.
        payload: stallPayload(state, clocks.waitingSince ?? since),
        occurredAt,
      });
      stalled = true;
      continue;
    }
    const envelope = t.envelope;
    if (!isAction(t.action)) return fail('against_the_rules', `unknown action ${String(t.action)}`);
    if (typeof envelope !== 'object' || envelope === null) return fail('unsigned', 'no envelope');
    // Judged at the time the workflow accepted it: the envelope was fresh then, or it was refused.
    const problem = envelopeProblem(context.workflowId, envelope, context.acceptedKeys, occurredMs, context.verify);
    if (problem === 'signature not from a trusted gateway') return fail('signature_untrusted', problem);
    if (problem !== null) return fail('unsigned', problem);
    if (
      envelope.action !== t.action ||
      envelope.updateId !== t.updateId ||
      envelope.actor.agentId !== t.actor?.agentId ||
      envelope.actor.role !== t.actor?.role
    ) {
      return fail('envelope_mismatch', 'the transition is not the one the envelope signs');
    }
    const decision = judge(state, envelope.actor, t.action, envelope.body);
    if (!decision.ok) return fail('against_the_rules', decision.rejection.code);
    if (!sameTransition(t, decision.transition)) return fail('transition_mismatch', `${t.action} differs`);
    judged.push({
      ...decision.transition,
      updateId: envelope.updateId,
      seq: t.seq,
      actor: agentActor(envelope.actor),
      payload: (envelope.body ?? {}) as Record<string, unknown>,
      occurredAt,
      record: custodyRecordOf(t.action, state, decision.state, envelope.actor.labels),
    });
    // A review within a round that already stalled leaves it stalled (the round's clock runs on).
    stalled = stalled && keepsRoundClock(state, decision.state, t.action);
    clocks = keptClocksAfter(clocks, state, decision.state, t.action, leaseTtlMs, occurredMs);
    state = decision.state;
  }
  const kept = { leaseExpiresAt: clocks.leaseExpiresAt ?? null, waitingSince: clocks.waitingSince ?? null };
  return { ok: true, state, stalled, clocks: kept, transitions: judged };
}
