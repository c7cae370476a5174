/** Projects, epics, story creation, dependencies and progress. */
import { z } from 'zod';
import { findCycle } from '../../custody/dependency-graph.js';
import { getTenant } from '../../db/identity-repo.js';
import { inTransaction } from '../../db/pool.js';
import * as repo from '../../db/story-repo.js';
import type { GatewayDeps } from '../app.js';
import { ImportBody, StoryInput, importBacklog } from '../backlog.js';
import { ApiError, notFound, parseOr400 } from '../errors.js';
import { callerOf } from '../middleware.js';
import type { RouteBook } from '../route-book.js';
import { epicJson, projectJson, storyJson } from '../views.js';
import { Uuid, withUuid } from './params.js';

export const ProjectBody = z.strictObject({
  name: z.string().trim().min(1).max(200),
  slug: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes'),
  description: z.string().max(20_000).optional(),
  /** Seconds a claim lives without a heartbeat (default 30 minutes). */
  lease_ttl_seconds: z
    .number()
    .int()
    .min(1)
    .max(30 * 86_400)
    .optional(),
  /** Seconds a story may wait on review or verification before it is stalled (default a day). */
  stall_after_seconds: z
    .number()
    .int()
    .min(1)
    .max(365 * 86_400)
    .optional(),
});
export const EpicBody = z.strictObject({
  number: z.number().int().min(0).max(1_000_000),
  title: z.string().min(1).max(500),
  description: z.string().max(20_000).optional(),
});
export const DependencyBody = z.strictObject({ story_id: Uuid, depends_on_story_id: Uuid });

export function projectRoutes(book: RouteBook, deps: GatewayDeps): void {
  const { pool } = deps;

  async function projectOr404(tenantId: string, id: unknown) {
    const project = await withUuid(id, (id) => repo.getProject(pool, tenantId, id));
    if (!project) throw notFound('Project');
    return project;
  }
  async function tenantOf(tenantId: string) {
    const tenant = await getTenant(pool, tenantId);
    if (!tenant) throw notFound('Tenant');
    return tenant;
  }

  book.add(
    {
      method: 'post',
      path: '/projects',
      summary: 'Create a project',
      tag: 'Projects',
      roles: ['admin'],
      body: ProjectBody,
      status: 201,
      errors: ['conflict'],
    },
    async (req, res) => {
      const body = parseOr400(ProjectBody, req.body);
      const project = await repo.createProject(pool, callerOf(res).tenantId, body);
      if (!project)
        throw new ApiError('conflict', `A project with slug ${body.slug} already exists.`, { slug: body.slug });
      res.status(201).json({ data: projectJson(project) });
    },
  );

  book.add(
    { method: 'get', path: '/projects', summary: 'Projects of the tenant', tag: 'Projects' },
    async (_req, res) => {
      const projects = await repo.listProjects(pool, callerOf(res).tenantId);
      res.json({ data: projects.map(projectJson), meta: { limit: projects.length, next_cursor: null } });
    },
  );

  book.add({ method: 'get', path: '/projects/:id', summary: 'One project', tag: 'Projects' }, async (req, res) => {
    res.json({ data: projectJson(await projectOr404(callerOf(res).tenantId, req.params.id)) });
  });

  book.add(
    {
      method: 'post',
      path: '/projects/:id/import',
      summary: 'Import a backlog, all or nothing; starts one workflow per story; idempotent',
      tag: 'Projects',
      roles: ['admin', 'orchestrator'],
      body: ImportBody,
      status: 201,
      errors: ['dependency_cycle'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.id);
      const body = parseOr400(ImportBody, req.body);
      const result = await importBacklog(deps, await tenantOf(caller.tenantId), project, body);
      res.status(201).json({
        data: {
          project_id: project.id,
          stories_count: result.stories.length,
          created_count: result.created,
          stories: result.stories.map((s) => storyJson(s)),
        },
      });
    },
  );

  book.add(
    {
      method: 'post',
      path: '/projects/:project_id/epics',
      summary: 'Create an epic',
      tag: 'Projects',
      roles: ['admin', 'orchestrator'],
      body: EpicBody,
      status: 201,
      errors: ['conflict'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.project_id);
      const body = parseOr400(EpicBody, req.body);
      const existing = (await repo.listEpics(pool, caller.tenantId, project.id)).find((e) => e.number === body.number);
      if (existing) throw new ApiError('conflict', `Epic ${body.number} already exists.`, { number: body.number });
      res.status(201).json({ data: epicJson(await repo.upsertEpic(pool, caller.tenantId, project.id, body)) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/projects/:project_id/epics',
      summary: 'Epics of a project',
      tag: 'Projects',
      roles: ['admin', 'orchestrator'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.project_id);
      const epics = await repo.listEpics(pool, caller.tenantId, project.id);
      res.json({ data: epics.map(epicJson), meta: { limit: epics.length, next_cursor: null } });
    },
  );

  book.add(
    {
      method: 'post',
      path: '/epics/:epic_id/stories',
      summary: 'Create a story and start its workflow',
      tag: 'Stories',
      roles: ['admin', 'orchestrator'],
      body: StoryInput,
      status: 201,
      errors: ['conflict', 'dependency_cycle'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const epic = await withUuid(req.params.epic_id, (id) => repo.getEpic(pool, caller.tenantId, id));
      if (!epic) throw notFound('Epic');
      const story = parseOr400(StoryInput, req.body);
      const project = await projectOr404(caller.tenantId, epic.project_id);
      const existing = await repo.projectStoriesByNumber(pool, caller.tenantId, project.id);
      if (existing.has(story.number))
        throw new ApiError('conflict', `Story ${story.number} already exists.`, { number: story.number });
      const result = await importBacklog(deps, await tenantOf(caller.tenantId), project, {
        epics: [{ number: epic.number, title: epic.title, stories: [story] }],
      });
      res.status(201).json({ data: storyJson(result.stories[0], { caller }) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/epics/:epic_id/stories',
      summary: 'Stories of an epic',
      tag: 'Stories',
      roles: ['admin', 'orchestrator'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const epic = await withUuid(req.params.epic_id, (id) => repo.getEpic(pool, caller.tenantId, id));
      if (!epic) throw notFound('Epic');
      const stories = await repo.listStories(pool, caller.tenantId, { epicId: epic.id, limit: 5000 });
      res.json({ data: stories.map((s) => storyJson(s)), meta: { limit: 5000, next_cursor: null } });
    },
  );

  book.add(
    {
      method: 'post',
      path: '/story_dependencies',
      summary: 'Make a story depend on another (cycles refused)',
      tag: 'Stories',
      roles: ['admin', 'orchestrator'],
      body: DependencyBody,
      status: 201,
      errors: ['dependency_cycle'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const body = parseOr400(DependencyBody, req.body);
      const { story, dependency } = await inTransaction(pool, async (db) => {
        const story = await repo.getStory(db, caller.tenantId, body.story_id);
        const dependency = await repo.getStory(db, caller.tenantId, body.depends_on_story_id);
        if (!story || !dependency) throw notFound('Story');
        if (story.project_id !== dependency.project_id) {
          throw new ApiError('invalid_body', 'A story can only depend on a story of the same project.');
        }
        await db.query('SELECT id FROM projects WHERE id = $1 FOR UPDATE', [story.project_id]);
        const edges: [string, string][] = (
          await repo.projectDependencyEdges(db, caller.tenantId, story.project_id)
        ).map((e) => [e.story_id, e.depends_on_story_id]);
        edges.push([story.id, dependency.id]);
        const cycle = findCycle(edges);
        if (cycle) throw new ApiError('dependency_cycle', 'This dependency would form a cycle.', { cycle });
        await repo.insertDependency(db, caller.tenantId, story.id, dependency.id);
        return { story, dependency };
      });
      // The dependent learns the dependency exists, and whether it is verified; re-read after the
      // commit so a verification in between is not missed.
      const fresh = (await repo.getStory(pool, caller.tenantId, dependency.id)) ?? dependency;
      await deps.commands.tellDependencyStatus(story.workflow_id, fresh);
      res.status(201).json({ data: { story_id: story.id, depends_on_story_id: dependency.id } });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/projects/:id/progress',
      summary: 'Counts by status, per epic and in total, and % verified',
      tag: 'Projects',
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.id);
      const [rows, epics] = await Promise.all([
        repo.progressCounts(pool, caller.tenantId, project.id),
        repo.listEpics(pool, caller.tenantId, project.id),
      ]);
      const blank = () => ({
        total: 0,
        verified: 0,
        by_agent_status: {} as Record<string, number>,
        by_verified_status: {} as Record<string, number>,
      });
      const total = blank();
      const perEpic = new Map(
        epics.map((e) => [e.id, { epic_id: e.id, number: e.number, title: e.title, ...blank() }]),
      );
      for (const row of rows) {
        for (const bucket of [total, perEpic.get(row.epic_id)!]) {
          bucket.total += row.count;
          if (row.verified_status === 'verified') bucket.verified += row.count;
          bucket.by_agent_status[row.agent_status] = (bucket.by_agent_status[row.agent_status] ?? 0) + row.count;
          bucket.by_verified_status[row.verified_status] =
            (bucket.by_verified_status[row.verified_status] ?? 0) + row.count;
        }
      }
      const pct = (b: { total: number; verified: number }) =>
        b.total === 0 ? 0 : Math.round((1000 * b.verified) / b.total) / 10;
      res.json({
        data: {
          project_id: project.id,
          total: { ...total, percent_verified: pct(total) },
          epics: [...perEpic.values()].map((e) => ({ ...e, percent_verified: pct(e) })),
        },
      });
    },
  );
}
