/** Story reads (from the read model) and story actions (through the story's workflow). */
import { Router } from 'express';
import { z } from 'zod';
import { ACTION_BODIES, AGENT_STATUSES, VERIFIED_STATUSES, isAction } from '../../custody/actions.js';
import { auditTrail, storyHistory } from '../../db/audit-repo.js';
import * as repo from '../../db/story-repo.js';
import type { GatewayDeps } from '../app.js';
import { ApiError, notFound, parseOr400 } from '../errors.js';
import { callerOf, requireRole } from '../middleware.js';
import { historyJson, storyJson, withState } from '../views.js';
import { Page, Uuid, decodeCursor, encodeCursor, withUuid } from './params.js';

export const StoriesQuery = z.strictObject({
  project_id: Uuid.optional(),
  epic_id: Uuid.optional(),
  agent_status: z.enum(AGENT_STATUSES).optional(),
  verified_status: z.enum(VERIFIED_STATUSES).optional(),
  ...Page,
});
export const ReadyQuery = z.strictObject({ project_id: Uuid.optional(), limit: Page.limit });
export const AuditQuery = z.strictObject({
  project_id: Uuid.optional(),
  story_id: Uuid.optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  ...Page,
});

const StoryCursor = z.strictObject({ c: z.iso.datetime({ offset: true }), i: Uuid });
const AuditCursor = z.strictObject({ a: z.string().regex(/^\d{1,18}$/) });

export function storiesRouter(deps: GatewayDeps): Router {
  const { pool, commands } = deps;
  const router = Router();

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

  router.get('/stories', async (req, res) => {
    const caller = callerOf(res);
    const q = parseOr400(StoriesQuery, req.query, 'invalid_query');
    const after = decodeCursor(StoryCursor, q.cursor);
    if (after === null) throw new ApiError('invalid_query', 'The cursor is not valid.');
    const rows = await repo.listStories(pool, caller.tenantId, {
      projectId: q.project_id,
      epicId: q.epic_id,
      agentStatus: q.agent_status,
      verifiedStatus: q.verified_status,
      after: after ? { createdAt: after.c, id: after.i } : undefined,
      limit: q.limit,
    });
    const last = rows[rows.length - 1];
    const next = rows.length === q.limit && last ? encodeCursor({ c: last.created_at.toISOString(), i: last.id }) : null;
    res.json({ data: rows.map((s) => storyJson(s)), meta: { limit: q.limit, next_cursor: next } });
  });

  router.get('/stories/ready', async (req, res) => {
    const q = parseOr400(ReadyQuery, req.query, 'invalid_query');
    const rows = await repo.readyStories(pool, callerOf(res).tenantId, q.project_id, q.limit);
    res.json({ data: rows.map((s) => storyJson(s)), meta: { limit: q.limit, next_cursor: null } });
  });

  router.get('/stories/blocked', async (req, res) => {
    const q = parseOr400(ReadyQuery, req.query, 'invalid_query');
    const rows = await repo.blockedStories(pool, callerOf(res).tenantId, q.project_id, q.limit);
    res.json({ data: rows.map((s) => storyJson(s)), meta: { limit: q.limit, next_cursor: null } });
  });

  router.get('/stories/:id', async (req, res) => {
    const caller = callerOf(res);
    const story = await storyOr404(caller.tenantId, req.params.id);
    res.json({ data: storyJson(story, { caller, dependsOn: await dependencyStatus(caller.tenantId, story.id) }) });
  });

  router.get('/stories/:id/history', async (req, res) => {
    const caller = callerOf(res);
    const story = await storyOr404(caller.tenantId, req.params.id);
    const rows = await storyHistory(pool, caller.tenantId, story.id);
    res.json({ data: rows.map(historyJson), meta: { limit: rows.length, next_cursor: null } });
  });

  router.post('/stories/:id/:action', async (req, res) => {
    const caller = callerOf(res);
    const { action } = req.params;
    if (!isAction(action)) throw notFound('Action');
    // Shape only (the same schema the rules use); what the body means is the workflow's call.
    const body = parseOr400(ACTION_BODIES[action], req.body ?? {});
    const story = await storyOr404(caller.tenantId, req.params.id);
    const view = await commands.act(caller, story, action, body, res.locals.idempotencyKey as string | undefined);
    const updated = withState(story, view.state, new Date());
    res.json({ data: storyJson(updated, { caller, dependsOn: await dependencyStatus(caller.tenantId, story.id) }) });
  });

  router.get('/audit', requireRole('admin', 'orchestrator'), async (req, res) => {
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
      meta: { limit: q.limit, next_cursor: rows.length === q.limit && last ? encodeCursor({ a: String(last.id) }) : null },
    });
  });

  return router;
}
