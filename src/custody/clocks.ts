/**
 * What time does to a story: a claim's lease runs out, a story waits too long on others. Pure,
 * like the rest of the custody rules: the workflow passes its own clock in (`now`) and keeps the
 * timers; these functions say when they run out and what is recorded when they do.
 */
import type { Action } from './actions.js';
import {
  expireLease,
  holdsLease,
  isAwaitingOthers,
  type ExpiredLease,
  type StoryState,
  type TimedEvent,
  type Transition,
} from './rules.js';

export interface StoryClocks {
  /** When the current claim runs out without a heartbeat (ms since the epoch), if one is held. */
  leaseExpiresAt: number | null;
  /** Since when the story has been waiting for a review or a verification (ms since the epoch). */
  waitingSince: number | null;
  /** Said once per wait: the story waited on others longer than the project allows. */
  stalled: boolean;
}

/**
 * The clocks once `state` is reached by `action`: a claim starts a lease, keeping the lease holds
 * its deadline, a wait on others starts (or restarts) the stall clock. A stall changes none of
 * them: it is what the stall clock did.
 */
export function clocksAfter(
  clocks: StoryClocks,
  state: StoryState,
  action: Action | TimedEvent,
  leaseTtlMs: number,
  now: number,
): StoryClocks {
  if (action === 'stalled') return clocks;
  return {
    // A project without leases (lease_ttl 0, refused by the API before it meant that) sets no clock.
    leaseExpiresAt:
      !holdsLease(state) || leaseTtlMs <= 0
        ? null
        : action === 'claim' || clocks.leaseExpiresAt === null
          ? now + leaseTtlMs
          : clocks.leaseExpiresAt,
    waitingSince: isAwaitingOthers(state) ? now : null,
    stalled: false,
  };
}

/** The lease deadline a heartbeat sets (none for a project without leases). */
export function heartbeatDeadline(leaseTtlMs: number, now: number): number | null {
  return leaseTtlMs > 0 ? now + leaseTtlMs : null;
}

/** The claim whose deadline is `leaseExpiresAt`, as it is recorded once it ran out. */
export function leaseOf(state: StoryState, leaseExpiresAt: number | null): ExpiredLease | null {
  if (leaseExpiresAt === null || state.assignedAgentId === null) return null;
  return {
    agentId: state.assignedAgentId,
    expiredAt: new Date(leaseExpiresAt).toISOString(),
    iteration: state.iteration,
  };
}

/**
 * The state a request is judged against at `now`. Past the lease deadline the claim is over even
 * if its timer has not been handled yet: a task that carries both a late request and the fired
 * timer runs the request first, which would otherwise accept a `start` or a heartbeat from an
 * agent that no longer holds the story.
 */
export function stateAt(state: StoryState, leaseExpiresAt: number | null, now: number): StoryState {
  if (leaseExpiresAt !== null && now >= leaseExpiresAt) return expireLease(state)?.state ?? state;
  return state;
}

export interface LeaseRunOut {
  state: StoryState;
  transition: Transition;
  /** What the audit row says: when the lease ended and whose claim it was (the actor is time). */
  payload: { lease_expired_at: string; previous_assignee: string | null };
  /** Kept so that the former holder's next call is told `lease_expired`. */
  expired: ExpiredLease;
}

/** The lease that ran out at `deadline`, if the story was still held; null when nothing is held. */
export function leaseRunOut(state: StoryState, deadline: number): LeaseRunOut | null {
  const expiry = expireLease(state);
  if (!expiry) return null;
  const expiredAt = new Date(deadline).toISOString();
  return {
    ...expiry,
    payload: { lease_expired_at: expiredAt, previous_assignee: state.assignedAgentId },
    expired: { agentId: state.assignedAgentId!, expiredAt, iteration: state.iteration },
  };
}

/** What a waiting story waits for: its review, or its verification. */
export function awaitedStep(state: StoryState): 'review' | 'verification' {
  return state.agentStatus === 'review_requested' ? 'review' : 'verification';
}

/** When a story waiting since `since` stalls. */
export function stallDeadline(since: number, stallAfterMs: number): number {
  return since + stallAfterMs;
}

/**
 * The stall of a story waiting since `since`: a transition that changes no status (the audit
 * trail and the webhooks say it), or null when the story no longer waits on anyone.
 */
export function stallOf(
  state: StoryState,
  since: number,
): { transition: Transition; payload: { waiting_since: string } } | null {
  if (!isAwaitingOthers(state)) return null;
  const status = { agent_status: state.agentStatus, verified_status: state.verifiedStatus };
  return {
    transition: { action: 'stalled', from: status, to: { ...status }, iteration: state.iteration },
    payload: { waiting_since: new Date(since).toISOString() },
  };
}
