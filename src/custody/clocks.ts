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
  openRoundOf,
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
  /** The state before `action`, for stories whose review rounds keep their own clock (see below). */
  previous?: StoryState,
): StoryClocks {
  if (action === 'stalled') return clocks;
  if (previous && keepsRoundClock(previous, state, action) && clocks.waitingSince !== null) {
    return {
      leaseExpiresAt: holdsLease(state) && leaseTtlMs > 0 ? clocks.leaseExpiresAt : null,
      waitingSince: clocks.waitingSince,
      stalled: clocks.stalled,
    };
  }
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

/**
 * A review round's deadline runs from when the round opened: a review within it does not restart
 * it (nor take back a stall already said); a new round, or a new artifact, does.
 */
export function keepsRoundClock(previous: StoryState, state: StoryState, action: Action | TimedEvent): boolean {
  if (action === 'report') return false;
  const round = openRoundOf(state);
  const before = openRoundOf(previous);
  return round !== null && before !== null && round.name === before.name;
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
): { transition: Transition; payload: { waiting_since: string; round?: string } } | null {
  if (!isAwaitingOthers(state)) return null;
  const status = { agent_status: state.agentStatus, verified_status: state.verifiedStatus };
  return {
    transition: { action: 'stalled', from: status, to: { ...status }, iteration: state.iteration },
    payload: stallPayload(state, since),
  };
}

/** What a stall records: since when the story waited, and the review round it waited on, if any. */
export function stallPayload(state: StoryState, since: number): { waiting_since: string; round?: string } {
  const round = openRoundOf(state);
  return { waiting_since: new Date(since).toISOString(), ...(round ? { round: round.name } : {}) };
}

/**
 * How long a story may wait before it stalls: the open review round's deadline under a policy
 * that sets one, else the project's stall_after.
 */
export function stallAfterFor(state: StoryState, stallAfterMs: number): number {
  return openRoundOf(state)?.deadlineMs ?? stallAfterMs;
}

/** What a waiting story waits for, for the timer's summary: its review round, review, or verification. */
export function awaitedStepOf(state: StoryState): string {
  const round = openRoundOf(state);
  return round ? `review round ${round.name}` : awaitedStep(state);
}

/**
 * The clocks the database keeps for a story, so the worker can tell a lease expiry or a stall that
 * time really brought from one a forged run claims: when the claim's lease runs out at the
 * earliest, since when the story waits on others. `undefined` is a clock running that the database
 * does not know (a story claimed or waiting since before they were kept): judged as before.
 */
export interface KeptClocks {
  leaseExpiresAt: number | null | undefined;
  waitingSince: number | null | undefined;
}

/** The kept clocks as the database has them (null where nothing is written), read against `state`. */
export function keptClocksOf(
  state: StoryState,
  stored: { leaseExpiresAt: number | null; waitingSince: number | null },
  leaseTtlMs: number,
): KeptClocks {
  return {
    leaseExpiresAt: stored.leaseExpiresAt ?? (holdsLease(state) && leaseTtlMs > 0 ? undefined : null),
    waitingSince: stored.waitingSince ?? (isAwaitingOthers(state) ? undefined : null),
  };
}

/**
 * The kept clocks once `action` (accepted at `at`) led from `previous` to `next`: the workflow's
 * own (clocksAfter), except that a clock the database did not know stays unknown until it restarts
 * (a claim, a new wait). A heartbeat moves the lease later: the gateway writes that, not this.
 */
export function keptClocksAfter(
  kept: KeptClocks,
  previous: StoryState,
  next: StoryState,
  action: Action | TimedEvent,
  leaseTtlMs: number,
  at: number,
): KeptClocks {
  if (action === 'stalled') return kept;
  const known = {
    leaseExpiresAt: kept.leaseExpiresAt ?? null,
    waitingSince: kept.waitingSince ?? null,
    stalled: false,
  };
  const after = clocksAfter(known, next, action, leaseTtlMs, at, previous);
  const sameClaim = action !== 'claim' && after.leaseExpiresAt !== null;
  const sameWait = after.waitingSince !== null && keepsRoundClock(previous, next, action);
  return {
    leaseExpiresAt: kept.leaseExpiresAt === undefined && sameClaim ? undefined : after.leaseExpiresAt,
    waitingSince: kept.waitingSince === undefined && sameWait ? undefined : after.waitingSince,
  };
}
