/** Story reads (from the read model) and story actions (through the story's workflow). */
import { z } from 'zod';
import { ACTIONS, AGENT_STATUSES, VERIFIED_STATUSES, type Action } from '../../custody/actions.js';
import { ACTION_BODIES } from '../../custody/action-bodies.js';
import { auditTrail, storyHistory, verifyAuditChain } from '../../db/audit-repo.js';
import * as repo from '../../db/story-repo.js';
import type { GatewayDeps } from '../app.js';
import { ApiError, notFound, parseOr400 } from '../errors.js';
import { callerOf } from '../middleware.js';
import type { RouteBook } from '../route-book.js';
import { historyJson, storyJson, withState } from '../views.js';
import { Page, Uuid, decodeCursor, encodeCursor, withUuid } from './params.js';

export const StoriesQuery = z.strictObject({
  project_id: Uuid.optional(),
  epic_id: Uuid.optional(),
  agent_status: z.enum(AGENT_STATUSES).optional(),
  verified_status: z.enum(VERIFIED_STATUSES).optional(),
  stalled: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  ...Page,
});
export const ReadyQuery = z.strictObject({ project_id: Uuid.optional(), limit: Page.limit });
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

const StoryCursor = z.strictObject({ p: z.string().regex(/^\d{1,18}$/) });
const AuditCursor = z.strictObject({ a: z.string().regex(/^\d{1,18}$/) });

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
      const after = decodeCursor(StoryCursor, q.cursor);
      if (after === null) throw new ApiError('invalid_query', 'The cursor is not valid.');
      const rows = await repo.listStories(pool, caller.tenantId, {
        projectId: q.project_id,
        epicId: q.epic_id,
        agentStatus: q.agent_status,
        verifiedStatus: q.verified_status,
        stalled: q.stalled,
        after: after?.p,
        limit: q.limit,
      });
      const last = rows[rows.length - 1];
      const next = rows.length === q.limit && last ? encodeCursor({ p: String(last.position) }) : null;
      res.json({ data: rows.map((s) => storyJson(s)), meta: { limit: q.limit, next_cursor: next } });
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
      const q = parseOr400(ReadyQuery, req.query, 'invalid_query');
      const rows = await repo.readyStories(pool, callerOf(res).tenantId, q.project_id, q.limit);
      res.json({ data: rows.map((s) => storyJson(s)), meta: { limit: q.limit, next_cursor: null } });
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
      const q = parseOr400(ReadyQuery, req.query, 'invalid_query');
      const rows = await repo.blockedStories(pool, callerOf(res).tenantId, q.project_id, q.limit);
      res.json({ data: rows.map((s) => storyJson(s)), meta: { limit: q.limit, next_cursor: null } });
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
      res.json({ data: storyJson(story, { caller, dependsOn: await dependencyStatus(caller.tenantId, story.id) }) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/stories/:id/history',
      summary: 'Every accepted transition and rejected attempt, oldest first',
      tag: 'Stories',
    },
    async (req, res) => {
      const caller = callerOf(res);
      const story = await storyOr404(caller.tenantId, req.params.id);
      const rows = await storyHistory(pool, caller.tenantId, story.id);
      res.json({ data: rows.map(historyJson), meta: { limit: rows.length, next_cursor: null } });
    },
  );

  for (const action of ACTIONS) {
    book.add(
      {
        method: 'post',
        path: `/stories/:id/${action}`,
        summary: ACTION_SUMMARIES[action],
        tag: 'Lifecycle',
        body: ACTION_BODIES[action],
        errors: ACTION_ERRORS[action],
      },
      async (req, res) => {
        const caller = callerOf(res);
        const story = await storyOr404(caller.tenantId, req.params.id);
        // Shape only (the same schema the rules use); what the body means is the workflow's call.
        const body = parseOr400(ACTION_BODIES[action], req.body ?? {});
        const view = await commands.act(caller, story, action, body, res.locals.idempotencyKey as string | undefined);
        const updated = withState(story, view.state, new Date());
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
      method: 'post',
      path: '/stories/:id/heartbeat',
      summary: 'The assignee keeps its claim alive (the lease runs lease_ttl_seconds from now)',
      tag: 'Lifecycle',
      body: z.strictObject({}),
      errors: ['not_assigned_agent', 'invalid_transition'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const story = await storyOr404(caller.tenantId, req.params.id);
      parseOr400(z.strictObject({}), req.body ?? {});
      const view = await commands.heartbeat(caller, story, res.locals.idempotencyKey as string | undefined);
      res.json({
        data: {
          story_id: story.id,
          lease_expires_at: view.leaseExpiresAt === null ? null : new Date(view.leaseExpiresAt).toISOString(),
        },
      });
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
      const after = decodeCursor(AuditCursor, q.cursor);
      if (after === null) throw new ApiError('invalid_query', 'The cursor is not valid.');
      const rows = await auditTrail(pool, callerOf(res).tenantId, {
        projectId: q.project_id,
        storyId: q.story_id,
        since: q.since,
        afterId: after?.a,
        limit: q.limit,
      });
      const last = rows[rows.length - 1];
      res.json({
        data: rows.map(historyJson),
        meta: {
          limit: q.limit,
          next_cursor: rows.length === q.limit && last ? encodeCursor({ a: String(last.id) }) : null,
        },
      });
    },
  );
}

const ACTION_SUMMARIES: Record<Action, string> = {
  contract: 'Contract a pending story: title and number of acceptance criteria must match',
  claim: 'Claim a contracted story whose dependencies are verified (one claimant wins)',
  start: 'Start implementing (the assignee only)',
  'request-review': 'Ask for review (the assignee only)',
  report: 'Report the story done: never by its implementer (self_report_blocked)',
  'review-complete': 'Record the review: never by the implementer; fixes + disproved = findings',
  verify: 'Verify a reviewed story: never by the implementer nor by the reviewer',
  reject: 'Reject: back to pending, iteration + 1 (a reason is required)',
  unclaim: 'Give the story back (the assignee only)',
  'force-unclaim': 'Take the story back from its assignee (a reason is required)',
};

const COMMON_ACTION_ERRORS = ['invalid_transition', 'forbidden', 'timeout'];
const ACTION_ERRORS: Record<Action, string[]> = {
  contract: [...COMMON_ACTION_ERRORS, 'contract_mismatch'],
  claim: [...COMMON_ACTION_ERRORS, 'dependencies_not_met'],
  start: [...COMMON_ACTION_ERRORS, 'not_assigned_agent'],
  'request-review': [...COMMON_ACTION_ERRORS, 'not_assigned_agent'],
  report: [...COMMON_ACTION_ERRORS, 'self_report_blocked'],
  'review-complete': [...COMMON_ACTION_ERRORS, 'self_review_blocked', 'findings_math_mismatch', 'review_required'],
  verify: [...COMMON_ACTION_ERRORS, 'self_verify_blocked', 'verifier_is_reviewer', 'review_required'],
  reject: [...COMMON_ACTION_ERRORS, 'reason_required'],
  unclaim: [...COMMON_ACTION_ERRORS, 'not_assigned_agent'],
  'force-unclaim': [...COMMON_ACTION_ERRORS, 'reason_required'],
};
