/** The worker's judgement of a batch, and the key ring: pure, no Temporal, no database. */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { configuredKeyRing, parseConfig } from '../../src/config.js';
import type { Action } from '../../src/custody/actions.js';
import {
  acceptedKeys,
  keyRingNewsProblem,
  keyRingOf,
  newSigningSeed,
  parseKeyRing,
  signEnvelope,
  signKeyRingNews,
  signingKeyFromSeed,
  type SigningKey,
} from '../../src/custody/identity.js';
import { judgeBatch, type OutboxTransition } from '../../src/custody/integrity.js';
import { nativeVerify } from '../../src/custody/native-verify.js';
import type { SignedActor } from '../../src/custody/actor.js';
import { decide, newStoryState, type StoryState } from '../../src/custody/rules.js';

const WORKFLOW = 'story/t/p/1.1';
const gateway = signingKeyFromSeed(newSigningSeed(), 'k1');
const implementer: SignedActor = { tenantId: 't', agentId: 'agent-a', role: 'agent' };
const other: SignedActor = { tenantId: 't', agentId: 'agent-b', role: 'agent' };
const start = newStoryState({
  tenantId: 't',
  projectId: 'p',
  storyId: 's',
  number: '1.1',
  title: 'T',
  acCount: 1,
  dependsOn: [],
});

/** What the workflow would put in its outbox for these actions, from `state` at `seq`. */
function outboxOf(
  state: StoryState,
  seq: number,
  steps: [Action, SignedActor, unknown][],
  key: SigningKey = gateway,
): OutboxTransition[] {
  const out: OutboxTransition[] = [];
  for (const [action, actor, body] of steps) {
    const decision = decide(state, actor, action, body);
    if (!decision.ok) throw new Error(decision.rejection.code);
    const envelope = signEnvelope(key, WORKFLOW, {
      updateId: `u${seq + 1}`,
      action,
      actor,
      body,
      issuedAt: Date.now(),
    });
    out.push({
      ...decision.transition,
      updateId: envelope.updateId,
      seq: ++seq,
      actor: { agentId: actor.agentId, role: actor.role },
      payload: body,
      occurredAt: new Date().toISOString(),
      envelope,
    });
    state = decision.state;
  }
  return out;
}

/** The project's clocks: a 30-minute lease, a day's wait before a stall. */
const timings = { leaseTtlMs: 30 * 60_000, stallAfterMs: 86_400_000 };
const context = { workflowId: WORKFLOW, acceptedKeys: [gateway.publicKey], nowMs: Date.now(), timings };
const lifecycle: [Action, SignedActor, unknown][] = [
  ['contract', implementer, { story_title: 'T', ac_count: 1 }],
  ['claim', implementer, {}],
  ['start', implementer, {}],
];

describe('judgeBatch', () => {
  it('accepts a batch that continues the stored sequence, and derives the state itself', () => {
    const batch = outboxOf(start, 0, lifecycle);
    const judged = judgeBatch({ state: start, stalled: false, version: 0 }, batch, context);
    expect(judged.ok).toBe(true);
    if (!judged.ok) return;
    expect(judged.state.agentStatus).toBe('implementing');
    expect(judged.state.implementerAgentIds).toEqual(['agent-a']);
    expect(judged.transitions.map((t) => t.seq)).toEqual([1, 2, 3]);
  });

  it('refuses a batch that does not start at the stored version + 1, or skips a number', () => {
    const batch = outboxOf(start, 0, lifecycle);
    expect(judgeBatch({ state: start, stalled: false, version: 1 }, batch, context)).toMatchObject({
      ok: false,
      reason: 'sequence_broken',
    });
    expect(judgeBatch({ state: start, stalled: false, version: 0 }, [batch[0], batch[2]], context)).toMatchObject({
      ok: false,
      reason: 'sequence_broken',
      seq: 3,
    });
  });

  it('refuses envelopes signed outside the ring, missing, or not matching the transition', () => {
    const foreign = signingKeyFromSeed(newSigningSeed(), 'x');
    const stored = { state: start, stalled: false, version: 0 };
    expect(judgeBatch(stored, outboxOf(start, 0, lifecycle, foreign), context)).toMatchObject({
      reason: 'signature_untrusted',
    });
    const [first] = outboxOf(start, 0, lifecycle);
    expect(judgeBatch(stored, [{ ...first, envelope: undefined }], context)).toMatchObject({ reason: 'unsigned' });
    expect(judgeBatch(stored, [{ ...first, updateId: 'other' }], context)).toMatchObject({
      reason: 'envelope_mismatch',
    });
    expect(
      judgeBatch(
        stored,
        [{ ...first, to: { agent_status: 'verified' as never, verified_status: 'verified' } }],
        context,
      ),
    ).toMatchObject({ reason: 'transition_mismatch' });
  });

  it('judges by the custody rules from the stored projection: the implementer cannot report its own story', () => {
    let state = start;
    for (const [action, actor, body] of [...lifecycle, ['request-review', implementer, {}]] as [
      Action,
      SignedActor,
      unknown,
    ][]) {
      const d = decide(state, actor, action, body);
      if (!d.ok) throw new Error(d.rejection.code);
      state = d.state;
    }
    // A workflow that believed anything could have accepted it; the worker judges it again.
    const envelope = signEnvelope(gateway, WORKFLOW, {
      updateId: 'r',
      action: 'report',
      actor: implementer,
      body: {},
      issuedAt: Date.now(),
    });
    const forged: OutboxTransition = {
      action: 'report',
      from: { agent_status: 'review_requested', verified_status: 'unverified' },
      to: { agent_status: 'reported_done', verified_status: 'unverified' },
      iteration: 1,
      updateId: 'r',
      seq: 5,
      actor: { agentId: implementer.agentId, role: 'agent' },
      payload: {},
      occurredAt: new Date().toISOString(),
      envelope,
    };
    expect(judgeBatch({ state, stalled: false, version: 4 }, [forged], context)).toMatchObject({
      ok: false,
      reason: 'against_the_rules',
      detail: 'self_report_blocked',
    });
    const byOther = outboxOf(state, 4, [['report', other, {}]]);
    expect(judgeBatch({ state, stalled: false, version: 4 }, byOther, context).ok).toBe(true);
  });

  it('re-derives timed events: a lease expiry needs a held lease, a stall a wait on others', () => {
    const expiry: OutboxTransition = {
      action: 'lease-expired',
      from: { agent_status: 'contracted', verified_status: 'unverified' },
      to: { agent_status: 'contracted', verified_status: 'unverified' },
      iteration: 1,
      updateId: 'lease-expired:2',
      seq: 2,
      actor: { agentId: 'system', role: 'system' },
      payload: { lease_expired_at: new Date().toISOString(), previous_assignee: null },
      occurredAt: new Date().toISOString(),
    };
    const contracted = { ...start, agentStatus: 'contracted' as const };
    expect(judgeBatch({ state: contracted, stalled: false, version: 1 }, [expiry], context)).toMatchObject({
      reason: 'timed_event_unfounded',
    });
    const assigned = { ...contracted, agentStatus: 'assigned' as const, assignedAgentId: 'agent-a' };
    const real = { ...expiry, from: { agent_status: 'assigned' as const, verified_status: 'unverified' as const } };
    const judged = judgeBatch({ state: assigned, stalled: false, version: 1 }, [real], context);
    expect(judged.ok && judged.transitions[0].payload.previous_assignee).toBe('agent-a');
    const future = { ...real, payload: { lease_expired_at: new Date(Date.now() + 3_600_000).toISOString() } };
    expect(judgeBatch({ state: assigned, stalled: false, version: 1 }, [future], context).ok).toBe(false);
  });

  it('costs little per transition with the native verifier (measured, printed)', () => {
    const batch = outboxOf(start, 0, lifecycle);
    const cost = (verify?: typeof nativeVerify) => {
      const runs = 100;
      const t0 = performance.now();
      for (let i = 0; i < runs; i++) {
        const judged = judgeBatch({ state: start, stalled: false, version: 0 }, batch, { ...context, verify });
        expect(judged.ok).toBe(true);
      }
      return (performance.now() - t0) / (runs * batch.length);
    };
    const [noble, native] = [cost(), cost(nativeVerify)];
    console.log(`judgeBatch per transition: ${native.toFixed(3)} ms (node:crypto), ${noble.toFixed(3)} ms (noble)`);
    expect(native).toBeLessThan(noble);
    // And it refuses what noble refuses.
    const foreign = outboxOf(start, 0, lifecycle, signingKeyFromSeed(newSigningSeed()));
    expect(
      judgeBatch({ state: start, stalled: false, version: 0 }, foreign, { ...context, verify: nativeVerify }),
    ).toMatchObject({
      reason: 'signature_untrusted',
    });
  });
});

describe('timed events against the clocks the database keeps', () => {
  const MINUTE = 60_000;
  const now = context.nowMs;
  const assigned: StoryState = { ...start, agentStatus: 'assigned', assignedAgentId: 'agent-a' };
  const waiting: StoryState = { ...start, agentStatus: 'review_requested', implementerAgentIds: ['agent-a'] };
  const at = (ms: number) => new Date(ms).toISOString();
  /** The lease expiry a run says happened at `expiredAt`, written at `occurredAt`. */
  const expiryAt = (expiredAt: number, occurredAt = expiredAt, seq = 2): OutboxTransition => ({
    action: 'lease-expired',
    from: { agent_status: 'assigned', verified_status: 'unverified' },
    to: { agent_status: 'contracted', verified_status: 'unverified' },
    iteration: 1,
    updateId: `lease-expired:${seq}`,
    seq,
    actor: { agentId: 'system', role: 'system' },
    payload: { lease_expired_at: at(expiredAt), previous_assignee: 'agent-a' },
    occurredAt: at(occurredAt),
  });
  /** The stall a run says happened at `occurredAt`, of a wait since `since`. */
  const stallAt = (since: number, occurredAt: number, seq = 5): OutboxTransition => ({
    action: 'stalled',
    from: { agent_status: 'review_requested', verified_status: 'unverified' },
    to: { agent_status: 'review_requested', verified_status: 'unverified' },
    iteration: 1,
    updateId: `stalled:${seq}`,
    seq,
    actor: { agentId: 'system', role: 'system' },
    payload: { waiting_since: at(since) },
    occurredAt: at(occurredAt),
  });
  const reasonOf = (j: ReturnType<typeof judgeBatch>) => (j.ok ? 'ok' : `${j.reason}: ${j.detail}`);

  it('refuses a lease expiry dated before the kept deadline, or before the worker can see it', () => {
    const deadline = now + 20 * MINUTE;
    const stored = {
      state: assigned,
      stalled: false,
      version: 1,
      clocks: { leaseExpiresAt: deadline, waitingSince: null },
    };
    // What a forged run with an earlier deadline in its input writes: now, well before the claim's.
    expect(reasonOf(judgeBatch(stored, [expiryAt(now)], context))).toBe(
      `timed_event_unfounded: the lease runs until ${at(deadline)}`,
    );
    // Dated at the deadline, but the worker's clock is far from it (the run's clock is its input).
    expect(reasonOf(judgeBatch(stored, [expiryAt(deadline)], context))).toMatch(/^timed_event_unfounded/);
    // Time really brought it.
    const later = { ...context, nowMs: deadline + 1000 };
    const judged = judgeBatch(stored, [expiryAt(deadline, deadline + 5)], later);
    expect(reasonOf(judged)).toBe('ok');
    expect(judged.ok && judged.clocks).toEqual({ leaseExpiresAt: null, waitingSince: null });
    // A project without leases has no expiry at all.
    expect(
      reasonOf(judgeBatch(stored, [expiryAt(deadline)], { ...later, timings: { ...timings, leaseTtlMs: 0 } })),
    ).toMatch(/no lease/);
  });

  it('keeps the deadline a claim sets, so an expiry in the same batch is judged by it', () => {
    const claimed = outboxOf(start, 0, lifecycle);
    const claimedAt = Date.parse(claimed[1].occurredAt);
    const judged = judgeBatch({ state: start, stalled: false, version: 0 }, claimed, context);
    expect(judged.ok && judged.clocks).toEqual({ leaseExpiresAt: claimedAt + timings.leaseTtlMs, waitingSince: null });
    const early = {
      ...expiryAt(now, now, 4),
      from: { agent_status: 'implementing' as const, verified_status: 'unverified' as const },
    };
    expect(reasonOf(judgeBatch({ state: start, stalled: false, version: 0 }, [...claimed, early], context))).toBe(
      `timed_event_unfounded: the lease runs until ${at(claimedAt + timings.leaseTtlMs)}`,
    );
  });

  it('judges a story whose clocks the database does not know (kept before they were) as before', () => {
    const unknown = {
      state: assigned,
      stalled: false,
      version: 1,
      clocks: { leaseExpiresAt: null, waitingSince: null },
    };
    expect(reasonOf(judgeBatch(unknown, [expiryAt(now)], context))).toBe('ok');
    // And does not invent a deadline for the same claim: only a claim (or a heartbeat) sets one.
    const [, , started] = outboxOf(start, 0, lifecycle);
    const judged = judgeBatch(unknown, [{ ...started, seq: 2 }], context);
    expect(judged.ok && judged.clocks.leaseExpiresAt).toBeNull();
  });

  it('refuses a stall before the kept wait has lasted its step, and writes the kept wait', () => {
    const since = now - 2 * MINUTE;
    const stored = {
      state: waiting,
      stalled: false,
      version: 4,
      clocks: { leaseExpiresAt: null, waitingSince: since },
    };
    // A forged run that says the wait began a week ago.
    expect(reasonOf(judgeBatch(stored, [stallAt(now - 7 * 86_400_000, now)], context))).toBe(
      `timed_event_unfounded: the wait since ${at(since)} lasts until ${at(since + timings.stallAfterMs)}`,
    );
    const due = since + timings.stallAfterMs;
    const judged = judgeBatch(stored, [stallAt(since, due + 3)], { ...context, nowMs: due + 1000 });
    expect(reasonOf(judged)).toBe('ok');
    expect(judged.ok && judged.transitions[0].payload).toEqual({ waiting_since: at(since) });
    expect(judged.ok && judged.clocks.waitingSince).toBe(since);
  });

  it("times a review round's stall by the round's deadline when it is the shorter", () => {
    const policy = {
      version: 1,
      rounds: [
        { name: 'quick', min_reviewers: 1, required_labels: [], aggregator_required: false, deadline_seconds: 60 },
      ],
    };
    const inRound: StoryState = {
      ...waiting,
      agentStatus: 'reported_done',
      reportedByAgentId: 'orch',
      reviewPolicy: policy,
    };
    const since = now - 2 * MINUTE;
    const stored = {
      state: inRound,
      stalled: false,
      version: 5,
      clocks: { leaseExpiresAt: null, waitingSince: since },
    };
    const stall = {
      ...stallAt(since, now, 6),
      from: { agent_status: 'reported_done' as const, verified_status: 'unverified' as const },
      to: { agent_status: 'reported_done' as const, verified_status: 'unverified' as const },
    };
    expect(reasonOf(judgeBatch(stored, [stall], context))).toBe('ok');
    const tooSoon = { ...stall, occurredAt: at(since + 30_000) };
    expect(reasonOf(judgeBatch(stored, [tooSoon], context))).toMatch(/^timed_event_unfounded/);
  });
});

describe('the key ring', () => {
  it('parses CUSTODY_SIGNING_KEYS (current first) and keeps CUSTODY_SIGNING_KEY as a ring of one', () => {
    const [s1, s2] = [newSigningSeed(), newSigningSeed()];
    const ring = configuredKeyRing(parseConfig({ CUSTODY_SIGNING_KEYS: `new:${s2}, old:${s1}` }))!;
    expect(ring.current.keyId).toBe('new');
    expect(acceptedKeys(ring)).toEqual([signingKeyFromSeed(s2).publicKey, signingKeyFromSeed(s1).publicKey]);
    const single = configuredKeyRing(parseConfig({ CUSTODY_SIGNING_KEY: s1 }))!;
    expect(single.keys).toHaveLength(1);
    expect(single.current).toMatchObject({ keyId: 'default', publicKey: signingKeyFromSeed(s1).publicKey });
    expect(() => parseConfig({ CUSTODY_SIGNING_KEYS: 'no-seed' })).toThrow(/CUSTODY_SIGNING_KEYS/);
    expect(() => parseKeyRing(`a:${s1},a:${s2}`)).toThrow(/distinct/);
  });

  it('takes ring news only when signed by a trusted key and newer than the last', () => {
    const k1 = signingKeyFromSeed(newSigningSeed(), 'k1');
    const k2 = signingKeyFromSeed(newSigningSeed(), 'k2');
    const added = signKeyRingNews(keyRingOf(k2, k1), WORKFLOW, 1000);
    expect(keyRingNewsProblem(WORKFLOW, added, [k1.publicKey], 0)).toBeNull();
    expect(keyRingNewsProblem(WORKFLOW, added, [k1.publicKey], 1000)).toBe('stale');
    expect(keyRingNewsProblem('story/other', added, [k1.publicKey], 0)).not.toBeNull();
    // A forger's ring, signed only with its own key, is not taken.
    const forger = signingKeyFromSeed(newSigningSeed(), 'f');
    expect(keyRingNewsProblem(WORKFLOW, signKeyRingNews(keyRingOf(forger), WORKFLOW, 2000), [k1.publicKey], 0)).toBe(
      'signature not from a trusted key',
    );
    // Keys swapped after signing are refused.
    expect(keyRingNewsProblem(WORKFLOW, { ...added, keys: [forger.publicKey] }, [k1.publicKey], 0)).not.toBeNull();
  });
});

describe('the worker judges a review policy as the workflow does', () => {
  const SHA1 = 'a'.repeat(40);
  const SHA2 = 'b'.repeat(40);
  const orch: SignedActor = { tenantId: 't', agentId: 'orch', role: 'orchestrator' };
  const sec: SignedActor = { tenantId: 't', agentId: 'sec', role: 'agent', labels: ['security-adversary'] };
  const agg: SignedActor = { tenantId: 't', agentId: 'agg', role: 'agent' };
  const policy = {
    version: 1,
    rounds: [
      { name: 'adversarial', min_reviewers: 1, required_labels: ['security-adversary'], aggregator_required: true },
    ],
  };
  const review = { review_type: 'x', findings_count: 1, fixes_count: 1, disproved_count: 0 };
  const steps: [Action, SignedActor, unknown][] = [
    ['contract', implementer, { story_title: 'T', ac_count: 1, review_policy: policy }],
    ['claim', implementer, {}],
    ['start', implementer, {}],
    ['request-review', implementer, {}],
    ['report', orch, { artifact: { artifact_type: 'commit', path: SHA1 } }],
    ['review-complete', sec, review],
    ['aggregate', agg, { summary: 'fixed', findings_count: 1, fixes_count: 1 }],
    ['report', orch, { artifact: SHA2 }],
    ['aggregate', agg, { summary: 'fixes in', findings_count: 1, fixes_count: 1 }],
    ['verify', orch, {}],
  ];
  const context = {
    workflowId: WORKFLOW,
    acceptedKeys: [gateway.publicKey],
    nowMs: Date.now(),
    verify: nativeVerify,
    timings,
  };

  it('accepts the pipeline and records the artifact chain, labels signed with the reviewer', () => {
    const judged = judgeBatch({ state: start, stalled: false, version: 0 }, outboxOf(start, 0, steps), context);
    if (!judged.ok) throw new Error(`${judged.reason}: ${judged.detail}`);
    expect(judged.state).toMatchObject({ verifiedStatus: 'verified', verifiedArtifact: `commit:${SHA2}` });
    expect(
      judged.transitions.map((t) => t.record && [t.record.kind, t.record.round, t.record.artifact_key?.slice(0, 8)]),
    ).toEqual([
      null,
      null,
      null,
      null,
      ['report', null, 'commit:a'],
      ['review', 'adversarial', 'commit:a'],
      ['aggregation', 'adversarial', 'commit:a'],
      ['report', null, 'commit:b'],
      ['aggregation', 'adversarial', 'commit:b'],
      ['verify', null, 'commit:b'],
    ]);
    expect(judged.transitions[5].record?.agent_labels).toEqual(['security-adversary']);
  });

  it('refuses a verify the policy does not allow, even when the workflow asked for it', () => {
    const reviewed = outboxOf(start, 0, steps.slice(0, 6));
    const after = judgeBatch({ state: start, stalled: false, version: 0 }, reviewed, context);
    if (!after.ok) throw new Error(after.reason);
    // A forged outbox: verify with the round unsigned (the workflow's rules would never put it there).
    const forged = signEnvelope(gateway, WORKFLOW, {
      updateId: 'u7',
      action: 'verify',
      actor: orch,
      body: {},
      issuedAt: Date.now(),
    });
    const verify: OutboxTransition = {
      action: 'verify',
      from: { agent_status: 'reported_done', verified_status: 'unverified' },
      to: { agent_status: 'reported_done', verified_status: 'verified' },
      iteration: 1,
      updateId: 'u7',
      seq: 7,
      actor: { agentId: orch.agentId, role: orch.role },
      payload: {},
      occurredAt: new Date().toISOString(),
      envelope: forged,
    };
    const judged = judgeBatch({ state: after.state, stalled: false, version: 6 }, [verify], context);
    expect(judged.ok ? 'ok' : `${judged.reason}:${judged.detail}`).toBe('against_the_rules:round_incomplete');
  });
});
