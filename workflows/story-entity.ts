/**
 * One story as the workflow holds it: its custody state, its clocks and its outbox, and what may
 * be done to them. Every rule comes from `src/custody/` (the lifecycle in rules.ts, what time does
 * in clocks.ts); this class keeps their results, and the workflow function (story.ts) only wires
 * Temporal's messages to its methods.
 *
 * Deterministic code only: no I/O, no Node imports; time is the workflow's own. The order of what
 * reaches Temporal (patch markers, search attribute upserts, timers) is that of the recorded
 * histories in test/replay/fixtures: keep it.
 */
import {
  ApplicationFailure,
  condition,
  patched,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import type { Action } from '../src/custody/actions.js';
import { SYSTEM_ACTOR, agentActor, type Actor } from '../src/custody/actor.js';
import {
  awaitedStep,
  awaitedStepOf,
  clocksAfter,
  heartbeatDeadline,
  leaseOf,
  leaseRunOut,
  stallAfterFor,
  stallDeadline,
  stallOf,
  stateAt,
} from '../src/custody/clocks.js';
import {
  bodyDigest,
  dependencyNewsProblem,
  envelopeProblem,
  keyRingNewsProblem,
  type ActionEnvelope,
  type KeyRingNews,
} from '../src/custody/identity.js';
import {
  applyDependencyStatus,
  checkHeartbeat,
  checkMeaningfulText,
  checkStorableBody,
  decide,
  explainByLease,
  judge,
  newStoryState,
  type ExpiredLease,
  type Rejection,
  type StoryState,
  type Transition,
} from '../src/custody/rules.js';
import { trustedViolationCount, type ViolationNews } from '../src/custody/violation-news.js';
import {
  DEFAULT_SETTINGS,
  type DependencyNews,
  type ProcessedUpdate,
  type RefusalDetails,
  type StoryView,
  type StoryWorkflowInput,
  type StoryWorkflowSettings,
  type TransitionRecord,
} from './messages.js';
import {
  AssignedAgent,
  CustodyViolations,
  ProjectId,
  Stalled,
  StoryStatus,
  TenantId,
  VerifiedStatus,
} from './search-attributes.js';

type Carried = NonNullable<StoryWorkflowInput['carried']>;

/** A custody rejection as the update's failure: the code is its type, the rejection its details. */
/** A custody refusal, and the story as it was judged: the rejected attempt's audit row records that. */
interface Refusal {
  rejection: Rejection;
  judged: StoryState;
}

/**
 * A refusal as the update's failure: the code is its type, the rejection and the judged story its
 * details, with `seq`, the latest transition it was judged after (the history lists it there).
 */
function refusalFailure({ rejection, judged }: Refusal, seq: number): ApplicationFailure {
  const details: RefusalDetails = {
    ...rejection,
    judged: {
      agent_status: judged.agentStatus,
      verified_status: judged.verifiedStatus,
      iteration: judged.iteration,
      seq,
    },
  };
  return ApplicationFailure.create({
    type: rejection.code,
    message: rejection.message,
    details: [details],
    nonRetryable: true,
  });
}

function heldRejection(): Rejection {
  return {
    code: 'story_held',
    message: 'The story is held after an integrity violation; an admin must resume it.',
    context: {},
  };
}

/** Clock time for a summary: `14:05 UTC`, or the date too when it is not today. */
function clockTime(ms: number, now: number): string {
  const iso = new Date(ms).toISOString();
  const sameDay = iso.slice(0, 10) === new Date(now).toISOString().slice(0, 10);
  return `${sameDay ? '' : iso.slice(0, 10) + ' '}${iso.slice(11, 16)} UTC`;
}

export class StoryEntity {
  readonly workflowId = workflowInfo().workflowId;
  readonly settings: StoryWorkflowSettings;
  state: StoryState;
  /** The sequence number of the latest accepted transition, and of the latest the database has. */
  seq: number;
  persistedSeq: number;
  /** Accepted transitions the database does not have yet, oldest first. */
  readonly outbox: TransitionRecord[];
  readonly processed: Map<string, ProcessedUpdate>;
  transitionsThisRun = 0;
  persistenceFailing = false;
  /** Leases and stalls came after the first histories were written; those replay without them. */
  readonly keepsTime: boolean;
  /** Runs started before dependency news was signed took it unsigned, and must replay as they ran. */
  readonly checksNewsSignatures: boolean;
  /**
   * Fewer history events per transition (runs started before it replay as they ran): a clock's
   * timer is re-armed when it fires, not each time its deadline moves later (a heartbeat, the next
   * step of a wait), and each change shows in one search-attribute upsert.
   */
  readonly leanHistory: boolean;
  /** A new awaited step gets its own stall timer, whose summary says what is awaited (lean runs only). */
  readonly stallTimerPerStep: boolean;
  /**
   * Review policies came later still: in runs from before them a stall is timed as it always was;
   * in later runs an open review round keeps its own deadline and the stall names the round.
   */
  readonly timesRounds: boolean;
  leaseExpiresAt: number | null;
  waitingSince: number | null;
  stalled: boolean;
  /** Display only: who each agent id is, as the gateway signed it into the agent's envelopes. */
  readonly agentNames: Record<string, string>;
  violations: number;
  /** Whose claim ran out last, so its holder's next call is told why it is refused (validators only). */
  expiredLease: ExpiredLease | null;
  /** The keys this story accepts: those it was started with, until signed key ring news replaces them. */
  trustedKeys: string[];
  keyRingIssuedAt: number;
  /** The worker refused to write a batch (an integrity violation): nothing more is accepted. */
  held = false;

  constructor(private readonly input: StoryWorkflowInput) {
    const carried: Partial<Carried> = input.carried ?? {};
    this.settings = { ...DEFAULT_SETTINGS, ...input.settings };
    let state = carried.state ?? newStoryState(input.facts);
    if (!input.carried) {
      for (const [id, status] of Object.entries(input.knownDependencyStatus ?? {})) {
        state = applyDependencyStatus(state, id, status);
      }
    }
    this.state = state;
    this.seq = carried.seq ?? 0;
    this.outbox = [...(carried.outbox ?? [])];
    this.persistedSeq = this.outbox.length > 0 ? this.outbox[0].seq - 1 : this.seq;
    this.processed = new Map(carried.processed ?? []);
    this.keepsTime = patched('claim-leases-and-stalls');
    this.checksNewsSignatures = patched('signed-dependency-news');
    this.leanHistory = patched('lean-transition-history');
    // Lean runs started before it kept one stall timer through review and verification.
    this.stallTimerPerStep = patched('stall-timer-per-step');
    this.timesRounds = patched('review-policies');
    this.leaseExpiresAt = carried.leaseExpiresAt ?? null;
    this.waitingSince = carried.waitingSince ?? null;
    this.stalled = carried.stalled ?? false;
    this.agentNames = { ...carried.agentNames };
    this.violations = carried.violations ?? 0;
    this.expiredLease = carried.expiredLease ?? null;
    this.trustedKeys = carried.trustedKeys ?? input.trustedKeys;
    this.keyRingIssuedAt = carried.keyRingIssuedAt ?? 0;
  }

  view(repeated: boolean): StoryView {
    const { workflowId, state, seq, leaseExpiresAt, stalled, trustedKeys, held } = this;
    return { workflowId, state, seq, repeated, leaseExpiresAt, stalled, trustedKeys, held };
  }

  nameOf(agentId: string | null | undefined): string {
    return !agentId ? '—' : (this.agentNames[agentId] ?? agentId);
  }

  /** The first run says which tenant and project the story is in; the search attributes carry on. */
  begin(): void {
    const where = [
      { key: TenantId, value: this.state.tenantId },
      { key: ProjectId, value: this.state.projectId },
    ];
    if (this.input.carried) this.publish();
    else if (this.leanHistory) this.publish(where);
    else {
      upsertSearchAttributes(where);
      this.publish();
    }
  }

  // ---- lifecycle actions (updates) ----

  /** The update validator: throws the rejection of an action the rules refuse now. */
  validateAction(action: Action, envelope: ActionEnvelope): void {
    if (this.repeatOf(action, envelope)) return;
    const refusal = this.refusal(action, envelope);
    if (refusal) throw refusalFailure(refusal, this.seq);
  }

  /**
   * The update handler, up to its first await: a repeat is answered from memory; a new action is
   * applied at once (two racing claims cannot both pass). Resolves once the database has it.
   */
  async act(action: Action, envelope: ActionEnvelope): Promise<StoryView> {
    const earlier = this.repeatOf(action, envelope);
    if (earlier) return this.persisted(earlier.seq, true);
    // The signature was checked by the validator (validators do not run on replay, so the
    // handler must not depend on time); the rules run again because the state may have moved.
    const decision = decide(this.state, envelope.actor, action, envelope.body);
    if (!decision.ok) throw this.refused(decision.rejection);
    this.processed.set(envelope.updateId, { seq: this.seq + 1, bodyDigest: bodyDigest(envelope.body), action });
    // Signed with the rest of the envelope (the validator checked it); shown, never judged.
    if (typeof envelope.actor.name === 'string')
      this.agentNames[envelope.actor.agentId] = envelope.actor.name.slice(0, 100);
    const actor = agentActor(envelope.actor);
    const seq = this.apply(decision.state, decision.transition, envelope.updateId, actor, envelope.body, envelope);
    return this.persisted(seq, false);
  }

  /** Waits until the database has `seq`; a held story never will, and says so. */
  private async persisted(seq: number, repeated: boolean): Promise<StoryView> {
    await condition(() => this.persistedSeq >= seq || this.held);
    if (this.persistedSeq < seq) throw this.refused(heldRejection());
    return this.view(repeated);
  }

  /** Applies an accepted transition: state, outbox, clocks and what the UI shows, all at once. */
  private apply(
    next: StoryState,
    transition: Transition,
    updateId: string,
    actor: Actor,
    payload: unknown,
    envelope?: ActionEnvelope,
  ): number {
    const seq = ++this.seq;
    const previous = this.state;
    this.state = next;
    this.transitionsThisRun++;
    const clocks = clocksAfter(
      this,
      next,
      transition.action,
      this.settings.leaseTtlMs,
      Date.now(),
      this.timesRounds ? previous : undefined,
    );
    if (this.keepsTime) {
      this.leaseExpiresAt = clocks.leaseExpiresAt;
      this.waitingSince = clocks.waitingSince;
    }
    this.stalled = clocks.stalled;
    this.outbox.push({
      ...transition,
      updateId,
      seq,
      actor,
      payload: payload ?? {},
      occurredAt: new Date().toISOString(),
      ...(envelope ? { envelope } : {}),
    });
    this.publish();
    return seq;
  }

  /**
   * Identity first, then the rules: an envelope the gateway did not sign is never judged on its
   * merits. Accepted only if accepted both as the story stands and as it stands once an overdue
   * lease is expired: the handler judges the former, the clock the latter. `judge` adds the rules
   * the handler must not re-run (histories from before them replay as they ran).
   */
  private refusal(action: Action, envelope: ActionEnvelope): Refusal | null {
    const { actor, body } = envelope;
    const { state } = this;
    const refused = this.identityRefusal(envelope, action) ?? checkStorableBody(body);
    if (refused) return { rejection: refused, judged: state };
    const now = judge(state, actor, action, body);
    if (!now.ok)
      return { rejection: explainByLease(now.rejection, state, actor, action, this.expiredLease), judged: state };
    const meaningless = checkMeaningfulText(action, body);
    if (meaningless) return { rejection: meaningless, judged: state };
    const judged = this.judgedState();
    if (judged === state) return null;
    const late = judge(judged, actor, action, body);
    if (late.ok) return null;
    return { rejection: explainByLease(late.rejection, judged, actor, action, this.overdueLease()), judged };
  }

  /** The update's failure for a refusal judged against the story as it stands. */
  private refused(rejection: Rejection): ApplicationFailure {
    return refusalFailure({ rejection, judged: this.state }, this.seq);
  }

  /** The state a request is judged against (validators only: they do not run on replay). */
  private judgedState(): StoryState {
    return this.keepsTime ? stateAt(this.state, this.leaseExpiresAt, Date.now()) : this.state;
  }

  /** The claim whose deadline has passed though its timer has not fired yet, as it will be recorded. */
  private overdueLease(): ExpiredLease | null {
    return leaseOf(this.state, this.leaseExpiresAt);
  }

  /** Held first (nothing is judged), then the envelope's signature against the keys trusted now. */
  private identityRefusal(envelope: ActionEnvelope, action: Action | 'heartbeat'): Rejection | null {
    if (this.held) return heldRejection();
    const problem = envelopeProblem(this.workflowId, envelope, this.trustedKeys, Date.now());
    if (problem === null && envelope.action === action) return null;
    return {
      code: 'unauthorized',
      message: "The caller's identity could not be verified.",
      // Tells the gateway its key is new to this story (it then sends key ring news and retries).
      context: problem === 'signature not from a trusted gateway' ? { key_untrusted: true } : {},
    };
  }

  private repeatOf(action: Action, envelope: ActionEnvelope): ProcessedUpdate | undefined {
    const earlier = typeof envelope?.updateId === 'string' ? this.processed.get(envelope.updateId) : undefined;
    if (earlier && (earlier.action !== action || earlier.bodyDigest !== bodyDigest(envelope.body))) {
      throw this.refused({
        code: 'idempotency_key_reused',
        message: 'This idempotency key was already used with a different request.',
        context: {},
      });
    }
    return earlier;
  }

  // ---- heartbeat (an update that keeps the claim alive) ----

  /** A heartbeat is judged as the story stands and as it stands once an overdue lease is expired. */
  validateHeartbeat(envelope: ActionEnvelope): void {
    const unverified = this.identityRefusal(envelope, 'heartbeat');
    const refusal = unverified ? { rejection: unverified, judged: this.state } : this.heartbeatRefusal(envelope.actor);
    if (refusal) throw refusalFailure(refusal, this.seq);
  }

  private heartbeatRefusal(actor: unknown): Refusal | null {
    const { state } = this;
    const now = checkHeartbeat(state, actor);
    if (now) return { rejection: explainByLease(now, state, actor, 'heartbeat', this.expiredLease), judged: state };
    const judged = this.judgedState();
    const late = judged === state ? null : checkHeartbeat(judged, actor);
    return late && { rejection: explainByLease(late, judged, actor, 'heartbeat', this.overdueLease()), judged };
  }

  heartbeat(envelope: ActionEnvelope): StoryView {
    const rejection = checkHeartbeat(this.state, envelope.actor);
    if (rejection) throw this.refused(rejection);
    this.leaseExpiresAt = heartbeatDeadline(this.settings.leaseTtlMs, Date.now());
    // No search attribute changes: only the details (the lease's new deadline) need saying.
    if (this.leanHistory) setCurrentDetails(this.details());
    else this.publish();
    return this.view(false);
  }

  // ---- news (signals) ----

  onDependencyNews(news: DependencyNews): void {
    if (typeof news?.storyId !== 'string' || typeof news.verified !== 'boolean' || typeof news.seq !== 'number') return;
    // News a Temporal client forged could unblock a claim: only signed news counts.
    if (this.checksNewsSignatures && dependencyNewsProblem(this.workflowId, news, this.trustedKeys) !== null) return;
    this.state = applyDependencyStatus(this.state, news.storyId, { verified: news.verified, seq: news.seq });
  }

  /** Signed by a key this story already trusts, and newer than the last: a key added or retired. */
  onKeyRing(news: KeyRingNews): void {
    if (keyRingNewsProblem(this.workflowId, news, this.trustedKeys, this.keyRingIssuedAt) !== null) return;
    this.trustedKeys = [...news.keys];
    this.keyRingIssuedAt = news.issuedAt;
  }

  /**
   * The gateway coalesces these (one per story per minute at most), so a flood of rejected
   * attempts cannot flood this history; the count is a total, so only a higher one changes anything.
   */
  onViolations(news: ViolationNews): void {
    const count = trustedViolationCount(this.workflowId, news, this.trustedKeys);
    if (count === null || count <= this.violations || !patched('custody-violations')) return;
    this.violations = count;
    if (this.leanHistory) this.publish([{ key: CustodyViolations, value: count }]);
    else {
      upsertSearchAttributes([{ key: CustodyViolations, value: count }]);
      this.publish();
    }
  }

  // ---- what time does ----

  /** A durable timer per claim: no heartbeat before the deadline, and the story is free again. */
  async watchLease(): Promise<never> {
    for (;;) {
      await condition(() => this.leaseExpiresAt !== null);
      const deadline = this.leaseExpiresAt!;
      // Lean: a later deadline (a heartbeat) is picked up when this timer fires, not by a new timer.
      const moved = await condition(
        () =>
          this.leanHistory
            ? this.leaseExpiresAt === null || this.leaseExpiresAt < deadline
            : this.leaseExpiresAt !== deadline,
        Math.max(1, deadline - Date.now()),
        {
          summary: `claim lease of ${this.nameOf(this.state.assignedAgentId)} until ${clockTime(deadline, Date.now())}`,
        },
      );
      if (moved || (this.leanHistory && this.leaseExpiresAt !== deadline)) continue;
      const ranOut = leaseRunOut(this.state, deadline);
      if (!ranOut) {
        this.leaseExpiresAt = null;
        continue;
      }
      this.expiredLease = ranOut.expired;
      this.apply(ranOut.state, ranOut.transition, `lease-expired:${this.seq + 1}`, SYSTEM_ACTOR, ranOut.payload);
    }
  }

  /** Waiting on others too long: said once per wait, and shown as the Stalled search attribute. */
  async watchStall(): Promise<never> {
    for (;;) {
      await condition(() => this.waitingSince !== null && !this.stalled);
      const since = this.waitingSince!;
      const stallAfterMs = () =>
        this.timesRounds ? stallAfterFor(this.state, this.settings.stallAfterMs) : this.settings.stallAfterMs;
      const deadline = stallDeadline(since, stallAfterMs());
      const step = this.timesRounds ? awaitedStepOf(this.state) : awaitedStep(this.state);
      // Lean: the next step of a wait (a later start) is picked up when this timer fires, unless a
      // review round that opened since has a nearer deadline.
      const moved = await condition(
        () =>
          this.leanHistory
            ? this.waitingSince === null ||
              (this.stallTimerPerStep &&
                (this.timesRounds ? awaitedStepOf(this.state) : awaitedStep(this.state)) !== step) ||
              (this.timesRounds && stallDeadline(this.waitingSince, stallAfterMs()) < deadline)
            : this.waitingSince !== since,
        Math.max(1, deadline - Date.now()),
        { summary: `waiting for ${step} since ${clockTime(since, Date.now())}` },
      );
      const stall = moved || (this.leanHistory && this.waitingSince !== since) ? null : stallOf(this.state, since);
      if (!stall) continue;
      this.stalled = true;
      this.apply(this.state, stall.transition, `stalled:${this.seq + 1}`, SYSTEM_ACTOR, stall.payload);
    }
  }

  // ---- the outbox ----

  /** "persist review-complete by reviewer-1, seq 6"; a batch names its last transition and its range. */
  persistSummary(batch: TransitionRecord[]): string {
    const last = batch[batch.length - 1];
    const what = `${last.action} by ${this.nameOf(last.actor.agentId)}`;
    if (batch.length === 1) return `persist ${what}, seq ${last.seq}`;
    return `persist ${batch.length} transitions up to ${what}, seq ${batch[0].seq}–${last.seq}`;
  }

  /** What the persistence activity writes for `batch`: the transitions and the state they lead to. */
  persistInput(batch: TransitionRecord[]) {
    const { workflowId, state, stalled } = this;
    return {
      workflowId,
      runId: workflowInfo().runId,
      state,
      stalled,
      version: batch[batch.length - 1].seq,
      transitions: batch,
    };
  }

  /** The news for the story's dependents when `batch` verified it or took its verification back. */
  dependentsNews(batch: TransitionRecord[]) {
    const changed = batch.some(
      (t) => (t.from.verified_status === 'verified') !== (t.to.verified_status === 'verified'),
    );
    if (!changed) return null;
    const last = batch[batch.length - 1];
    return {
      summary: `tell the dependents of ${this.state.number}: ${last.to.verified_status}`,
      news: {
        tenantId: this.state.tenantId,
        storyId: this.state.storyId,
        verified: last.to.verified_status === 'verified',
        seq: last.seq,
      },
    };
  }

  /** The database has `batch`: its updates may return. */
  persistedBatch(batch: TransitionRecord[]): void {
    this.outbox.splice(0, batch.length);
    this.persistedSeq = batch[batch.length - 1].seq;
    if (this.persistenceFailing) {
      this.persistenceFailing = false;
      this.publish();
    }
  }

  persistenceFailed(): void {
    this.persistenceFailing = true;
    this.publish();
  }

  /**
   * The worker judged a batch and refused it: written nowhere, recorded as a violation. The story
   * holds still until an admin resumes it (a new run seeded from the database).
   */
  hold(): void {
    this.held = true;
    this.publish();
  }

  // ---- continue-as-new ----

  /** Time for a new run: the server suggests it, or this run accepted its share of transitions. */
  runIsFull(): boolean {
    return workflowInfo().continueAsNewSuggested || this.transitionsThisRun >= this.settings.maxTransitionsPerRun;
  }

  /** The next run's input: everything custody needs to carry on. */
  continuation(): StoryWorkflowInput {
    const { facts, trustedKeys, settings } = this.input;
    return {
      facts,
      trustedKeys,
      settings,
      carried: {
        state: this.state,
        seq: this.seq,
        outbox: this.outbox,
        processed: [...this.processed.entries()].slice(-this.settings.rememberedUpdates),
        leaseExpiresAt: this.leaseExpiresAt,
        waitingSince: this.waitingSince,
        stalled: this.stalled,
        agentNames: this.agentNames,
        violations: this.violations,
        expiredLease: this.expiredLease,
        trustedKeys: this.trustedKeys,
        keyRingIssuedAt: this.keyRingIssuedAt,
      },
    };
  }

  // ---- what the Temporal UI shows ----

  /** Shows the story's state (search attributes, in one upsert with `more`, and details). */
  publish(more: SearchAttributeUpdatePair[] = []): void {
    const { state, stalled } = this;
    upsertSearchAttributes([
      ...more,
      { key: StoryStatus, value: state.agentStatus },
      { key: VerifiedStatus, value: state.verifiedStatus },
      { key: AssignedAgent, value: state.assignedAgentId },
      // Upserts must repeat exactly on replay: histories from before stalls never set this key.
      ...(this.keepsTime ? [{ key: Stalled, value: stalled ? 'true' : null }] : []),
    ]);
    setCurrentDetails(this.details());
  }

  private details(): string {
    const { state } = this;
    const name = (agentId: string | null | undefined) => this.nameOf(agentId);
    const holder = state.assignedAgentId ? `held by \`${name(state.assignedAgentId)}\`` : 'not held';
    return [
      `**${state.number} ${state.title}**`,
      `status: \`${state.agentStatus}\` / \`${state.verifiedStatus}\`, iteration ${state.iteration}, ${holder}`,
      state.review && state.review.iteration === state.iteration
        ? `reviewed by \`${name(state.review.reviewer_agent_id)}\``
        : 'not reviewed this iteration',
      state.verifiedByAgentId ? `verified by \`${name(state.verifiedByAgentId)}\`` : '',
      this.stalled ? '**stalled: waiting too long for review or verification**' : '',
      this.leaseExpiresAt !== null ? `claim lease until ${new Date(this.leaseExpiresAt).toISOString()}` : '',
      this.persistenceFailing ? '**persistence failing: the read model is behind; retrying**' : '',
      `custody chain: implementer \`${name(state.assignedAgentId ?? state.implementerAgentIds.at(-1))}\` → ` +
        `reporter \`${name(state.reportedByAgentId)}\` → reviewer \`${name(state.reviewerAgentId)}\` → ` +
        `verifier \`${name(state.verifiedByAgentId)}\``,
      this.violations > 0
        ? `**custody violations: ${this.violations}** (rejected attempts, such as a self-review)`
        : '',
      this.held ? '**held: the worker refused to write a batch (integrity violation); an admin must resume**' : '',
    ]
      .filter(Boolean)
      .join('\n\n');
  }
}
