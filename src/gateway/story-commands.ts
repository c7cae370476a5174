/**
 * The gateway's only way to change a story: sign the caller's identity into an envelope and send
 * it to the story's workflow as an update. The custody rules run in the workflow, not here.
 */
import { createHash, randomUUID } from 'node:crypto';
import { WorkflowClient, WorkflowIdConflictPolicy, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type pg from 'pg';
import type { Action } from '../custody/actions.js';
import { signDependencyNews, signEnvelope, type SigningKey } from '../custody/identity.js';
import { recordRejection } from '../db/audit-repo.js';
import { inTransaction } from '../db/pool.js';
import type { Caller } from '../db/identity-repo.js';
import type { StoryRow } from '../db/story-repo.js';
import {
  STORY_WORKFLOW_TYPE,
  dependencyStatusSignal,
  heartbeatUpdate,
  storyUpdates,
  type StoryFacts,
  type StoryView,
  type StoryWorkflowInput,
  type StoryWorkflowSettings,
} from '../../workflows/messages.js';
import { ProjectId, StoryStatus, TenantId, VerifiedStatus } from '../../workflows/search-attributes.js';
import type { DependencyStatus, Rejection } from '../custody/rules.js';
import { isResourceExhausted, rejectionOf, temporalToApiError } from './temporal-errors.js';
import { ApiError } from './errors.js';
import { auditWriteFailures, rejections, transitionSeconds, transitions } from '../observability/metrics.js';
import { CUSTODY_VIOLATIONS } from '../custody/errors.js';
import { dispatchPending, enqueueEvent, type WebhookDispatch } from '../webhooks/outbox.js';
import { ViolationSignals } from './violation-signals.js';

export interface StoryCommandsOptions {
  client: Client;
  pool: pg.Pool;
  signingKey: SigningKey;
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

  constructor(private readonly options: StoryCommandsOptions) {
    this.identityClients = new IdentityClients(options.client);
    this.violations = new ViolationSignals(
      options.client,
      options.pool,
      options.signingKey,
      options.violationSignalIntervalMs,
    );
  }

  /** The gateway's signing secret, from which other gateway-only keys are derived. */
  get signingSecret(): Uint8Array {
    return this.options.signingKey.secretKey;
  }

  get webhooks(): WebhookDispatch {
    return this.options.webhooks;
  }

  /** Keeps the caller's claim alive; only its assignee may. */
  async heartbeat(caller: Caller, story: StoryRow, idempotencyKey?: string): Promise<StoryView> {
    return this.act(caller, story, 'heartbeat', {}, idempotencyKey);
  }

  async act(
    caller: Caller,
    story: StoryRow,
    action: Action | 'heartbeat',
    body: unknown,
    idempotencyKey?: string,
  ): Promise<StoryView> {
    const { client, signingKey, deadlineMs } = this.options;
    const updateId = updateIdFor(caller, idempotencyKey);
    const envelope = signEnvelope(signingKey, story.workflow_id, {
      updateId,
      action,
      actor: { tenantId: caller.tenantId, agentId: caller.agentId, role: caller.role, name: caller.agentName },
      body,
      issuedAt: Date.now(),
    });
    // Sent as the agent, so the update's event in the Temporal UI says who acted.
    const handle = this.identityClients.for(temporalIdentityOf(caller)).getHandle(story.workflow_id);
    const deadline = Date.now() + deadlineMs;
    const endTimer = transitionSeconds.startTimer({ action });
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
        return view;
      } catch (err) {
        // Too many updates in flight on this story: it was not admitted, so trying again is safe.
        if (isResourceExhausted(err) && Date.now() + 50 < deadline) {
          await sleep(Math.min(25 * 2 ** attempt, 500) * (0.5 + Math.random()));
          continue;
        }
        const rejection = rejectionOf(err);
        if (rejection) {
          transitions.inc({ action, outcome: 'rejected' });
          rejections.inc({ code: rejection.code });
          await this.recordRejection(caller, story, action, body, updateId, rejection);
        }
        throw temporalToApiError(err) ?? err;
      }
    }
  }

  /**
   * The attempt goes into the story's history; a custody violation also goes to webhooks (row and
   * event in one transaction). Retried briefly: the caller's answer does not wait long on it.
   */
  private async recordRejection(
    caller: Caller,
    story: StoryRow,
    action: Action | 'heartbeat',
    body: unknown,
    updateId: string,
    rejection: Rejection,
  ): Promise<void> {
    const { pool, webhooks } = this.options;
    const violation = CUSTODY_VIOLATIONS.has(rejection.code);
    const sourceKey = `${story.workflow_id}:${updateId}:rejected`;
    for (let attempt = 0; ; attempt++) {
      try {
        await inTransaction(pool, async (db) => {
          await recordRejection(db, {
            tenantId: caller.tenantId,
            projectId: story.project_id,
            storyId: story.id,
            workflowId: story.workflow_id,
            updateId,
            action,
            actorAgentId: caller.agentId,
            actorRole: caller.role,
            agentStatus: story.agent_status,
            verifiedStatus: story.verified_status,
            iteration: story.iteration,
            payload: body,
            rejection,
          });
          if (!violation) return;
          await enqueueEvent(db, caller.tenantId, 'custody.violation', sourceKey, {
            code: rejection.code,
            message: rejection.message,
            action,
            actor: { agent_id: caller.agentId, role: caller.role },
            story: { id: story.id, project_id: story.project_id, number: story.number, title: story.title },
          });
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
    if (!violation) return;
    this.violations.raised(story);
    // A delivery not started here is started by the worker's sweep.
    await dispatchPending(pool, webhooks, [sourceKey]).catch(() => undefined);
  }

  /** Starts the story's workflow, or leaves the running one alone: safe to call again. */
  async start(
    facts: StoryFacts,
    workflowId: string,
    summary: string,
    knownDependencyStatus: Record<string, DependencyStatus>,
    projectSettings: Partial<StoryWorkflowSettings> = {},
  ): Promise<void> {
    const { client, signingKey, taskQueue, workflowSettings } = this.options;
    const input: StoryWorkflowInput = {
      facts,
      trustedKeys: [signingKey.publicKey],
      knownDependencyStatus,
      settings: { ...projectSettings, ...workflowSettings },
    };
    try {
      await client.workflow.start(STORY_WORKFLOW_TYPE, {
        workflowId,
        taskQueue,
        args: [input],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
        staticSummary: summary,
        staticDetails: `Story ${facts.number} of project ${facts.projectId} (tenant ${facts.tenantId}); story id ${facts.storyId}.`,
        typedSearchAttributes: [
          { key: TenantId, value: facts.tenantId },
          { key: ProjectId, value: facts.projectId },
          { key: StoryStatus, value: 'pending' },
          { key: VerifiedStatus, value: 'unverified' },
        ],
      });
    } catch (err) {
      throw temporalToApiError(err) ?? err;
    }
  }

  async tellDependencyStatus(dependentWorkflowId: string, dependency: StoryRow): Promise<void> {
    try {
      await this.options.client.workflow.getHandle(dependentWorkflowId).signal(
        dependencyStatusSignal,
        signDependencyNews(this.options.signingKey, dependentWorkflowId, {
          storyId: dependency.id,
          verified: dependency.verified_status === 'verified',
          seq: Number(dependency.version),
        }),
      );
    } catch (err) {
      // The edge is committed; a story whose workflow is not running yet (its import is still to
      // be retried) must hear of it later, so the caller is told to retry, not that it is gone.
      if (err instanceof WorkflowNotFoundError) {
        throw new ApiError(
          'unavailable',
          "The story's workflow is not running yet; retry shortly.",
          {},
          { 'Retry-After': '2' },
        );
      }
      throw temporalToApiError(err) ?? err;
    }
  }
}
