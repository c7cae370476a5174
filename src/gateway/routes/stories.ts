/** Story reads (from the read model) and story actions (through the story's workflow). */
import { z } from 'zod';
import { AGENT_STATUSES, VERIFIED_STATUSES } from '../../custody/actions.js';
import { ACTION_SPECS, COMMON_ACTION_ERRORS, ROUTED_ACTIONS, actionPath } from '../../custody/action-specs.js';
import { auditTrail, storyHistory, verifyAuditChain } from '../../db/audit-repo.js';
import { enforceStoredBytes, quotasOf } from '../../db/quotas.js';
import * as repo from '../../db/story-repo.js';
import { policyToPin } from '../../db/review-policy-repo.js';
import type { GatewayDeps } from '../app.js';
import { ApiError, notFound, parseOr400 } from '../errors.js';
import { custodyErrorOf } from '../temporal-errors.js';
import { statusOf } from '../../custody/errors.js';
import { callerOf } from '../middleware.js';
import type { RouteBook } from '../route-book.js';
import { historyJson, storyJson, withState } from '../views.js';
import { StoryInput, refuseDuplicateCriterionIds, refuseOversizedStory, storyContent } from '../backlog.js';
import { withProjectLock } from '../../db/project-lock.js';
import {
  OffsetPage,
  Page,
  Uuid,
  decodeCursor,
  notBlank,
  encodeCursor,
  invalidCursor,
  pageMeta,
  startOf,
  withUuid,
} from './params.js';

export const StoriesQuery = z.strictObject({
  project_id: Uuid.optional(),
  epic_id: Uuid.optional(),
  agent_status: z.enum(AGENT_STATUSES).optional(),
  verified_status: z.enum(VERIFIED_STATUSES).optional(),
  stalled: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  /** loopctl's: each story with its summed token usage. */
  include_token_totals: z.enum(['true', 'false']).optional(),
  ...OffsetPage,
});
export const ReadyQuery = z.strictObject({ project_id: Uuid.optional(), epic_id: Uuid.optional(), ...OffsetPage });
export const AuditQuery = z.strictObject({
  project_id: Uuid.optional(),
  story_id: Uuid.optional(),
  // Normalised to UTC and held to years PostgreSQL and JavaScript agree on (0000 or +23:00 offsets were a 500).
  since: z.iso
    .datetime({ offset: true })
    .transform((v) => new Date(v))
    .refine(
      (d) => !Number.isNaN(d.getTime()) && d.getUTCFullYear() >= 1 && d.getUTCFullYear() <= 9999,
      'a time between the years 1 and 9999',
    )
    .transform((d) => d.toISOString())
    .optional(),
  ...Page,
});

export const StoryPatch = z.strictObject({
  title: notBlank(500).optional(),
  description: z.string().max(20_000).nullable().optional(),
  acceptance_criteria: StoryInput.shape.acceptance_criteria.unwrap().optional(),
  estimated_hours: z.number().min(0).max(100_000).nullable().optional(),
  metadata: z.record(z.string().max(200), z.unknown()).optional(),
});
export const VerifyAllBody = z.strictObject({
  review_type: notBlank(64).optional(),
  summary: notBlank(20_000).optional(),
});

const AuditCursor = z.strictObject({ a: z.string().regex(/^\d{1,18}$/) });
export const HistoryQuery = z.strictObject({ ...Page });

export function storyRoutes(book: RouteBook, deps: GatewayDeps): void {
  const { pool, commands } = deps;

  async function storyOr404(tenantId: string, id: unknown) {
    const story = await withUuid(id, (id) => repo.getStory(pool, tenantId, id));
    if (!story) throw notFound('Story');
    return story;
  }

  async function dependencyStatus(tenantId: string, storyId: string): Promise<Record<string, boolean>> {
    const ids = await repo.dependencyIds(pool, tenantId, storyId);
    const rows = await repo.storiesByIds(pool, tenantId, ids);
    return Object.fromEntries(rows.map((r) => [r.id, r.verified_status === 'verified']));
  }

  book.add(
    {
      method: 'get',
      path: '/stories',
      summary: 'Stories, filtered, with cursor pagination',
      tag: 'Stories',
      query: StoriesQuery,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const q = parseOr400(StoriesQuery, req.query, 'invalid_query');
      const start = startOf(q);
      const { rows, more, total } = await repo.listStories(pool, caller.tenantId, {
        projectId: q.project_id,
        epicId: q.epic_id,
        agentStatus: q.agent_status,
        verifiedStatus: q.verified_status,
        stalled: q.stalled,
        ...start,
      });
      const tokens =
        q.include_token_totals === 'true'
          ? await repo.tokenTotals(pool, caller.tenantId, { storyIds: rows.map((r) => r.id) })
          : null;
      res.json({
        data: rows.map((s) => storyJson(s, tokens ? { tokenUsage: tokens.get(s.id) ?? null } : {})),
        meta: pageMeta(start, rows, more, total),
      });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/stories/ready',
      summary: 'Stories not yet claimed whose dependencies are all verified',
      tag: 'Stories',
      query: ReadyQuery,
    },
    async (req, res) => {
      const { start, filter } = waitingFilter(req.query);
      const { rows, more, total } = await repo.readyStories(pool, callerOf(res).tenantId, filter);
      res.json({ data: rows.map((s) => storyJson(s)), meta: pageMeta(start, rows, more, total) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/stories/blocked',
      summary: 'Stories waiting on dependencies',
      tag: 'Stories',
      query: ReadyQuery,
    },
    async (req, res) => {
      const { start, filter } = waitingFilter(req.query);
      const tenantId = callerOf(res).tenantId;
      const { rows, more, total } = await repo.blockedStories(pool, tenantId, filter);
      const blocking = await repo.blockingDependencies(
        pool,
        tenantId,
        rows.map((r) => r.id),
      );
      res.json({
        data: rows.map((s) => storyJson(s, { blocking: blocking.get(s.id) ?? [] })),
        meta: pageMeta(start, rows, more, total),
      });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/stories/:id',
      summary: "A story, with next_actions for the caller's role",
      tag: 'Stories',
    },
    async (req, res) => {
      const caller = callerOf(res);
      const story = await storyOr404(caller.tenantId, req.params.id);
      const tokens = await repo.tokenTotals(pool, caller.tenantId, { storyIds: [story.id] });
      res.json({
        data: storyJson(story, {
          caller,
          dependsOn: await dependencyStatus(caller.tenantId, story.id),
          tokenUsage: tokens.get(story.id) ?? null,
        }),
      });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/stories/:id/acceptance_criteria',
      summary: "A story's acceptance criteria (what a contract's ac_count counts)",
      tag: 'Stories',
    },
    async (req, res) => {
      const story = await storyOr404(callerOf(res).tenantId, req.params.id);
      res.json({
        data: {
          story_id: story.id,
          number: story.number,
          title: story.title,
          ac_count: story.acceptance_criteria.length,
          acceptance_criteria: story.acceptance_criteria,
        },
      });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/stories/:id/history',
      summary: 'Every accepted transition and rejected attempt, oldest first, a page at a time',
      tag: 'Stories',
      query: HistoryQuery,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const q = parseOr400(HistoryQuery, req.query, 'invalid_query');
      const afterSeq = auditCursorOf(q.cursor);
      const story = await storyOr404(caller.tenantId, req.params.id);
      const page = await storyHistory(pool, caller.tenantId, story.id, { afterSeq, limit: q.limit });
      res.json(auditPageJson(page, q.limit));
    },
  );

  for (const action of ROUTED_ACTIONS) {
    const spec = ACTION_SPECS[action];
    book.add(
      {
        method: 'post',
        path: actionPath(action),
        summary: spec.http.summary,
        tag: 'Lifecycle',
        body: spec.body,
        errors: [...COMMON_ACTION_ERRORS, ...spec.errors],
      },
      async (req, res) => {
        const caller = callerOf(res);
        // A tenant past its stored-bytes quota writes nothing more, rejected attempts included.
        // Read beside the story (two connections, one wait); its refusal comes after the story's.
        const spaceLeft = enforceStoredBytes(pool, caller.tenantId, quotasOf(deps.config));
        spaceLeft.catch(() => undefined);
        const story = await storyOr404(caller.tenantId, req.params.id);
        // Shape only (the same schema the rules use); what the body means is the workflow's call.
        const body = parseOr400(spec.body, req.body ?? {});
        refuseIfArchived(story);
        await spaceLeft;
        // A contract starts an iteration: it carries the project's review policy, which the iteration keeps.
        const pinned = action === 'contract' ? await policyToPin(pool, caller.tenantId, story.project_id) : null;
        const sent = pinned ? { ...(body as Record<string, unknown>), review_policy: pinned } : body;
        const view = await commands.act(caller, story, action, sent, res.locals.idempotencyKey as string | undefined);
        const updated = {
          ...withState(story, view.state, new Date()),
          lease_expires_at: view.leaseExpiresAt === null ? null : new Date(view.leaseExpiresAt),
        };
        // The workflow's own view of its dependencies: no second trip to the database.
        const dependsOn = Object.fromEntries(
          Object.entries(view.state.dependencies).map(([id, d]) => [id, d.verified]),
        );
        res.json({ data: storyJson(updated, { caller, dependsOn }) });
      },
    );
  }

  book.add(
    {
      method: 'patch',
      path: '/stories/:id',
      summary: "Edit a pending story's content (409 story_in_progress once contracted); judged by its workflow",
      tag: 'Stories',
      roles: ['admin', 'orchestrator'],
      body: StoryPatch,
      errors: ['story_in_progress', 'project_archived', 'duplicate_criterion_id'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const story = await storyOr404(caller.tenantId, req.params.id);
      const body = parseOr400(StoryPatch, req.body);
      refuseIfArchived(story);
      if (body.acceptance_criteria) refuseDuplicateCriterionIds(story.number, body.acceptance_criteria);
      // The per-story limit holds for the story as the edit leaves it, not only for the request.
      refuseOversizedStory(
        story.number,
        storyContent({
          title: body.title ?? story.title,
          description: body.description !== undefined ? body.description : story.description,
          acceptance_criteria: body.acceptance_criteria ?? story.acceptance_criteria,
          estimated_hours: body.estimated_hours !== undefined ? body.estimated_hours : story.estimated_hours,
          metadata: body.metadata ?? story.metadata,
        }),
      );
      const content: Record<string, unknown> = {};
      for (const field of ['description', 'acceptance_criteria', 'estimated_hours', 'metadata'] as const) {
        if (body[field] !== undefined) content[field] = body[field];
      }
      await commands.act(
        caller,
        story,
        'edit',
        {
          ...(body.title !== undefined ? { title: body.title } : {}),
          ...(body.acceptance_criteria !== undefined ? { ac_count: body.acceptance_criteria.length } : {}),
          content,
        },
        res.locals.idempotencyKey as string | undefined,
      );
      res.json({ data: storyJson(await storyOr404(caller.tenantId, story.id), { caller }) });
    },
  );

  book.add(
    {
      method: 'delete',
      path: '/stories/:id',
      summary: 'Withdraw a pending story (its row and history are kept); refused while others depend on it',
      tag: 'Stories',
      roles: ['admin', 'orchestrator'],
      errors: ['story_in_progress', 'conflict', 'project_archived'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const story = await storyOr404(caller.tenantId, req.params.id);
      refuseIfArchived(story);
      // Under the project's lock, held until the workflow has withdrawn the story: a dependency
      // added meanwhile (which takes the same lock) would otherwise point at a withdrawn story.
      await withProjectLock(pool, story.project_id, async (db) => {
        const dependents = await repo.liveDependents(db, caller.tenantId, story.id);
        if (dependents.length > 0) {
          throw new ApiError('conflict', 'Other stories depend on this one; remove those dependencies first.', {
            dependents,
          });
        }
        await commands.act(caller, story, 'delete', {});
      });
      res.json({ data: { id: story.id, number: story.number, deleted: true } });
    },
  );

  book.add(
    {
      method: 'post',
      path: '/epics/:epic_id/verify-all',
      summary: "Verify every reported story of the epic, each judged by the same gates; lists each story's outcome",
      tag: 'Lifecycle',
      roles: ['orchestrator'],
      body: VerifyAllBody,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const epic = await withUuid(req.params.epic_id, (id) => repo.getEpic(pool, caller.tenantId, id));
      if (!epic) throw notFound('Epic');
      const body = parseOr400(VerifyAllBody, req.body);
      const { rows } = await repo.listStories(pool, caller.tenantId, { epicId: epic.id, limit: 100_000 });
      const outcomes: { story_id: string; number: string; outcome: string; message?: string }[] = [];
      for (const story of rows) {
        if (story.verified_status === 'verified') {
          outcomes.push({ story_id: story.id, number: story.number, outcome: 'already_verified' });
          continue;
        }
        if (story.agent_status !== 'reported_done') {
          outcomes.push({ story_id: story.id, number: story.number, outcome: 'not_reported' });
          continue;
        }
        refuseIfArchived(story);
        try {
          await commands.act(caller, story, 'verify', body);
          outcomes.push({ story_id: story.id, number: story.number, outcome: 'verified' });
        } catch (err) {
          // A story's refusal is its outcome; what is wrong with the service fails the request.
          const refusal = custodyErrorOf(err);
          if (!refusal || statusOf(refusal.code) >= 500) throw err;
          outcomes.push({ story_id: story.id, number: story.number, outcome: refusal.code, message: refusal.message });
        }
      }
      res.json({
        data: {
          epic_id: epic.id,
          verified_count: outcomes.filter((o) => o.outcome === 'verified').length,
          results: outcomes,
        },
      });
    },
  );

  book.add(
    {
      method: 'post',
      path: '/stories/:id/heartbeat',
      summary: 'The assignee keeps its claim alive (the lease runs lease_ttl_seconds from now)',
      tag: 'Lifecycle',
      body: z.strictObject({}),
      errors: ['not_assigned_agent', 'invalid_transition', 'story_closed', 'story_held'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const story = await storyOr404(caller.tenantId, req.params.id);
      parseOr400(z.strictObject({}), req.body ?? {});
      refuseIfArchived(story);
      const view = await commands.heartbeat(caller, story, res.locals.idempotencyKey as string | undefined);
      res.json({
        data: {
          story_id: story.id,
          lease_expires_at: view.leaseExpiresAt === null ? null : new Date(view.leaseExpiresAt).toISOString(),
        },
      });
    },
  );

  const ResumeBody = z.strictObject({ reason: z.string().trim().min(1).max(2000).optional() });
  book.add(
    {
      method: 'post',
      path: '/stories/:id/resume',
      summary: 'Resume a closed or held story: a new run seeded from the stored custody state (admin, audited)',
      tag: 'Lifecycle',
      roles: ['admin'],
      body: ResumeBody,
      errors: ['conflict', 'forbidden'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const story = await storyOr404(caller.tenantId, req.params.id);
      const body = parseOr400(ResumeBody, req.body ?? {});
      const resumed = await commands.resume(caller, story.id, body.reason);
      res.json({ data: storyJson(resumed, { caller, dependsOn: await dependencyStatus(caller.tenantId, story.id) }) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/audit/verify',
      summary: "Recompute the tenant's audit hash chain; report the first broken link",
      tag: 'Audit',
      roles: ['admin', 'orchestrator'],
    },
    async (_req, res) => {
      res.json({ data: await verifyAuditChain(pool, callerOf(res).tenantId) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/audit',
      summary: "The tenant's audit trail",
      tag: 'Audit',
      roles: ['admin', 'orchestrator'],
      query: AuditQuery,
    },
    async (req, res) => {
      const q = parseOr400(AuditQuery, req.query, 'invalid_query');
      const afterSeq = auditCursorOf(q.cursor);
      const page = await auditTrail(pool, callerOf(res).tenantId, {
        projectId: q.project_id,
        storyId: q.story_id,
        since: q.since,
        afterSeq,
        limit: q.limit,
      });
      res.json(auditPageJson(page, q.limit));
    },
  );
}

/** The position an audit page's cursor holds (undefined: from the start); 400 when it is not valid. */
function auditCursorOf(cursor: string | undefined): string | undefined {
  const after = decodeCursor(AuditCursor, cursor);
  if (after === null) throw invalidCursor();
  return after?.a;
}

/** A page of a story's history or of the audit trail, with the cursor of the next page. */
function auditPageJson(page: { rows: Parameters<typeof historyJson>[0][]; nextAfter: string | null }, limit: number) {
  return {
    data: page.rows.map(historyJson),
    meta: { limit, next_cursor: page.nextAfter === null ? null : encodeCursor({ a: page.nextAfter }) },
  };
}

/** The ready and blocked lists' query: a page of a project's or an epic's waiting stories. */
function waitingFilter(query: unknown) {
  const q = parseOr400(ReadyQuery, query, 'invalid_query');
  const start = startOf(q);
  return { start, filter: { projectId: q.project_id, epicId: q.epic_id, ...start } };
}

/** An archived project is read-only: its stories take no action. */
export function refuseIfArchived(story: { project_archived: boolean; project_id: string }): void {
  if (story.project_archived) {
    throw new ApiError('project_archived', 'The project is archived: it is read-only.', {
      project_id: story.project_id,
    });
  }
}
