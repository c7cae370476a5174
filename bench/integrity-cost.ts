/**
 * What the worker's judgement of each persisted batch costs (src/custody/integrity.ts: the
 * envelope's signature against the key ring, sequence continuity, the custody rules again), alone,
 * per transition: whole lifecycles judged one transition per batch, as the activity mostly sees
 * them, with the worker's own verifier (node:crypto) and a ring of three keys, the signing one last
 * (the worst place for it).
 */
import type { Action } from '../src/custody/actions.js';
import { acceptedKeys, keyRingOf, newSigningSeed, signEnvelope, signingKeyFromSeed } from '../src/custody/identity.js';
import { judgeBatch, type OutboxTransition } from '../src/custody/integrity.js';
import { nativeVerify } from '../src/custody/native-verify.js';
import type { SignedActor as Actor } from '../src/custody/actor.js';
import { decide, newStoryState, type StoryState } from '../src/custody/rules.js';
import { round } from './stats.js';

const WORKFLOW = 'story/bench/p/1.1';

export function measureJudgement(lifecycles: number): { transitions: number; ms_per_transition: number } {
  const signing = signingKeyFromSeed(newSigningSeed(), 'current');
  const ring = keyRingOf(
    signingKeyFromSeed(newSigningSeed(), 'older'),
    signingKeyFromSeed(newSigningSeed(), 'oldest'),
    signing,
  );
  const implementer: Actor = { tenantId: 't', agentId: 'implementer', role: 'agent' };
  const reviewer: Actor = { tenantId: 't', agentId: 'reviewer', role: 'agent' };
  const orchestrator: Actor = { tenantId: 't', agentId: 'orchestrator', role: 'orchestrator' };
  const steps: [Action, Actor, unknown][] = [
    ['contract', implementer, { story_title: 'T', ac_count: 1 }],
    ['claim', implementer, {}],
    ['start', implementer, {}],
    ['request-review', implementer, {}],
    ['report', reviewer, {}],
    [
      'review-complete',
      reviewer,
      { review_type: 'standard', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 'ok' },
    ],
    ['verify', orchestrator, { summary: 'done' }],
  ];
  const initial = newStoryState({
    tenantId: 't',
    projectId: 'p',
    storyId: 's',
    number: '1.1',
    title: 'T',
    acCount: 1,
    dependsOn: [],
  });
  // Each transition with the stored state it is judged against (built outside the timing).
  const batches: { stored: { state: StoryState; stalled: boolean; version: number }; t: OutboxTransition }[] = [];
  let state = initial;
  steps.forEach(([action, actor, body], i) => {
    const decision = decide(state, actor, action, body);
    if (!decision.ok) throw new Error(`${action}: ${decision.rejection.code}`);
    const envelope = signEnvelope(signing, WORKFLOW, { updateId: `u${i}`, action, actor, body, issuedAt: Date.now() });
    batches.push({
      stored: { state, stalled: false, version: i },
      t: {
        ...decision.transition,
        updateId: envelope.updateId,
        seq: i + 1,
        actor: { agentId: actor.agentId, role: actor.role },
        payload: body,
        occurredAt: new Date().toISOString(),
        envelope,
      },
    });
    state = decision.state;
  });
  const judge = () => {
    for (const { stored, t } of batches) {
      // The activity reads the ring each time (a rotation takes effect at once); so does this.
      const judged = judgeBatch(stored, [t], {
        workflowId: WORKFLOW,
        acceptedKeys: acceptedKeys(ring),
        nowMs: Date.now(),
        verify: nativeVerify,
        timings: { leaseTtlMs: 30 * 60_000, stallAfterMs: 86_400_000 },
      });
      if (!judged.ok) throw new Error(`judgement refused: ${judged.reason} ${judged.detail}`);
    }
  };
  for (let i = 0; i < 20; i++) judge();
  const t0 = performance.now();
  for (let i = 0; i < lifecycles; i++) judge();
  const ms = performance.now() - t0;
  return { transitions: lifecycles * steps.length, ms_per_transition: round(ms / (lifecycles * steps.length), 3) };
}
