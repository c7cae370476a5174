/**
 * What time does to a story (src/custody/clocks.ts): when a lease starts, holds and ends, since
 * when a story waits on others, and what a lease running out and a stall record.
 */
import { describe, expect, it } from 'vitest';
import {
  awaitedStep,
  awaitedStepOf,
  clocksAfter,
  keepsRoundClock,
  stallAfterFor,
  stallPayload,
  heartbeatDeadline,
  leaseOf,
  leaseRunOut,
  stallDeadline,
  stallOf,
  stateAt,
  type StoryClocks,
} from '../../src/custody/clocks.js';
import { newStoryState, type StoryState } from '../../src/custody/rules.js';

const TTL = 60_000;
const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const none: StoryClocks = { leaseExpiresAt: null, waitingSince: null, stalled: false };

function story(patch: Partial<StoryState> = {}): StoryState {
  const fresh = newStoryState({
    tenantId: 't',
    projectId: 'p',
    storyId: 's',
    number: '1.1',
    title: 'A story',
    acCount: 1,
    dependsOn: [],
  });
  return { ...fresh, agentStatus: 'contracted', ...patch };
}
const held = story({ agentStatus: 'assigned', assignedAgentId: 'a1', implementerAgentIds: ['a1'], iteration: 2 });
const implementing = { ...held, agentStatus: 'implementing' as const };
const awaitingReview = story({ agentStatus: 'review_requested', assignedAgentId: 'a1' });
const awaitingVerify = story({ agentStatus: 'reported_done' });

describe('clocksAfter', () => {
  it('starts a lease on a claim and keeps its deadline while the claim is worked on', () => {
    const claimed = clocksAfter(none, held, 'claim', TTL, T0);
    expect(claimed).toEqual({ leaseExpiresAt: T0 + TTL, waitingSince: null, stalled: false });
    expect(clocksAfter(claimed, implementing, 'start', TTL, T0 + 5_000).leaseExpiresAt).toBe(T0 + TTL);
  });

  it('restarts the lease on a new claim, and starts one for a held story that had none', () => {
    const old = { ...none, leaseExpiresAt: T0 + 1 };
    expect(clocksAfter(old, held, 'claim', TTL, T0 + 10).leaseExpiresAt).toBe(T0 + 10 + TTL);
    expect(clocksAfter(none, implementing, 'start', TTL, T0).leaseExpiresAt).toBe(T0 + TTL);
  });

  it('sets no lease for a project without leases, nor for a story nobody holds', () => {
    expect(clocksAfter(none, held, 'claim', 0, T0).leaseExpiresAt).toBeNull();
    const lease = { ...none, leaseExpiresAt: T0 + TTL };
    expect(clocksAfter(lease, story(), 'unclaim', TTL, T0).leaseExpiresAt).toBeNull();
    expect(clocksAfter(lease, story(), 'lease-expired', TTL, T0).leaseExpiresAt).toBeNull();
  });

  it('starts the stall clock when the story waits on others, and stops it when it does not', () => {
    expect(clocksAfter(none, awaitingReview, 'request-review', TTL, T0)).toEqual({
      leaseExpiresAt: null,
      waitingSince: T0,
      stalled: false,
    });
    const waiting = { ...none, waitingSince: T0, stalled: true };
    expect(clocksAfter(waiting, awaitingVerify, 'report', TTL, T0 + 9)).toEqual({ ...none, waitingSince: T0 + 9 });
    expect(clocksAfter(waiting, story({ agentStatus: 'pending' }), 'reject', TTL, T0 + 9)).toEqual(none);
    const verified = story({ agentStatus: 'reported_done', verifiedStatus: 'verified' });
    expect(clocksAfter(waiting, verified, 'verify', TTL, T0 + 9).waitingSince).toBeNull();
  });

  it('leaves every clock as it is for a stall', () => {
    const stalled = { leaseExpiresAt: null, waitingSince: T0, stalled: true };
    expect(clocksAfter(stalled, awaitingReview, 'stalled', TTL, T0 + 99)).toEqual(stalled);
  });
});

describe('leases', () => {
  it('a heartbeat moves the deadline to a full lease from now (none without leases)', () => {
    expect(heartbeatDeadline(TTL, T0)).toBe(T0 + TTL);
    expect(heartbeatDeadline(0, T0)).toBeNull();
  });

  it('names the claim a deadline belongs to', () => {
    expect(leaseOf(held, T0)).toEqual({ agentId: 'a1', expiredAt: '2026-12-01T10:00:00.000Z', iteration: 2 });
    expect(leaseOf(held, null)).toBeNull();
    expect(leaseOf(story(), T0)).toBeNull();
  });

  it('judges a request past the deadline as if the lease had run out, not before', () => {
    expect(stateAt(held, T0, T0 - 1)).toBe(held);
    expect(stateAt(held, null, T0)).toBe(held);
    const after = stateAt(held, T0, T0);
    expect(after).toMatchObject({ agentStatus: 'contracted', assignedAgentId: null, implementerAgentIds: ['a1'] });
    expect(stateAt(awaitingReview, T0, T0 + 1)).toBe(awaitingReview);
  });

  it('records a lease that ran out: back to contracted, the holder and the time kept', () => {
    const ranOut = leaseRunOut(implementing, T0);
    expect(ranOut).toEqual({
      state: expect.objectContaining({ agentStatus: 'contracted', assignedAgentId: null }),
      transition: {
        action: 'lease-expired',
        from: { agent_status: 'implementing', verified_status: 'unverified' },
        to: { agent_status: 'contracted', verified_status: 'unverified' },
        iteration: 2,
      },
      payload: { lease_expired_at: '2026-12-01T10:00:00.000Z', previous_assignee: 'a1' },
      expired: { agentId: 'a1', expiredAt: '2026-12-01T10:00:00.000Z', iteration: 2 },
    });
    expect(leaseRunOut(awaitingReview, T0)).toBeNull();
  });
});

describe('stalls', () => {
  it('says what a waiting story waits for, and when it stalls', () => {
    expect(awaitedStep(awaitingReview)).toBe('review');
    expect(awaitedStep(awaitingVerify)).toBe('verification');
    expect(stallDeadline(T0, 1_000)).toBe(T0 + 1_000);
  });

  it('records a stall as a transition that changes no status', () => {
    expect(stallOf(awaitingVerify, T0)).toEqual({
      transition: {
        action: 'stalled',
        from: { agent_status: 'reported_done', verified_status: 'unverified' },
        to: { agent_status: 'reported_done', verified_status: 'unverified' },
        iteration: 1,
      },
      payload: { waiting_since: '2026-12-01T10:00:00.000Z' },
    });
  });

  it('records none for a story no longer waiting on others', () => {
    expect(stallOf(held, T0)).toBeNull();
    expect(stallOf(story({ agentStatus: 'reported_done', verifiedStatus: 'verified' }), T0)).toBeNull();
  });
});

describe('review rounds keep their own clock', () => {
  const policy = {
    version: 1,
    rounds: [
      { name: 'team', min_reviewers: 2, required_labels: [], aggregator_required: false, deadline_seconds: 5 },
      { name: 'adversarial', min_reviewers: 1, required_labels: [], aggregator_required: false },
    ],
  };
  const entry = (round: string, id: string) => ({
    round,
    reviewer_agent_id: id,
    reviewer_labels: [],
    review_type: 't',
    findings_count: 0,
    fixes_count: 0,
    disproved_count: 0,
    summary: '',
    artifact_key: null,
  });
  const reported = story({
    agentStatus: 'reported_done',
    reviewPolicy: policy,
    reviewProgress: { reviews: [], aggregations: [] },
  });
  const oneReview = { ...reported, reviewProgress: { reviews: [entry('team', 'r1')], aggregations: [] } };
  const teamDone = {
    ...reported,
    reviewProgress: { reviews: [entry('team', 'r1'), entry('team', 'r2')], aggregations: [] },
  };

  it("waits by the open round's deadline, or the project's, and a stall names the round", () => {
    expect(stallAfterFor(reported, 86_400_000)).toBe(5000);
    expect(stallAfterFor(teamDone, 86_400_000)).toBe(86_400_000);
    expect(stallAfterFor(story({ agentStatus: 'reported_done' }), 7)).toBe(7);
    expect(stallOf(oneReview, T0)?.payload).toEqual({ waiting_since: new Date(T0).toISOString(), round: 'team' });
    expect(stallPayload(story({ agentStatus: 'review_requested' }), T0)).toEqual({
      waiting_since: new Date(T0).toISOString(),
    });
    expect(awaitedStepOf(oneReview)).toBe('review round team');
  });

  it('a review within the round keeps its clock and its stall; a new round or a new artifact restarts it', () => {
    const waiting: StoryClocks = { leaseExpiresAt: null, waitingSince: T0, stalled: true };
    expect(keepsRoundClock(reported, oneReview, 'review-complete')).toBe(true);
    expect(clocksAfter(waiting, oneReview, 'review-complete', TTL, T0 + 9000, reported)).toEqual(waiting);
    expect(keepsRoundClock(oneReview, teamDone, 'review-complete')).toBe(false);
    expect(clocksAfter(waiting, teamDone, 'review-complete', TTL, T0 + 9000, oneReview)).toEqual({
      leaseExpiresAt: null,
      waitingSince: T0 + 9000,
      stalled: false,
    });
    expect(keepsRoundClock(oneReview, reported, 'report')).toBe(false);
    // Without the previous state (runs from before review policies) every step restarts the wait.
    expect(clocksAfter(waiting, oneReview, 'review-complete', TTL, T0 + 9000).waitingSince).toBe(T0 + 9000);
  });
});
