/**
 * One story, one workflow. Every lifecycle action arrives as a Workflow Update whose validator
 * runs the custody rules, so a rejected action never enters the accepted history. An accepted one
 * changes the state at once (before any await, so two racing claims cannot both pass), goes to
 * an outbox, and the update returns only once the database has it.
 *
 * Deterministic code only: no I/O, no Node imports; time is the workflow's own.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { StoryActivities } from '../activities/types.js';
import { ACTIONS, type Action } from '../src/custody/actions.js';
import {
  bodyDigest,
  dependencyNewsProblem,
  envelopeProblem,
  keyRingNewsProblem,
  type ActionEnvelope,
} from '../src/custody/identity.js';
import {
  applyDependencyStatus,
  checkHeartbeat,
  checkStorableBody,
  checkMeaningfulText,
  decide,
  expireLease,
  explainByLease,
  holdsLease,
  isAwaitingOthers,
  judge,
  newStoryState,
  type Decision,
  type ExpiredLease,
  type Rejection,
  type StoryState,
  type Transition,
} from '../src/custody/rules.js';
import {
  DEFAULT_SETTINGS,
  custodyViolationsSignal,
  dependencyStatusSignal,
  heartbeatUpdate,
  keyRingSignal,
  storyQuery,
  storyUpdates,
  type ProcessedUpdate,
  type StoryView,
  type StoryWorkflowInput,
  type TransitionRecord,
} from './messages.js';
import { trustedViolationCount } from '../src/custody/violation-news.js';
import {
  AssignedAgent,
  CustodyViolations,
  ProjectId,
  Stalled,
  StoryStatus,
  TenantId,
  VerifiedStatus,
} from './search-attributes.js';

// A database outage is retried until the database is back; bad data is not retried.
const PERSISTENCE_RETRY = {
  initialInterval: '200 milliseconds',
  backoffCoefficient: 2,
  maximumInterval: '10 seconds',
  nonRetryableErrorTypes: ['InvalidProjection'],
};
// Regular activities, not local ones: an activity is scheduled by the same workflow task that
// accepts the update, so nothing reaches the database before the transition is in history. A
// local activity would write during the task, and a task lost to a crash would leave a write for
// a transition that, replayed, might be judged differently (an envelope expired meanwhile).
const ACTIVITY_OPTIONS = { startToCloseTimeout: '30 seconds', retry: PERSISTENCE_RETRY } as const;

/** The activities with a one-line summary the Temporal UI shows for the event (say who and what). */
const summarised = (summary: string) => proxyActivities<StoryActivities>({ ...ACTIVITY_OPTIONS, summary });

/** Clock time for a summary: `14:05 UTC`, or the date too when it is not today. */
function clockTime(ms: number, now: number): string {
  const iso = new Date(ms).toISOString();
  const sameDay = iso.slice(0, 10) === new Date(now).toISOString().slice(0, 10);
  return `${sameDay ? '' : iso.slice(0, 10) + ' '}${iso.slice(11, 16)} UTC`;
}

/** How long the outbox waits before trying again after a non-retryable persistence failure. */
const PERSISTENCE_RETRY_AFTER = '1 minute';

function isIntegrityViolation(err: unknown): boolean {
  return (
    err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'IntegrityViolation'
  );
}

function heldRejection(): Rejection {
  return {
    code: 'story_held',
    status: 409,
    message: 'The story is held after an integrity violation; an admin must resume it.',
    context: {},
  };
}

function rejectionFailure(rejection: Rejection): ApplicationFailure {
  return ApplicationFailure.create({
    type: rejection.code,
    message: rejection.message,
    details: [rejection],
    nonRetryable: true,
  });
}

export async function storyWorkflow(input: StoryWorkflowInput): Promise<void> {
  const settings = { ...DEFAULT_SETTINGS, ...input.settings };
  const { workflowId } = workflowInfo();
  let state: StoryState = input.carried?.state ?? newStoryState(input.facts);
  if (!input.carried) {
    for (const [id, status] of Object.entries(input.knownDependencyStatus ?? {})) {
      state = applyDependencyStatus(state, id, status);
    }
  }
  let seq = input.carried?.seq ?? 0;
  const outbox: TransitionRecord[] = [...(input.carried?.outbox ?? [])];
  let persistedSeq = outbox.length > 0 ? outbox[0].seq - 1 : seq;
  const processed = new Map<string, ProcessedUpdate>(input.carried?.processed ?? []);
  let transitionsThisRun = 0;
  let persistenceFailing = false;
  // Leases and stalls came after the first histories were written; those replay without them.
  const keepsTime = patched('claim-leases-and-stalls');
  // Runs started before dependency news was signed took it unsigned, and must replay as they ran.
  const checksNewsSignatures = patched('signed-dependency-news');
  let leaseExpiresAt: number | null = input.carried?.leaseExpiresAt ?? null;
  let waitingSince: number | null = input.carried?.waitingSince ?? null;
  let stalled = input.carried?.stalled ?? false;
  // Display only: who each agent id is, as the gateway signed it into the agent's envelopes.
  const agentNames: Record<string, string> = { ...input.carried?.agentNames };
  let violations = input.carried?.violations ?? 0;
  const nameOf = (agentId: string | null | undefined): string =>
    !agentId ? '—' : (agentNames[agentId] ?? (agentId === 'system' ? 'system' : agentId));
  // Whose claim ran out last, so its holder's next call is told why it is refused (validators only).
  let expiredLease: ExpiredLease | null = input.carried?.expiredLease ?? null;
  // The keys this story accepts: those it was started with, until signed key ring news replaces them.
  let trustedKeys: string[] = input.carried?.trustedKeys ?? input.trustedKeys;
  let keyRingIssuedAt = input.carried?.keyRingIssuedAt ?? 0;
  // The worker refused to write a batch (an integrity violation): nothing more is accepted.
  let held = false;

  const view = (repeated: boolean): StoryView => ({
    workflowId,
    state,
    seq,
    repeated,
    leaseExpiresAt,
    stalled,
    trustedKeys,
    held,
  });

  /** Applies an accepted transition: state, outbox, clocks and what the UI shows, all at once. */
  function apply(
    next: StoryState,
    transition: Transition,
    updateId: string,
    actor: { agentId: string; role: string },
    payload: unknown,
    envelope?: ActionEnvelope,
  ): number {
    const mySeq = ++seq;
    state = next;
    transitionsThisRun++;
    if (transition.action !== 'stalled') {
      if (keepsTime) {
        // A project without leases (lease_ttl 0, refused by the API before it meant that) sets no clock.
        leaseExpiresAt =
          !holdsLease(state) || settings.leaseTtlMs <= 0
            ? null
            : transition.action === 'claim' || leaseExpiresAt === null
              ? Date.now() + settings.leaseTtlMs
              : leaseExpiresAt;
        waitingSince = isAwaitingOthers(state) ? Date.now() : null;
      }
      stalled = false;
    }
    outbox.push({
      ...transition,
      updateId,
      seq: mySeq,
      actor,
      payload: payload ?? {},
      occurredAt: new Date().toISOString(),
      ...(envelope ? { envelope } : {}),
    });
    publish();
    return mySeq;
  }

  /** Identity first, then the rules: an envelope the gateway did not sign is never judged on its merits. */
  function validate(action: Action, envelope: ActionEnvelope): Decision {
    const refusal = identityRefusal(envelope, action);
    if (refusal) return { ok: false, rejection: refusal };
    const unstorable = checkStorableBody(envelope.body);
    if (unstorable) return { ok: false, rejection: unstorable };
    // Accepted only if accepted both as the story stands and as it stands once an overdue lease
    // is expired: the handler judges the former, the clock the latter.
    // `judge` adds the rules the handler must not re-run (histories from before them replay as they ran).
    const now = judge(state, envelope.actor, action, envelope.body);
    if (!now.ok) return byLease(now.rejection, state, envelope.actor, action, expiredLease);
    const meaningless = checkMeaningfulText(action, envelope.body);
    if (meaningless) return { ok: false, rejection: meaningless };
    const judged = judgedState();
    if (judged === state) return now;
    const late = judge(judged, envelope.actor, action, envelope.body);
    return late.ok ? now : byLease(late.rejection, judged, envelope.actor, action, overdueLease());
  }

  function byLease(
    refusal: Rejection,
    judged: StoryState,
    actor: unknown,
    action: string,
    expired: ExpiredLease | null,
  ): Decision {
    return { ok: false, rejection: explainByLease(refusal, judged, actor, action, expired) };
  }

  /** The claim whose deadline has passed though its timer has not fired yet, as it will be recorded. */
  function overdueLease(): ExpiredLease | null {
    if (leaseExpiresAt === null || state.assignedAgentId === null) return null;
    return {
      agentId: state.assignedAgentId,
      expiredAt: new Date(leaseExpiresAt).toISOString(),
      iteration: state.iteration,
    };
  }

  /**
   * The state a request is judged against. Past the lease deadline the claim is over even if its
   * timer has not been handled yet: a task that carries both a late request and the fired timer
   * runs the request first, which would otherwise accept a `start` or a heartbeat from an agent
   * that no longer holds the story. Validators only (they do not run on replay).
   */
  function judgedState(): StoryState {
    if (keepsTime && leaseExpiresAt !== null && Date.now() >= leaseExpiresAt) return expireLease(state)?.state ?? state;
    return state;
  }

  /** Held first (nothing is judged), then the envelope's signature against the keys trusted now. */
  function identityRefusal(envelope: ActionEnvelope, action: Action | 'heartbeat'): Rejection | null {
    if (held) return heldRejection();
    const problem = envelopeProblem(workflowId, envelope, trustedKeys, Date.now());
    if (problem === null && envelope.action === action) return null;
    return {
      code: 'unauthorized',
      status: 401,
      message: "The caller's identity could not be verified.",
      // Tells the gateway its key is new to this story (it then sends key ring news and retries).
      context: problem === 'signature not from a trusted gateway' ? { key_untrusted: true } : {},
    };
  }

  function repeatOf(action: Action, envelope: ActionEnvelope): ProcessedUpdate | undefined {
    const earlier = typeof envelope?.updateId === 'string' ? processed.get(envelope.updateId) : undefined;
    if (earlier && (earlier.action !== action || earlier.bodyDigest !== bodyDigest(envelope.body))) {
      throw rejectionFailure({
        code: 'idempotency_key_reused',
        status: 422,
        message: 'This idempotency key was already used with a different request.',
        context: {},
      });
    }
    return earlier;
  }

  function publish(): void {
    upsertSearchAttributes([
      { key: StoryStatus, value: state.agentStatus },
      { key: VerifiedStatus, value: state.verifiedStatus },
      { key: AssignedAgent, value: state.assignedAgentId },
      // Upserts must repeat exactly on replay: histories from before stalls never set this key.
      ...(keepsTime ? [{ key: Stalled, value: stalled ? 'true' : null }] : []),
    ]);
    const holder = state.assignedAgentId ? `held by \`${nameOf(state.assignedAgentId)}\`` : 'not held';
    setCurrentDetails(
      [
        `**${state.number} ${state.title}**`,
        `status: \`${state.agentStatus}\` / \`${state.verifiedStatus}\`, iteration ${state.iteration}, ${holder}`,
        state.review && state.review.iteration === state.iteration
          ? `reviewed by \`${nameOf(state.review.reviewer_agent_id)}\``
          : 'not reviewed this iteration',
        state.verifiedByAgentId ? `verified by \`${nameOf(state.verifiedByAgentId)}\`` : '',
        stalled ? '**stalled: waiting too long for review or verification**' : '',
        leaseExpiresAt !== null ? `claim lease until ${new Date(leaseExpiresAt).toISOString()}` : '',
        persistenceFailing ? '**persistence failing: the read model is behind; retrying**' : '',
        `custody chain: implementer \`${nameOf(state.assignedAgentId ?? state.implementerAgentIds.at(-1))}\` → ` +
          `reporter \`${nameOf(state.reportedByAgentId)}\` → reviewer \`${nameOf(state.reviewerAgentId)}\` → ` +
          `verifier \`${nameOf(state.verifiedByAgentId)}\``,
        violations > 0 ? `**custody violations: ${violations}** (rejected attempts, such as a self-review)` : '',
        held ? '**held: the worker refused to write a batch (integrity violation); an admin must resume**' : '',
      ]
        .filter(Boolean)
        .join('\n\n'),
    );
  }

  for (const action of ACTIONS) {
    setHandler(
      storyUpdates[action],
      async (envelope: ActionEnvelope): Promise<StoryView> => {
        const earlier = repeatOf(action, envelope);
        if (earlier) {
          await condition(() => persistedSeq >= earlier.seq || held);
          if (persistedSeq < earlier.seq) throw rejectionFailure(heldRejection());
          return view(true);
        }
        // The signature was checked by the validator (validators do not run on replay, so the
        // handler must not depend on time); the rules run again because the state may have moved.
        const decision = decide(state, envelope.actor, action, envelope.body);
        if (!decision.ok) throw rejectionFailure(decision.rejection);
        processed.set(envelope.updateId, { seq: seq + 1, bodyDigest: bodyDigest(envelope.body), action });
        // Signed with the rest of the envelope (the validator checked it); shown, never judged.
        if (typeof envelope.actor.name === 'string')
          agentNames[envelope.actor.agentId] = envelope.actor.name.slice(0, 100);
        const mySeq = apply(
          decision.state,
          decision.transition,
          envelope.updateId,
          { agentId: envelope.actor.agentId, role: envelope.actor.role },
          envelope.body,
          envelope,
        );
        await condition(() => persistedSeq >= mySeq || held);
        if (persistedSeq < mySeq) throw rejectionFailure(heldRejection());
        return view(false);
      },
      {
        validator: (envelope: ActionEnvelope): void => {
          if (repeatOf(action, envelope)) return;
          const decision = validate(action, envelope);
          if (!decision.ok) throw rejectionFailure(decision.rejection);
        },
        description: `${action}: the story lifecycle action, judged by the custody rules`,
      },
    );
  }

  setHandler(dependencyStatusSignal, (news) => {
    if (typeof news?.storyId !== 'string' || typeof news.verified !== 'boolean' || typeof news.seq !== 'number') return;
    // News a Temporal client forged could unblock a claim: only signed news counts.
    if (checksNewsSignatures && dependencyNewsProblem(workflowId, news, trustedKeys) !== null) return;
    state = applyDependencyStatus(state, news.storyId, { verified: news.verified, seq: news.seq });
  });
  setHandler(keyRingSignal, (news) => {
    // Signed by a key this story already trusts, and newer than the last: a key added or retired.
    if (keyRingNewsProblem(workflowId, news, trustedKeys, keyRingIssuedAt) !== null) return;
    trustedKeys = [...news.keys];
    keyRingIssuedAt = news.issuedAt;
  });
  setHandler(storyQuery, () => view(false));
  // The gateway coalesces these (one per story per minute at most), so a flood of rejected
  // attempts cannot flood this history; the count is a total, so only a higher one changes anything.
  setHandler(custodyViolationsSignal, (news) => {
    const count = trustedViolationCount(workflowId, news, trustedKeys);
    if (count === null || count <= violations || !patched('custody-violations')) return;
    violations = count;
    upsertSearchAttributes([{ key: CustodyViolations, value: count }]);
    publish();
  });

  if (keepsTime) {
    setHandler(
      heartbeatUpdate,
      (envelope: ActionEnvelope): StoryView => {
        const rejection = checkHeartbeat(state, envelope.actor);
        if (rejection) throw rejectionFailure(rejection);
        leaseExpiresAt = settings.leaseTtlMs > 0 ? Date.now() + settings.leaseTtlMs : null;
        publish();
        return view(false);
      },
      {
        validator: (envelope: ActionEnvelope): void => {
          const rejection: Rejection | null =
            identityRefusal(envelope, 'heartbeat') ?? heartbeatRefusal(envelope.actor);
          if (rejection) throw rejectionFailure(rejection);
        },
        description: 'heartbeat: the assignee keeps its claim alive',
      },
    );
  }

  /** A heartbeat is judged as the story stands and as it stands once an overdue lease is expired. */
  function heartbeatRefusal(actor: unknown): Rejection | null {
    const now = checkHeartbeat(state, actor);
    if (now) return explainByLease(now, state, actor, 'heartbeat', expiredLease);
    const judged = judgedState();
    const late = judged === state ? null : checkHeartbeat(judged, actor);
    return late && explainByLease(late, judged, actor, 'heartbeat', overdueLease());
  }

  const SYSTEM = { agentId: 'system', role: 'system' };

  /** A durable timer per claim: no heartbeat before the deadline, and the story is free again. */
  async function watchLease(): Promise<never> {
    for (;;) {
      await condition(() => leaseExpiresAt !== null);
      const deadline = leaseExpiresAt!;
      const moved = await condition(() => leaseExpiresAt !== deadline, Math.max(1, deadline - Date.now()), {
        summary: `claim lease of ${nameOf(state.assignedAgentId)} until ${clockTime(deadline, Date.now())}`,
      });
      if (moved) continue;
      const expiry = expireLease(state);
      // The actor is time itself; the payload says whose claim ended.
      const details = { lease_expired_at: new Date(deadline).toISOString(), previous_assignee: state.assignedAgentId };
      if (expiry) {
        expiredLease = {
          agentId: state.assignedAgentId!,
          expiredAt: details.lease_expired_at,
          iteration: state.iteration,
        };
        apply(expiry.state, expiry.transition, `lease-expired:${seq + 1}`, SYSTEM, details);
      } else leaseExpiresAt = null;
    }
  }

  /** Waiting on others too long: said once per wait, and shown as the Stalled search attribute. */
  async function watchStall(): Promise<never> {
    for (;;) {
      await condition(() => waitingSince !== null && !stalled);
      const since = waitingSince!;
      const waitingFor = state.agentStatus === 'review_requested' ? 'review' : 'verification';
      const moved = await condition(
        () => waitingSince !== since,
        Math.max(1, since + settings.stallAfterMs - Date.now()),
        { summary: `waiting for ${waitingFor} since ${clockTime(since, Date.now())}` },
      );
      if (moved || !isAwaitingOthers(state)) continue;
      stalled = true;
      const transition: Transition = {
        action: 'stalled',
        from: { agent_status: state.agentStatus, verified_status: state.verifiedStatus },
        to: { agent_status: state.agentStatus, verified_status: state.verifiedStatus },
        iteration: state.iteration,
      };
      apply(state, transition, `stalled:${seq + 1}`, SYSTEM, { waiting_since: new Date(since).toISOString() });
    }
  }

  /** "persist review-complete by reviewer-1, seq 6"; a batch names its last transition and its range. */
  function persistSummary(batch: TransitionRecord[]): string {
    const last = batch[batch.length - 1];
    const what = `${last.action} by ${nameOf(last.actor.agentId)}`;
    if (batch.length === 1) return `persist ${what}, seq ${last.seq}`;
    return `persist ${batch.length} transitions up to ${what}, seq ${batch[0].seq}–${last.seq}`;
  }

  /** Drains the outbox into the database, oldest first, as many transitions per activity as are waiting. */
  async function persistOutbox(): Promise<never> {
    for (;;) {
      await condition(() => outbox.length > 0);
      const batch = outbox.slice();
      const last = batch[batch.length - 1];
      try {
        await summarised(persistSummary(batch)).persistTransitions({
          workflowId,
          runId: workflowInfo().runId,
          state,
          stalled,
          version: last.seq,
          transitions: batch,
        });
      } catch (err) {
        // The worker judged the batch and refused it: written nowhere, recorded as a violation.
        // The story holds still until an admin resumes it (a new run seeded from the database).
        if (isIntegrityViolation(err) && patched('integrity-hold')) {
          held = true;
          publish();
          await condition(() => false);
        }
        persistenceFailing = true;
        publish();
        await sleep(PERSISTENCE_RETRY_AFTER, { summary: 'persistence failed: trying again in a minute' });
        continue;
      }
      const verifiedChange = batch.some(
        (t) => (t.from.verified_status === 'verified') !== (t.to.verified_status === 'verified'),
      );
      if (verifiedChange) {
        // Before the update returns: once a verify is answered, its dependents can be claimed.
        await summarised(`tell the dependents of ${state.number}: ${last.to.verified_status}`).notifyDependents({
          tenantId: state.tenantId,
          storyId: state.storyId,
          verified: last.to.verified_status === 'verified',
          seq: last.seq,
        });
      }
      outbox.splice(0, batch.length);
      persistedSeq = last.seq;
      if (persistenceFailing) {
        persistenceFailing = false;
        publish();
      }
    }
  }

  if (!input.carried) {
    upsertSearchAttributes([
      { key: TenantId, value: state.tenantId },
      { key: ProjectId, value: state.projectId },
    ]);
  }
  publish();
  void persistOutbox();
  if (keepsTime) {
    void watchLease();
    void watchStall();
  }

  await condition(() => workflowInfo().continueAsNewSuggested || transitionsThisRun >= settings.maxTransitionsPerRun);
  // Nothing may be dropped: every running update finishes and everything accepted is persisted.
  await condition(() => allHandlersFinished() && outbox.length === 0);
  const remembered = [...processed.entries()].slice(-settings.rememberedUpdates);
  await continueAsNew<typeof storyWorkflow>({
    facts: input.facts,
    trustedKeys: input.trustedKeys,
    settings: input.settings,
    carried: {
      state,
      seq,
      outbox,
      processed: remembered,
      leaseExpiresAt,
      waitingSince,
      stalled,
      agentNames,
      violations,
      expiredLease,
      trustedKeys,
      keyRingIssuedAt,
    },
  });
}
