/** Projects, epics, story creation, dependencies and progress. */
import { z } from 'zod';
import { findCycle } from '../../custody/dependency-graph.js';
import { getTenant } from '../../db/identity-repo.js';
import { inTransaction } from '../../db/pool.js';
import type { PoolClient } from 'pg';
import { withProjectLock } from '../../db/project-lock.js';
import { enforceQuota, enforceStoredBytes, quotasOf } from '../../db/quotas.js';
import * as repo from '../../db/story-repo.js';
import type { GatewayDeps } from '../app.js';
import { AGENT_STATUSES, VERIFIED_STATUSES } from '../../custody/actions.js';
import { recordCallerChange } from '../../db/change-audit.js';
import { enqueueEvent } from '../../db/webhook-repo.js';
import { dispatchPending } from '../../webhooks/outbox.js';
import {
  EpicNumber,
  ImportBody,
  StoryInput,
  importBacklog,
  type ImportResult,
  type SkipReason,
  type StoryEditor,
} from '../backlog.js';
import { ApiError, notFound, parseOr400 } from '../errors.js';
import { custodyErrorOf } from '../temporal-errors.js';
import { callerOf } from '../middleware.js';
import type { RouteBook } from '../route-book.js';
import { epicJson, projectJson, storyJson } from '../views.js';
import {
  OffsetPage,
  Uuid,
  WholeListQuery,
  encodeCursor,
  notBlank,
  pageMeta,
  invalidCursor,
  wholeListReply,
  startOf,
  withUuid,
} from './params.js';
import type { Caller } from '../../db/identity-repo.js';
import type { StoryRow } from '../../db/story-repo.js';

export const ProjectBody = z.strictObject({
  name: notBlank(200, true),
  slug: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes'),
  description: z.string().max(20_000).optional(),
  /** Seconds a claim lives without a heartbeat (default 30 minutes); 0 = no lease, a claim never expires. */
  lease_ttl_seconds: z
    .number()
    .int()
    .min(0)
    .max(30 * 86_400)
    .optional(),
  /** Seconds a story may wait on review or verification before it is stalled (default a day). */
  stall_after_seconds: z
    .number()
    .int()
    .min(1)
    .max(365 * 86_400)
    .optional(),
  // loopctl's descriptive fields, stored and shown.
  repo_url: z.string().max(2000).optional(),
  tech_stack: z.string().max(2000).optional(),
  mission: z.string().max(2000).optional(),
  settings: z.record(z.string().max(200), z.unknown()).optional(),
});
export const ProjectPatch = z.strictObject({
  name: notBlank(200, true).optional(),
  description: z.string().max(20_000).nullable().optional(),
  repo_url: z.string().max(2000).nullable().optional(),
  tech_stack: z.string().max(2000).nullable().optional(),
  mission: z.string().max(2000).nullable().optional(),
  settings: z.record(z.string().max(200), z.unknown()).optional(),
});
export const EpicBody = z.strictObject({
  number: EpicNumber,
  title: notBlank(500),
  description: z.string().max(20_000).optional(),
  metadata: z.record(z.string().max(200), z.unknown()).optional(),
});
export const EpicPatch = z.strictObject({
  title: notBlank(500).optional(),
  description: z.string().max(20_000).nullable().optional(),
  metadata: z.record(z.string().max(200), z.unknown()).optional(),
});
export const DependencyBody = z.strictObject({ story_id: Uuid, depends_on_story_id: Uuid });
export const ImportQuery = z.strictObject({ merge: z.enum(['true', 'false']).optional() });
export const CreateStoryInProject = StoryInput.extend({ epic_number: EpicNumber });
export const EpicStoriesQuery = z.strictObject({
  agent_status: z.enum(AGENT_STATUSES).optional(),
  verified_status: z.enum(VERIFIED_STATUSES).optional(),
  ...OffsetPage,
});
export const DependenciesQuery = z.strictObject({
  story_id: Uuid.optional(),
  depends_on_story_id: Uuid.optional(),
  project_id: Uuid.optional(),
  ...OffsetPage,
});
export const EpicDependenciesQuery = z.strictObject({ ...OffsetPage });
export const ProgressQuery = z.strictObject({ include_cost: z.enum(['true', 'false']).optional() });

/** What a merge's edit may answer that leaves the story as it was, reported in `skipped_details`. */
const MERGE_SKIPS: ReadonlySet<string> = new Set<SkipReason>(['story_in_progress', 'story_closed', 'story_held']);

/** A report of an import, in loopctl's terms and custody's. */
function importSummary(projectId: string, result: Omit<ImportResult, 'recorded'>, merged: boolean) {
  return {
    project_id: projectId,
    merged,
    epics_created: result.epicsCreated,
    stories_count: result.stories.length,
    created_count: result.created,
    stories_created: result.created,
    stories_updated: result.updated,
    stories_unchanged: result.unchanged,
    skipped: result.skipped.map((s) => s.number),
    skipped_count: result.skipped.length,
    skipped_details: result.skipped,
    stories_orphaned: result.orphaned,
    dependencies_created: result.dependenciesCreated,
  };
}

/** What creating one story may answer, by an epic's id or a project's epic number. */
const STORY_CREATION_ERRORS: string[] = [
  'conflict',
  'dependency_cycle',
  'unknown_dependency',
  'quota_exceeded',
  'story_number_mismatch',
  'duplicate_criterion_id',
];

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
      roles: ['admin', 'orchestrator'],
      body: ProjectBody,
      status: 201,
      errors: ['conflict', 'quota_exceeded'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const body = parseOr400(ProjectBody, req.body);
      const project = await inTransaction(pool, async (db) => {
        await enforceQuota(db, caller.tenantId, quotasOf(deps.config), 'projects', 1);
        const project = await repo.createProject(db, caller.tenantId, body);
        if (!project)
          throw new ApiError('conflict', `A project with slug ${body.slug} already exists.`, { slug: body.slug });
        await recordCallerChange(db, caller, {
          projectId: project.id,
          action: 'project.created',
          payload: body,
        });
        return project;
      });
      res.status(201).json({ data: projectJson(project) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/projects',
      summary: "Projects of the tenant: all, or a page (limit/offset, loopctl's page/page_size, cursor)",
      tag: 'Projects',
      query: WholeListQuery,
    },
    async (req, res) => {
      const tenantId = callerOf(res).tenantId;
      res.json(
        await wholeListReply(
          req.query,
          () => repo.listProjects(pool, tenantId),
          (p) => [p.created_at.toISOString(), p.id],
          projectJson,
        ),
      );
    },
  );

  book.add({ method: 'get', path: '/projects/:id', summary: 'One project', tag: 'Projects' }, async (req, res) => {
    res.json({ data: projectJson(await projectOr404(callerOf(res).tenantId, req.params.id)) });
  });

  book.add(
    {
      method: 'post',
      path: '/projects/:id/import',
      summary:
        "Import a backlog in loopctl's format, all or nothing; starts one workflow per story; ?merge=true updates pending stories",
      tag: 'Projects',
      roles: ['admin', 'orchestrator'],
      body: ImportBody,
      query: ImportQuery,
      status: 201,
      errors: [
        'dependency_cycle',
        'duplicate_story_numbers',
        'duplicate_story_number',
        'story_number_mismatch',
        'duplicate_criterion_id',
        'unknown_dependency',
        'project_archived',
        'quota_exceeded',
      ],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await writableProject(caller.tenantId, req.params.id);
      const query = parseOr400(ImportQuery, req.query, 'invalid_query');
      const body = parseOr400(ImportBody, req.body);
      const merge = query.merge === 'true';
      const result = await importBacklog(deps, await tenantOf(caller.tenantId), project, body, {
        merge,
        edit: editorFor(caller),
        record: (db, written) =>
          recordCallerChange(db, caller, {
            projectId: project.id,
            action: merge ? 'project.merged' : 'project.imported',
            // Every story it created is named here: an import is their creation.
            payload: { ...importSummary(project.id, written, merge), created_numbers: written.createdNumbers },
          }),
      });
      const summary = importSummary(project.id, result, merge);
      await announce(
        { tenantId: caller.tenantId, projectId: project.id },
        'project.imported',
        result.recorded!,
        summary,
      );
      res.status(merge ? 200 : 201).json({ data: { ...summary, stories: result.stories.map((s) => storyJson(s)) } });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/projects/:id/export',
      summary: "The project's backlog in the import format (round-trips through import)",
      tag: 'Projects',
      roles: ['admin', 'orchestrator'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.id);
      res.json({ data: await exportBacklog(caller.tenantId, project) });
    },
  );

  book.add(
    {
      method: 'patch',
      path: '/projects/:id',
      summary: "Edit a project's descriptive fields",
      tag: 'Projects',
      roles: ['admin', 'orchestrator'],
      body: ProjectPatch,
      errors: ['project_archived'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await writableProject(caller.tenantId, req.params.id);
      const body = parseOr400(ProjectPatch, req.body);
      const updated = await changeProject(caller, project.id, 'project.edited', body, (db) =>
        repo.updateProject(db, project.id, body),
      );
      res.json({ data: projectJson(updated) });
    },
  );

  book.add(
    {
      method: 'delete',
      path: '/projects/:id',
      summary: 'Archive a project: it becomes read-only; its stories and history are kept',
      tag: 'Projects',
      roles: ['admin'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.id);
      const archived = await changeProject(caller, project.id, 'project.archived', undefined, (db) =>
        repo.archiveProject(db, project.id),
      );
      res.json({ data: projectJson(archived) });
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
      errors: ['conflict', 'quota_exceeded'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await writableProject(caller.tenantId, req.params.project_id);
      const body = parseOr400(EpicBody, req.body);
      // Exact: of concurrent creators of one number, one gets the 201, every other a 409 naming it.
      const epic = await withProjectLock(pool, project.id, async (db) => {
        const existing = (await repo.listEpics(db, caller.tenantId, project.id)).find((e) => e.number === body.number);
        if (existing)
          throw new ApiError('conflict', `Epic ${body.number} already exists.`, {
            number: body.number,
            existing_id: existing.id,
          });
        await enforceStoredBytes(db, caller.tenantId, quotasOf(deps.config));
        const epic = await repo.upsertEpic(db, caller.tenantId, project.id, body);
        await recordCallerChange(db, caller, {
          projectId: project.id,
          action: 'epic.created',
          payload: { epic_id: epic.id, ...body },
        });
        return epic;
      });
      res.status(201).json({ data: epicJson(epic) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/projects/:project_id/epics',
      summary: "Epics of a project by number: all, or a page (limit/offset, loopctl's page/page_size, cursor)",
      tag: 'Projects',
      roles: ['admin', 'orchestrator'],
      query: WholeListQuery,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.project_id);
      res.json(
        await wholeListReply(
          req.query,
          () => repo.listEpics(pool, caller.tenantId, project.id),
          (e) => [e.number],
          epicJson,
        ),
      );
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
      errors: STORY_CREATION_ERRORS,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const epic = await withUuid(req.params.epic_id, (id) => repo.getEpic(pool, caller.tenantId, id));
      if (!epic) throw notFound('Epic');
      const story = parseOr400(StoryInput, req.body);
      res.status(201).json({ data: await createOneStory(caller, epic, story) });
    },
  );

  book.add(
    {
      method: 'post',
      path: '/projects/:id/stories',
      summary: "Create a story in the project's epic `epic_number` and start its workflow",
      tag: 'Stories',
      roles: ['admin', 'orchestrator'],
      body: CreateStoryInProject,
      status: 201,
      errors: STORY_CREATION_ERRORS,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.id);
      const { epic_number, ...story } = parseOr400(CreateStoryInProject, req.body);
      const epic = (await repo.listEpics(pool, caller.tenantId, project.id)).find((e) => e.number === epic_number);
      if (!epic) throw new ApiError('not_found', `Epic ${epic_number} not found in this project.`, { epic_number });
      res.status(201).json({ data: await createOneStory(caller, epic, story) });
    },
  );

  book.add(
    {
      method: 'patch',
      path: '/epics/:epic_id',
      summary: "Edit an epic's title, description or metadata",
      tag: 'Projects',
      roles: ['admin', 'orchestrator'],
      body: EpicPatch,
      errors: ['project_archived'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const epic = await withUuid(req.params.epic_id, (id) => repo.getEpic(pool, caller.tenantId, id));
      if (!epic) throw notFound('Epic');
      await writableProject(caller.tenantId, epic.project_id);
      const body = parseOr400(EpicPatch, req.body);
      const updated = await inTransaction(pool, async (db) => {
        await repo.updateEpic(db, epic.id, body);
        await recordCallerChange(db, caller, {
          projectId: epic.project_id,
          action: 'epic.edited',
          payload: { epic_id: epic.id, ...body },
        });
        return (await repo.getEpic(db, caller.tenantId, epic.id))!;
      });
      res.json({ data: epicJson(updated) });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/epics/:epic_id/stories',
      summary: 'Stories of an epic, filtered, in natural order',
      tag: 'Stories',
      query: EpicStoriesQuery,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const epic = await withUuid(req.params.epic_id, (id) => repo.getEpic(pool, caller.tenantId, id));
      if (!epic) throw notFound('Epic');
      const q = parseOr400(EpicStoriesQuery, req.query, 'invalid_query');
      const start = startOf(q);
      const { rows, more, total } = await repo.listStories(pool, caller.tenantId, {
        epicId: epic.id,
        agentStatus: q.agent_status,
        verifiedStatus: q.verified_status,
        ...start,
      });
      res.json({ data: rows.map((s) => storyJson(s)), meta: pageMeta(start, rows, more, total) });
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
      errors: ['dependency_cycle', 'cross_project_dependency', 'story_in_progress'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const body = parseOr400(DependencyBody, req.body);
      const first = await repo.getStory(pool, caller.tenantId, body.story_id);
      if (!first) throw notFound('Story');
      // The project's lock first, then the stories as they stand under it: a withdrawal (which
      // takes the same lock) cannot slip between the check and the insert.
      const { story, dependency, id } = await withProjectLock(pool, first.project_id, async (db) => {
        const story = await repo.getStory(db, caller.tenantId, body.story_id);
        const dependency = await repo.getStory(db, caller.tenantId, body.depends_on_story_id);
        if (!story || !dependency) throw notFound('Story');
        if (story.project_id !== dependency.project_id) {
          throw new ApiError('cross_project_dependency', 'A story can only depend on a story of the same project.', {
            story_project_id: story.project_id,
            depends_on_project_id: dependency.project_id,
          });
        }
        if (story.id === dependency.id) {
          throw new ApiError('dependency_cycle', 'A story cannot depend on itself.', { cycle: [story.id, story.id] });
        }
        if (story.project_archived)
          throw new ApiError('project_archived', 'The project is archived: it is read-only.', {});
        // As a merge: a dependency is added to a pending story only; one under way was contracted
        // and claimed on the dependencies it had.
        if (story.agent_status !== 'pending' || story.verified_status === 'verified') {
          throw new ApiError('story_in_progress', `Story ${story.number} is under way: its dependencies are fixed.`, {
            story_id: story.id,
            current_agent_status: story.agent_status,
            current_verified_status: story.verified_status,
          });
        }
        const edges: [string, string][] = (
          await repo.projectDependencyEdges(db, caller.tenantId, story.project_id)
        ).map((e) => [e.story_id, e.depends_on_story_id]);
        edges.push([story.id, dependency.id]);
        const cycle = findCycle(edges);
        if (cycle) throw new ApiError('dependency_cycle', 'This dependency would form a cycle.', { cycle });
        await repo.insertDependency(db, caller.tenantId, story.id, dependency.id);
        const edgeId = (await repo.dependencyEdgeId(db, story.id, dependency.id))!;
        await recordCallerChange(db, caller, {
          projectId: story.project_id,
          storyId: story.id,
          action: 'dependency.added',
          payload: { id: edgeId, story_id: story.id, depends_on_story_id: dependency.id },
        });
        return { story, dependency, id: edgeId };
      });
      // The dependent learns the dependency exists, and whether it is verified; re-read after the
      // commit so a verification in between is not missed.
      const fresh = (await repo.getStory(pool, caller.tenantId, dependency.id)) ?? dependency;
      await deps.commands.tellDependencyStatus(story.workflow_id, fresh);
      res.status(201).json({ data: { id, story_id: story.id, depends_on_story_id: dependency.id } });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/story_dependencies',
      summary: 'Dependencies between live stories, filtered by story_id, depends_on_story_id or project_id',
      tag: 'Stories',
      query: DependenciesQuery,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const q = parseOr400(DependenciesQuery, req.query, 'invalid_query');
      res.json(
        await dependencyPage(caller.tenantId, q, {
          storyId: q.story_id,
          dependsOnStoryId: q.depends_on_story_id,
          projectId: q.project_id,
        }),
      );
    },
  );

  book.add(
    {
      method: 'get',
      path: '/epics/:epic_id/story_dependencies',
      summary: "Dependencies of the epic's stories (loopctl's listing)",
      tag: 'Stories',
      query: EpicDependenciesQuery,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const epic = await withUuid(req.params.epic_id, (id) => repo.getEpic(pool, caller.tenantId, id));
      if (!epic) throw notFound('Epic');
      const q = parseOr400(EpicDependenciesQuery, req.query, 'invalid_query');
      res.json(await dependencyPage(caller.tenantId, q, { epicId: epic.id }));
    },
  );

  async function dependencyPage(
    tenantId: string,
    q: z.infer<typeof EpicDependenciesQuery>,
    filter: Omit<Parameters<typeof repo.listDependencies>[2], 'limit' | 'offset'>,
  ) {
    const start = startOf(q);
    // Dependencies page by position (an offset cursor); a story list's cursor means nothing here.
    if (start.after) throw invalidCursor();
    const { rows, total } = await repo.listDependencies(pool, tenantId, { ...filter, ...start });
    const end = start.offset + rows.length;
    return {
      data: rows.map((d) => ({
        id: d.id,
        story_id: d.story_id,
        depends_on_story_id: d.depends_on_story_id,
        story_number: d.story_number,
        depends_on_number: d.depends_on_number,
        depends_on_verified_status: d.depends_on_verified_status,
        created_at: d.created_at.toISOString(),
      })),
      meta: {
        limit: start.limit,
        offset: start.offset,
        next_cursor: end < total && rows.length > 0 ? encodeCursor({ o: String(end) }) : null,
        total_count: total,
      },
    };
  }

  book.add(
    {
      method: 'get',
      path: '/projects/:id/progress',
      summary:
        'Counts by every status (zeros included), per epic and in total, % verified; ?include_cost=true sums tokens',
      tag: 'Projects',
      query: ProgressQuery,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const project = await projectOr404(caller.tenantId, req.params.id);
      const q = parseOr400(ProgressQuery, req.query, 'invalid_query');
      res.json({ data: await progressOf(caller.tenantId, project.id, q.include_cost === 'true') });
    },
  );

  book.add(
    {
      method: 'get',
      path: '/epics/:epic_id/progress',
      summary: "An epic's counts by every status, % verified",
      tag: 'Projects',
      roles: ['admin', 'orchestrator'],
      query: ProgressQuery,
    },
    async (req, res) => {
      const caller = callerOf(res);
      const epic = await withUuid(req.params.epic_id, (id) => repo.getEpic(pool, caller.tenantId, id));
      if (!epic) throw notFound('Epic');
      const q = parseOr400(ProgressQuery, req.query, 'invalid_query');
      const progress = await progressOf(caller.tenantId, epic.project_id, q.include_cost === 'true');
      res.json({ data: progress.epics.find((e) => e.epic_id === epic.id) });
    },
  );

  book.add(
    {
      method: 'delete',
      path: '/story_dependencies/:id',
      summary: 'Remove a dependency (while the dependent story is pending; its workflow is told)',
      tag: 'Stories',
      roles: ['admin', 'orchestrator'],
      errors: ['story_in_progress'],
    },
    async (req, res) => {
      const caller = callerOf(res);
      const edge = await withUuid(req.params.id, (id) => repo.getDependencyEdge(pool, caller.tenantId, id));
      if (!edge) throw notFound('Dependency');
      const story = await repo.getStory(pool, caller.tenantId, edge.story_id);
      if (!story) throw notFound('Dependency');
      if (story.project_archived)
        throw new ApiError('project_archived', 'The project is archived: it is read-only.', {});
      // The workflow drops it first (refused past pending); its persistence removes the row.
      await deps.commands.act(caller, story, 'edit', { remove_dependencies: [edge.depends_on_story_id] });
      await recordCallerChange(pool, caller, {
        projectId: story.project_id,
        storyId: story.id,
        action: 'dependency.removed',
        payload: edge,
      });
      res.json({ data: { ...edge, removed: true } });
    },
  );

  /** A project changed and audited in one transaction; returns the project as it now is. */
  function changeProject(
    caller: Caller,
    projectId: string,
    action: string,
    payload: unknown,
    write: (db: PoolClient) => Promise<void>,
  ) {
    return inTransaction(pool, async (db) => {
      await write(db);
      await recordCallerChange(db, caller, { projectId, action, payload });
      return (await repo.getProject(db, caller.tenantId, projectId))!;
    });
  }

  async function writableProject(tenantId: string, id: unknown) {
    const project = await projectOr404(tenantId, id);
    if (project.archived_at)
      throw new ApiError('project_archived', 'The project is archived: it is read-only.', { project_id: project.id });
    return project;
  }

  /** Webhook news of a change made outside a workflow, sent once its audit row is committed. */
  async function announce(
    scope: { tenantId: string; projectId: string },
    event: string,
    sourceKey: string,
    data: unknown,
  ): Promise<void> {
    await enqueueEvent(pool, scope, event, sourceKey, data);
    await dispatchPending(pool, deps.commands.webhooks, [sourceKey]).catch(() => undefined);
  }

  /** Merged content goes to a pending story as an `edit` through its workflow. */
  function editorFor(caller: Caller): StoryEditor {
    return async (story: StoryRow, content) => {
      try {
        await deps.commands.act(caller, story, 'edit', {
          title: content.title,
          ac_count: content.acceptance_criteria.length,
          content: {
            description: content.description,
            acceptance_criteria: content.acceptance_criteria,
            estimated_hours: content.estimated_hours,
            metadata: content.metadata,
          },
        });
        return 'updated';
      } catch (err) {
        // Past pending, closed by an operator or held: the merge leaves it, and says why.
        const code = custodyErrorOf(err)?.code;
        if (code && MERGE_SKIPS.has(code)) return code as SkipReason;
        throw err;
      }
    };
  }

  async function createOneStory(caller: Caller, epic: repo.EpicRow, story: StoryInput) {
    const project = await writableProject(caller.tenantId, epic.project_id);
    // Exact: judged under the project lock, so one creator of a number gets the 201 and every
    // other a 409 with the existing story's id.
    const result = await importBacklog(
      deps,
      await tenantOf(caller.tenantId),
      project,
      { epics: [{ number: epic.number, title: epic.title, stories: [story] }] },
      {
        exact: true,
        record: (db, written) =>
          recordCallerChange(db, caller, {
            projectId: project.id,
            storyId: written.stories[0].id,
            action: 'story.created',
            payload: { epic_number: epic.number, ...story },
          }),
      },
    );
    return storyJson(result.stories[0], { caller });
  }

  async function exportBacklog(tenantId: string, project: repo.ProjectRow) {
    const [epics, { rows: stories }, edges] = await Promise.all([
      repo.listEpics(pool, tenantId, project.id),
      repo.listStories(pool, tenantId, { projectId: project.id, limit: 1_000_000 }),
      repo.projectDependencyEdges(pool, tenantId, project.id),
    ]);
    const numberOf = new Map(stories.map((s) => [s.id, s.number]));
    const positionOf = new Map(stories.map((s, i) => [s.number, i]));
    return {
      export_metadata: { exported_at: new Date().toISOString(), project_id: project.id, format: 'loopctl' },
      project: {
        name: project.name,
        slug: project.slug,
        description: project.description,
        repo_url: project.repo_url,
        tech_stack: project.tech_stack,
        status: project.archived_at ? 'archived' : 'active',
        metadata: project.settings,
      },
      epics: epics.map((e) => ({
        number: e.number,
        title: e.title,
        description: e.description,
        metadata: e.metadata,
        stories: stories
          .filter((s) => s.epic_id === e.id)
          .map((s) => ({
            number: s.number,
            title: s.title,
            description: s.description,
            acceptance_criteria: s.acceptance_criteria,
            estimated_hours: s.estimated_hours === null ? null : Number(s.estimated_hours),
            metadata: s.metadata,
          })),
      })),
      // Only between live stories, in the stories' natural order.
      story_dependencies: edges
        .filter((d) => numberOf.has(d.story_id) && numberOf.has(d.depends_on_story_id))
        .map((d) => ({ story: numberOf.get(d.story_id)!, depends_on: numberOf.get(d.depends_on_story_id)! }))
        .sort(
          (a, b) =>
            positionOf.get(a.story)! - positionOf.get(b.story)! ||
            positionOf.get(a.depends_on)! - positionOf.get(b.depends_on)!,
        ),
    };
  }

  async function progressOf(tenantId: string, projectId: string, includeCost: boolean) {
    const [rows, epics] = await Promise.all([
      repo.progressCounts(pool, tenantId, projectId),
      repo.listEpics(pool, tenantId, projectId),
    ]);
    const zeros = (keys: readonly string[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<string, number>;
    const blank = () => ({
      total: 0,
      verified: 0,
      backfilled: 0,
      by_agent_status: zeros(AGENT_STATUSES),
      by_verified_status: zeros(VERIFIED_STATUSES),
    });
    const total = blank();
    const perEpic = new Map(epics.map((e) => [e.id, { epic_id: e.id, number: e.number, title: e.title, ...blank() }]));
    for (const row of rows) {
      for (const bucket of [total, perEpic.get(row.epic_id)!]) {
        bucket.total += row.count;
        // Backfilled stories are verified by attestation, not through custody: counted apart.
        if (row.backfilled) bucket.backfilled += row.count;
        else if (row.verified_status === 'verified') bucket.verified += row.count;
        bucket.by_agent_status[row.agent_status] = (bucket.by_agent_status[row.agent_status] ?? 0) + row.count;
        bucket.by_verified_status[row.verified_status] =
          (bucket.by_verified_status[row.verified_status] ?? 0) + row.count;
      }
    }
    const pct = (b: { total: number; verified: number }) =>
      b.total === 0 ? 0 : Math.round((1000 * b.verified) / b.total) / 10;
    const progress = {
      project_id: projectId,
      total: { ...total, percent_verified: pct(total) },
      epics: [...perEpic.values()].map((e) => ({ ...e, percent_verified: pct(e) })),
      cost: undefined as unknown,
    };
    if (includeCost) {
      const totals = await repo.tokenTotals(pool, tenantId, { projectId });
      const sum = { input_tokens: 0, output_tokens: 0, cost_millicents: 0, reports: 0 };
      for (const t of totals.values()) {
        sum.input_tokens += t.input_tokens;
        sum.output_tokens += t.output_tokens;
        sum.cost_millicents += t.cost_millicents;
        sum.reports += t.reports;
      }
      progress.cost = { ...sum, stories_with_usage: totals.size };
    }
    return progress;
  }
}
