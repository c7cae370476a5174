/**
 * The gateway's only way to change a story: sign the caller's identity into an envelope and send
 * it to the story's workflow as an update. The custody rules run in the workflow, not here.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  WorkflowClient,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  WorkflowNotFoundError,
  type Client,
} from '@temporalio/client';
import { workflowStanding } from '../temporal/client.js';
import type pg from 'pg';
import type { Action } from '../custody/actions.js';
import { agentActor, signedActor } from '../custody/actor.js';
import {
  acceptedKeys,
  bodyDigest,
  signDependencyNews,
  signEnvelope,
  signKeyRingNews,
  type KeyRing,
} from '../custody/identity.js';
import { appliedUpdates, keepHeartbeatDeadline, recordRejectedAttempt, recordResume } from '../db/custody-store.js';
import { inTransaction } from '../db/pool.js';
import type { Caller } from '../db/identity-repo.js';
import type { StoryRow } from '../db/story-repo.js';
import {
  STORY_WORKFLOW_TYPE,
  dependencyStatusSignal,
  heartbeatUpdate,
  keyRingSignal,
  storyUpdates,
  type StoryFacts,
  type StoryView,
  type StoryWorkflowInput,
  type StoryWorkflowSettings,
} from '../../workflows/messages.js';
import { ProjectId, StoryStatus, TenantId, VerifiedStatus } from '../../workflows/search-attributes.js';
import { holdsLease, isAwaitingOthers, type DependencyStatus } from '../custody/rules.js';
import { isAction } from '../custody/actions.js';
import { storedCustodyState } from '../db/custody-state.js';
import { getStory, projectTimings, recordLeaseDeadline } from '../db/story-repo.js';
import { isNotFound, isResourceExhausted, rejectionOf, storyClosed, type JudgedRejection } from './temporal-errors.js';
import { CustodyError } from '../custody/errors.js';
import { auditWriteFailures, rejections, transitionSeconds, transitions } from '../observability/metrics.js';
import { dispatchPending, type WebhookDispatch } from '../webhooks/outbox.js';
import { ViolationSignals } from './violation-signals.js';

export interface StoryCommandsOptions {
  client: Client;
  pool: pg.Pool;
  /** The gateway signs with the ring's current key; stories learn the ring from signed news. */
  keyRing: KeyRing;
  taskQueue: string;
  deadlineMs: number;
  workflowSettings?: Partial<StoryWorkflowSettings>;
  webhooks: WebhookDispatch;
  /** At most one violation-count signal per story this often (ms). */
  violationSignalIntervalMs?: number;
}

/** Readable in the Temporal UI, unique per tenant, project and story number. */
export function storyWorkflowId(tenantSlug: string, projectSlug: string, storyNumber: string): string {
  return `story/${tenantSlug}/${projectSlug}/${storyNumber}`;
}

/** One update id per (agent, Idempotency-Key and request): a retried call is applied once. */
export function updateIdFor(caller: Caller, idempotencyKey: string | undefined): string {
  if (!idempotencyKey) return randomUUID();
  return (
    'idem-' +
    createHash('sha256').update(`${caller.tenantId}\n${caller.agentId}\n${idempotencyKey}`).digest('hex').slice(0, 40)
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the Temporal UI shows as the identity of an update the caller sent: `reviewer-1 (agent) @ acme`. */
function temporalIdentityOf(caller: Caller): string {
  return `${caller.agentName ?? caller.agentId} (${caller.role}) @ ${caller.tenantSlug ?? caller.tenantId}`;
}

/**
 * Workflow clients by identity, all on the one connection: Temporal takes the identity per client,
 * and a client is a few objects (the connection is what is expensive). The least recently used
 * goes first once there are more than `max`.
 */
export class IdentityClients {
  private readonly clients = new Map<string, WorkflowClient>();
  constructor(
    private readonly client: Client,
    private readonly max = 256,
  ) {}

  for(identity: string): WorkflowClient {
    let found = this.clients.get(identity);
    if (found) {
      this.clients.delete(identity);
    } else {
      const { namespace, dataConverter, interceptors } = this.client.options;
      found = new WorkflowClient({
        connection: this.client.connection,
        namespace,
        dataConverter,
        interceptors: interceptors.workflow,
        identity,
      });
      if (this.clients.size >= this.max) this.clients.delete(this.clients.keys().next().value!);
    }
    this.clients.set(identity, found);
    return found;
  }
}

export class StoryCommands {
  private readonly identityClients: IdentityClients;
  private readonly violations: ViolationSignals;
  private keyRing: KeyRing;

  constructor(private readonly options: StoryCommandsOptions) {
    this.keyRing = options.keyRing;
    this.identityClients = new IdentityClients(options.client);
    // Signed like actions, with the current key of the ring as it is when each signal goes: a
    // story that heard of a rotation may no longer trust the key this gateway started with.
    this.violations = new ViolationSignals(
      options.client,
      options.pool,
      () => this.keyRing.current,
      options.violationSignalIntervalMs,
    );
  }

  /** The gateway's signing secret, from which other gateway-only keys are derived. */
  get signingSecret(): Uint8Array {
    return this.keyRing.current.secretKey;
  }

  get currentKeyRing(): KeyRing {
    return this.keyRing;
  }

  /** A new ring (a key added or retired): running stories hear of it on their next action. */
  useKeyRing(ring: KeyRing): void {
    this.keyRing = ring;
  }

  get webhooks(): WebhookDispatch {
    return this.options.webhooks;
  }

  /** Keeps the caller's claim alive; only its assignee may. */
  async heartbeat(caller: Caller, story: StoryRow, idempotencyKey?: string): Promise<StoryView> {
    const sentAt = Date.now();
    const view = await this.act(caller, story, 'heartbeat', {}, idempotencyKey);
    // The worker refuses a lease expiry dated before the kept deadline. Best effort: a deadline not
    // moved here only lets the worker accept an expiry earlier than it could have, never refuse one.
    if (view.leaseExpiresAt !== null && view.leaseExpiresAt !== undefined) {
      await keepHeartbeatDeadline(this.options.pool, story, caller.agentId, {
        answeredDeadline: view.leaseExpiresAt,
        sentAt,
      }).catch(() => undefined);
    }
    return view;
  }

  async act(
    caller: Caller,
    story: StoryRow,
    action: Action | 'heartbeat',
    body: unknown,
    idempotencyKey?: string,
  ): Promise<StoryView> {
    const { client, deadlineMs } = this.options;
    if ((story as { held?: boolean }).held) {
      throw new CustodyError('story_held', 'The story is held after an integrity violation; an admin must resume it.');
    }
    const ring = this.keyRing;
    const updateId = updateIdFor(caller, idempotencyKey);
    const envelope = signEnvelope(ring.current, story.workflow_id, {
      updateId,
      action,
      actor: signedActor(caller),
      body,
      issuedAt: Date.now(),
    });
    // Sent as the agent, so the update's event in the Temporal UI says who acted.
    const handle = this.identityClients.for(temporalIdentityOf(caller)).getHandle(story.workflow_id);
    const deadline = Date.now() + deadlineMs;
    const endTimer = transitionSeconds.startTimer({ action });
    let toldRing = false;
    for (let attempt = 0; ; attempt++) {
      try {
        const view = await client.withDeadline(deadline, () =>
          handle.executeUpdate(action === 'heartbeat' ? heartbeatUpdate : storyUpdates[action], {
            args: [envelope],
            updateId,
          }),
        );
        endTimer();
        transitions.inc({ action, outcome: 'accepted' });
        // What GET /stories/:id shows of the claim's lease (a heartbeat is no transition, so the
        // projection does not hold it). A miss leaves the previous deadline: a read, not custody.
        // Most transitions neither take nor move a lease: then there is nothing to write.
        if ((story.lease_expires_at?.getTime() ?? null) !== view.leaseExpiresAt) {
          await recordLeaseDeadline(this.options.pool, story.id, view.leaseExpiresAt).catch(() => undefined);
        }
        // A key retired from the ring is dropped by the story as soon as it next acts.
        if (view.trustedKeys && !sameKeys(view.trustedKeys, acceptedKeys(ring))) {
          await this.tellKeyRing(story.workflow_id, ring).catch(() => undefined);
        }
        return view;
      } catch (err) {
        // Too many updates in flight on this story: it was not admitted, so trying again is safe.
        if (isResourceExhausted(err) && Date.now() + 50 < deadline) {
          await sleep(Math.min(25 * 2 ** attempt, 500) * (0.5 + Math.random()));
          continue;
        }
        const rejection = rejectionOf(err);
        // The story does not know the current key yet: it hears of the ring (signed with every
        // key of it, one of which it trusts) and the same envelope is sent once more.
        if (rejection?.code === 'unauthorized' && rejection.context.key_untrusted === true && !toldRing) {
          toldRing = true;
          await this.tellKeyRing(story.workflow_id, ring);
          continue;
        }
        if (isNotFound(err) && (await this.isClosed(story.workflow_id))) throw storyClosed();
        if (rejection) {
          transitions.inc({ action, outcome: 'rejected' });
          rejections.inc({ code: rejection.code });
          await this.recordRejection(caller, story, action, body, updateId, rejection);
        }
        // Answered by the error middleware, which knows what each of Temporal's errors means.
        throw err;
      }
    }
  }

  /**
   * The attempt goes into the story's history; a custody violation also goes to webhooks (row and
   * event in one transaction, src/db/custody-store.ts). Retried briefly: the caller's answer does not wait long on it.
   */
  private async recordRejection(
    caller: Caller,
    story: StoryRow,
    action: Action | 'heartbeat',
    body: unknown,
    updateId: string,
    rejection: JudgedRejection,
  ): Promise<void> {
    const { pool, webhooks } = this.options;
    // The story as the workflow judged the attempt; this gateway's read of it came earlier and may
    // be stale (another action accepted in between). Only a failure without it falls back to the read.
    const judged = rejection.judged ?? {
      agent_status: story.agent_status,
      verified_status: story.verified_status,
      iteration: story.iteration,
    };
    let sourceKey: string | null | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        sourceKey = await recordRejectedAttempt(pool, {
          tenantId: caller.tenantId,
          story,
          updateId,
          action,
          actor: agentActor(caller),
          agentStatus: judged.agent_status,
          verifiedStatus: judged.verified_status,
          iteration: judged.iteration,
          judgedSeq: rejection.judged?.seq,
          payload: body,
          rejection,
        });
        break;
      } catch {
        if (attempt >= 3) {
          auditWriteFailures.inc();
          return;
        }
        await sleep(100 * 2 ** attempt);
      }
    }
    if (!sourceKey) return;
    this.violations.raised(story);
    // A delivery not started here is started by the worker's sweep.
    await dispatchPending(pool, webhooks, [sourceKey]).catch(() => undefined);
  }

  /**
   * An admin's resume: a new run of a closed or held story, seeded from the database (never from
   * what the old run carried) so custody continues: past implementers, iteration, review, and
   * the sequence. Audited; the old run, if one still runs (a held story), is terminated.
   */
  async resume(caller: Caller, storyId: string, reason: string | undefined): Promise<StoryRow> {
    const { client, pool, taskQueue, workflowSettings } = this.options;
    return inTransaction(pool, async (db) => {
      const stored = await storedCustodyState(db, { tenantId: caller.tenantId, storyId }, { lock: true });
      if (!stored) throw new CustodyError('not_found', 'Story not found.');
      const { row, state } = stored;
      const handle = client.workflow.getHandle(row.workflow_id);
      let previous: { run_id: string; status: string } | null = null;
      try {
        const description = await handle.describe();
        previous = { run_id: description.runId, status: description.status.name };
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      if (previous?.status === 'RUNNING' && !row.held) {
        throw new CustodyError('conflict', 'The story is running and not held: there is nothing to resume.', {
          run_id: previous.run_id,
        });
      }
      const project = await projectTimings(db, row.project_id);
      const settings: Partial<StoryWorkflowSettings> = {
        leaseTtlMs: project.lease_ttl_seconds * 1000,
        stallAfterMs: project.stall_after_seconds * 1000,
        ...workflowSettings,
      };
      // Updates already applied answer as repeats in the new run too (their bodies are the payloads).
      const applied = await appliedUpdates(db, row.workflow_id);
      const processed: [string, { seq: number; bodyDigest: string; action: Action }][] = applied
        .filter((r) => isAction(r.action))
        .map((r) => [
          r.update_id,
          { seq: Number(r.seq), bodyDigest: bodyDigest(r.payload), action: r.action as Action },
        ]);
      const now = Date.now();
      // A claim held when the story stopped gets a whole lease from now; a wait starts again. The
      // database keeps the same, for the worker to judge the new run's expiries and stalls by.
      const clocks = {
        leaseExpiresAt: holdsLease(state) ? now + (settings.leaseTtlMs ?? 30 * 60_000) : null,
        waitingSince: isAwaitingOthers(state) ? now : null,
      };
      const keys = acceptedKeys(this.keyRing);
      const input: StoryWorkflowInput = {
        facts: {
          tenantId: row.tenant_id,
          projectId: row.project_id,
          storyId: row.id,
          number: row.number,
          title: row.title,
          acCount: state.acCount,
          dependsOn: Object.keys(state.dependencies),
        },
        trustedKeys: keys,
        settings,
        carried: {
          state,
          seq: stored.version,
          outbox: [],
          processed,
          ...clocks,
          stalled: stored.stalled,
          trustedKeys: keys,
          keyRingIssuedAt: 0,
        },
      };
      await recordLeaseDeadline(db, row.id, input.carried!.leaseExpiresAt ?? null);
      await recordResume(db, row, {
        previousRunId: previous?.run_id ?? null,
        updateId: `resume:${randomUUID()}`,
        actor: agentActor(caller),
        payload: { reason: reason ?? null, previous_run: previous, held_reason: row.held_reason, seq: stored.version },
        clocks,
      });
      // The one explicit start of a closed id; inside the transaction, so a failed start leaves it closed.
      await client.workflow.start(STORY_WORKFLOW_TYPE, {
        workflowId: row.workflow_id,
        taskQueue,
        args: [input],
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.TERMINATE_EXISTING,
        staticSummary: `${row.number} ${row.title}`,
        staticDetails:
          `Story ${row.number} of project ${row.project_id} (tenant ${row.tenant_id}); story id ${row.id}; ` +
          `resumed by an admin from the database at sequence ${stored.version}.`,
        typedSearchAttributes: [
          { key: TenantId, value: row.tenant_id },
          { key: ProjectId, value: row.project_id },
          { key: StoryStatus, value: state.agentStatus },
          { key: VerifiedStatus, value: state.verifiedStatus },
        ],
      });
      return (await getStory(db, caller.tenantId, row.id))!;
    });
  }

  /** Sends the story the key ring, signed with each of its keys. */
  async tellKeyRing(workflowId: string, ring: KeyRing = this.keyRing): Promise<void> {
    await this.options.client.workflow
      .getHandle(workflowId)
      .signal(keyRingSignal, signKeyRingNews(ring, workflowId, Date.now()));
  }

  /** Whether the story's workflow ran and was closed (terminated, completed, failed...). */
  async isClosed(workflowId: string): Promise<boolean> {
    return (await workflowStanding(this.options.client, workflowId)) === 'closed';
  }

  /**
   * Starts the story's workflow, or leaves the running one alone: safe to call again. A closed
   * story is never started again here (409 story_closed): only an admin's resume does that.
   */
  async start(
    facts: StoryFacts,
    workflowId: string,
    summary: string,
    knownDependencyStatus: Record<string, DependencyStatus>,
    projectSettings: Partial<StoryWorkflowSettings> = {},
  ): Promise<void> {
    const { client, taskQueue, workflowSettings } = this.options;
    const input: StoryWorkflowInput = {
      facts,
      trustedKeys: acceptedKeys(this.keyRing),
      knownDependencyStatus,
      settings: { ...projectSettings, ...workflowSettings },
    };
    // A closed story's id is refused (WorkflowExecutionAlreadyStartedError): 409 story_closed.
    await client.workflow.start(STORY_WORKFLOW_TYPE, {
      workflowId,
      taskQueue,
      args: [input],
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      // A closed id is never started again implicitly (USE_EXISTING reuses running ones only).
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      staticSummary: summary,
      staticDetails: `Story ${facts.number} of project ${facts.projectId} (tenant ${facts.tenantId}); story id ${facts.storyId}.`,
      typedSearchAttributes: [
        { key: TenantId, value: facts.tenantId },
        { key: ProjectId, value: facts.projectId },
        { key: StoryStatus, value: 'pending' },
        { key: VerifiedStatus, value: 'unverified' },
      ],
    });
  }

  async tellDependencyStatus(dependentWorkflowId: string, dependency: StoryRow): Promise<void> {
    try {
      const handle = this.options.client.workflow.getHandle(dependentWorkflowId);
      // The ring first: a story that does not know the current key yet would drop the news.
      await handle.signal(keyRingSignal, signKeyRingNews(this.keyRing, dependentWorkflowId, Date.now()));
      await handle.signal(
        dependencyStatusSignal,
        signDependencyNews(this.keyRing.current, dependentWorkflowId, {
          storyId: dependency.id,
          verified: dependency.verified_status === 'verified',
          seq: Number(dependency.version),
        }),
      );
    } catch (err) {
      // The edge is committed; a story whose workflow is not running yet (its import is still to
      // be retried) must hear of it later, so the caller is told to retry, not that it is gone.
      if (err instanceof WorkflowNotFoundError) {
        // A closed story hears nothing more (and is not started again to hear it).
        if (await this.isClosed(dependentWorkflowId)) return;
        throw new CustodyError('unavailable', "The story's workflow is not running yet; retry shortly.", {}, 2);
      }
      throw err;
    }
  }
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((k) => b.includes(k));
}
