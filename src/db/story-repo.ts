/** Projects, epics, stories and their dependencies: the read model. Every function takes the tenant id. */
import type { PinnedPolicy, ReviewProgress } from '../custody/policy.js';
import type pg from 'pg';
import type { AgentStatus, VerifiedStatus } from '../custody/actions.js';
import type { ReviewRecord } from '../custody/rules.js';

type Queryable = pg.Pool | pg.PoolClient;

export interface ProjectRow {
  id: string;
  tenant_id: string;
  name: string;
  slug: string;
  description: string | null;
  lease_ttl_seconds: number;
  stall_after_seconds: number;
  repo_url: string | null;
  tech_stack: string | null;
  mission: string | null;
  settings: Record<string, unknown>;
  archived_at: Date | null;
  created_at: Date;
}
export interface EpicRow {
  id: string;
  project_id: string;
  number: number;
  title: string;
  description: string | null;
  metadata: Record<string, unknown>;
  created_at: Date;
}
export interface StoryRow {
  id: string;
  tenant_id: string;
  project_id: string;
  epic_id: string;
  number: string;
  title: string;
  description: string | null;
  acceptance_criteria: unknown[];
  workflow_id: string;
  agent_status: AgentStatus;
  verified_status: VerifiedStatus;
  assigned_agent_id: string | null;
  reported_by_agent_id: string | null;
  reviewer_agent_id: string | null;
  verified_by_agent_id: string | null;
  implementer_agent_ids: string[];
  iteration: number;
  review: ReviewRecord | null;
  stalled: boolean;
  estimated_hours: string | null;
  metadata: Record<string, unknown>;
  artifact: unknown;
  backfilled: boolean;
  deleted_at: Date | null;
  /** Its workflow was started and told of every dependency (an unchanged re-import skips it). */
  workflow_started: boolean;
  /** The number of its epic (lists sort by it). */
  epic_number: number;
  /** Its project is archived: read-only. */
  project_archived: boolean;
  /** An integrity violation stopped the story (see activities/persistence.ts); an admin resumes it. */
  held: boolean;
  held_reason: string | null;
  /** The review policy the current iteration's contract pinned (null: the default policy). */
  review_policy: PinnedPolicy | null;
  /** The rounds' reviews and sign-offs of the current iteration (with a policy only). */
  review_progress: ReviewProgress | null;
  /** The identity of the artifact verified. */
  verified_artifact: string | null;
  /** When the claim's lease runs out, as the workflow last said; meaningful only while a claim is held. */
  lease_expires_at?: Date | null;
  version: string;
  position: string;
  created_at: Date;
  updated_at: Date;
}

const STORY_COLUMNS = `s.id, s.tenant_id, s.project_id, s.epic_id, s.number, s.title, s.description, s.acceptance_criteria,
  s.workflow_id, s.agent_status, s.verified_status, s.assigned_agent_id, s.reported_by_agent_id, s.reviewer_agent_id,
  s.verified_by_agent_id, s.implementer_agent_ids, s.iteration, s.review, s.stalled, s.held, s.held_reason, s.version, s.position, s.created_at, s.updated_at,
  s.estimated_hours, s.metadata, s.artifact, s.backfilled, s.deleted_at, s.workflow_started,
  s.review_policy, s.review_progress, s.verified_artifact, s.lease_expires_at,
  (SELECT e.number FROM epics e WHERE e.id = s.epic_id) AS epic_number,
  (SELECT p.archived_at IS NOT NULL FROM projects p WHERE p.id = s.project_id) AS project_archived`;

/** Epic number, then story number in natural order (1.2 before 1.10). */
const EPIC_NUMBER = '(SELECT e.number FROM epics e WHERE e.id = s.epic_id)';
export const NATURAL_ORDER = `${EPIC_NUMBER}, s.number COLLATE natural_numbers, s.id`;
const LIVE = 's.deleted_at IS NULL';

export async function createProject(
  db: Queryable,
  tenantId: string,
  p: {
    name: string;
    slug: string;
    description?: string | undefined;
    lease_ttl_seconds?: number | undefined;
    stall_after_seconds?: number | undefined;
    repo_url?: string | undefined;
    tech_stack?: string | undefined;
    mission?: string | undefined;
    settings?: Record<string, unknown> | undefined;
  },
): Promise<ProjectRow | null> {
  const { rows } = await db.query<ProjectRow>(
    `INSERT INTO projects (tenant_id, name, slug, description, lease_ttl_seconds, stall_after_seconds,
       repo_url, tech_stack, mission, settings)
     VALUES ($1, $2, $3, $4, coalesce($5, 1800), coalesce($6, 86400), $7, $8, $9, $10)
     ON CONFLICT (tenant_id, slug) DO NOTHING RETURNING *`,
    [
      tenantId,
      p.name,
      p.slug,
      p.description ?? null,
      p.lease_ttl_seconds ?? null,
      p.stall_after_seconds ?? null,
      p.repo_url ?? null,
      p.tech_stack ?? null,
      p.mission ?? null,
      JSON.stringify(p.settings ?? {}),
    ],
  );
  return rows[0] ?? null;
}

export async function listProjects(db: Queryable, tenantId: string): Promise<ProjectRow[]> {
  return (await db.query<ProjectRow>('SELECT * FROM projects WHERE tenant_id = $1 ORDER BY created_at, id', [tenantId]))
    .rows;
}

export async function getProject(db: Queryable, tenantId: string, projectId: string): Promise<ProjectRow | null> {
  const { rows } = await db.query<ProjectRow>('SELECT * FROM projects WHERE tenant_id = $1 AND id = $2', [
    tenantId,
    projectId,
  ]);
  return rows[0] ?? null;
}

/** Creates the epic, or returns the existing one with that number (imports are idempotent). */
export async function upsertEpic(
  db: Queryable,
  tenantId: string,
  projectId: string,
  e: {
    number: number;
    title: string;
    description?: string | undefined;
    metadata?: Record<string, unknown> | undefined;
  },
): Promise<EpicRow> {
  const { rows } = await db.query<EpicRow>(
    `INSERT INTO epics (tenant_id, project_id, number, title, description, metadata) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (project_id, number) DO UPDATE SET number = excluded.number
     RETURNING id, project_id, number, title, description, metadata, created_at`,
    [tenantId, projectId, e.number, e.title, e.description ?? null, JSON.stringify(e.metadata ?? {})],
  );
  return rows[0];
}

export async function listEpics(db: Queryable, tenantId: string, projectId: string): Promise<EpicRow[]> {
  return (
    await db.query<EpicRow>(
      'SELECT id, project_id, number, title, description, metadata, created_at FROM epics WHERE tenant_id = $1 AND project_id = $2 ORDER BY number',
      [tenantId, projectId],
    )
  ).rows;
}

export async function getEpic(db: Queryable, tenantId: string, epicId: string): Promise<EpicRow | null> {
  const { rows } = await db.query<EpicRow>(
    'SELECT id, project_id, number, title, description, metadata, created_at FROM epics WHERE tenant_id = $1 AND id = $2',
    [tenantId, epicId],
  );
  return rows[0] ?? null;
}

export interface NewStory {
  projectId: string;
  epicId: string;
  number: string;
  title: string;
  description?: string | undefined;
  acceptanceCriteria: unknown[];
  workflowId: string;
  estimatedHours?: number | undefined;
  metadata?: Record<string, unknown> | undefined;
}

/**
 * Inserts the stories whose numbers are free, in one statement (an import of thousands is one
 * round trip, in the backlog's order); returns the numbers it created.
 */
export async function insertStories(db: Queryable, tenantId: string, stories: NewStory[]): Promise<Set<string>> {
  if (stories.length === 0) return new Set();
  const column = <T>(f: (s: NewStory) => T) => stories.map(f);
  const { rows } = await db.query<{ number: string }>(
    `INSERT INTO stories (tenant_id, project_id, epic_id, number, title, description, acceptance_criteria, workflow_id,
       estimated_hours, metadata)
     SELECT $1, u.project_id, u.epic_id, u.number, u.title, u.description, u.acceptance_criteria::jsonb, u.workflow_id,
       u.estimated_hours, u.metadata::jsonb
     FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::numeric[],
       $10::text[]) WITH ORDINALITY
       AS u(project_id, epic_id, number, title, description, acceptance_criteria, workflow_id, estimated_hours, metadata, i)
     ORDER BY u.i
     ON CONFLICT (project_id, number) DO NOTHING RETURNING number`,
    [
      tenantId,
      column((s) => s.projectId),
      column((s) => s.epicId),
      column((s) => s.number),
      column((s) => s.title),
      column((s) => s.description ?? null),
      column((s) => JSON.stringify(s.acceptanceCriteria)),
      column((s) => s.workflowId),
      column((s) => s.estimatedHours ?? null),
      column((s) => JSON.stringify(s.metadata ?? {})),
    ],
  );
  return new Set(rows.map((r) => r.number));
}

/** The stories of a project with these numbers, by number. */
export async function storiesByNumbers(
  db: Queryable,
  tenantId: string,
  projectId: string,
  numbers: string[],
): Promise<Map<string, StoryRow>> {
  if (numbers.length === 0) return new Map();
  const { rows } = await db.query<StoryRow>(
    `SELECT ${STORY_COLUMNS} FROM stories s WHERE s.tenant_id = $1 AND s.project_id = $2 AND s.number = ANY ($3::text[])`,
    [tenantId, projectId, numbers],
  );
  return new Map(rows.map((r) => [r.number, r]));
}

/**
 * Inserts the dependency edges not there yet, in one statement; returns the ones it created. A
 * story given a new dependency is marked not started-and-told, so it hears of it even if the
 * import fails before its news is sent.
 */
export async function insertDependencies(
  db: Queryable,
  tenantId: string,
  edges: [storyId: string, dependsOnId: string][],
): Promise<[string, string][]> {
  if (edges.length === 0) return [];
  const { rows } = await db.query<{ story_id: string; depends_on_story_id: string }>(
    `WITH created AS (
       INSERT INTO story_dependencies (tenant_id, story_id, depends_on_story_id)
       SELECT $1, u.story_id, u.depends_on FROM unnest($2::uuid[], $3::uuid[]) AS u(story_id, depends_on)
       ON CONFLICT DO NOTHING RETURNING story_id, depends_on_story_id
     ), untold AS (
       UPDATE stories SET workflow_started = false WHERE id IN (SELECT story_id FROM created) AND workflow_started
     )
     SELECT story_id, depends_on_story_id FROM created`,
    [tenantId, edges.map((e) => e[0]), edges.map((e) => e[1])],
  );
  return rows.map((r) => [r.story_id, r.depends_on_story_id]);
}

/** These stories' workflows are started and told of their dependencies. */
export async function markWorkflowsStarted(db: Queryable, tenantId: string, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query('UPDATE stories SET workflow_started = true WHERE tenant_id = $1 AND id = ANY ($2::uuid[])', [
    tenantId,
    ids,
  ]);
}

/** The deadline of the story's claim as its workflow answered it (null: no lease runs). */
export async function recordLeaseDeadline(db: Queryable, storyId: string, expiresAtMs: number | null): Promise<void> {
  await db.query('UPDATE stories SET lease_expires_at = $2 WHERE id = $1 AND lease_expires_at IS DISTINCT FROM $2', [
    storyId,
    expiresAtMs === null ? null : new Date(expiresAtMs),
  ]);
}

export async function getStory(db: Queryable, tenantId: string, storyId: string): Promise<StoryRow | null> {
  const { rows } = await db.query<StoryRow>(
    `SELECT ${STORY_COLUMNS} FROM stories s WHERE s.tenant_id = $1 AND s.id = $2 AND ${LIVE}`,
    [tenantId, storyId],
  );
  return rows[0] ?? null;
}

export async function storiesByIds(db: Queryable, tenantId: string, ids: string[]): Promise<StoryRow[]> {
  if (ids.length === 0) return [];
  return (
    await db.query<StoryRow>(
      `SELECT ${STORY_COLUMNS} FROM stories s WHERE s.tenant_id = $1 AND s.id = ANY($2::uuid[])`,
      [tenantId, ids],
    )
  ).rows;
}

export async function projectStoriesByNumber(
  db: Queryable,
  tenantId: string,
  projectId: string,
): Promise<Map<string, StoryRow>> {
  const { rows } = await db.query<StoryRow>(
    `SELECT ${STORY_COLUMNS} FROM stories s WHERE s.tenant_id = $1 AND s.project_id = $2`,
    [tenantId, projectId],
  );
  return new Map(rows.map((r) => [r.number, r]));
}

export async function dependencyIds(db: Queryable, tenantId: string, storyId: string): Promise<string[]> {
  const { rows } = await db.query<{ depends_on_story_id: string }>(
    'SELECT depends_on_story_id FROM story_dependencies WHERE tenant_id = $1 AND story_id = $2 ORDER BY created_at',
    [tenantId, storyId],
  );
  return rows.map((r) => r.depends_on_story_id);
}

export async function projectDependencyEdges(
  db: Queryable,
  tenantId: string,
  projectId: string,
): Promise<{ story_id: string; depends_on_story_id: string }[]> {
  return (
    await db.query<{ story_id: string; depends_on_story_id: string }>(
      `SELECT d.story_id, d.depends_on_story_id FROM story_dependencies d JOIN stories s ON s.id = d.story_id
       WHERE d.tenant_id = $1 AND s.project_id = $2`,
      [tenantId, projectId],
    )
  ).rows;
}

export async function insertDependency(
  db: Queryable,
  tenantId: string,
  storyId: string,
  dependsOnId: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO story_dependencies (tenant_id, story_id, depends_on_story_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
    [tenantId, storyId, dependsOnId],
  );
  return (rowCount ?? 0) > 0;
}

export interface StoryFilter {
  projectId?: string | undefined;
  epicId?: string | undefined;
  agentStatus?: string | undefined;
  verifiedStatus?: string | undefined;
  stalled?: boolean | undefined;
  /** Stories to skip, in the list's natural order. */
  offset?: number | undefined;
  /** Resume after this sort key (a keyset cursor): stable while stories are added or withdrawn. */
  after?: StoryKeyset | undefined;
  limit: number;
}

/** A story list's sort key: epic number, story number in natural order, id. */
export interface StoryKeyset {
  epicNumber: number;
  number: string;
  id: string;
}

export interface StoryPage {
  rows: StoryRow[];
  /** More rows follow this page. */
  more: boolean;
  /** Rows matching the filter in all (whatever the page). */
  total: number;
}

/**
 * One page in natural order: the count of every match, then `limit` rows (one more is read to
 * know whether more follow) after the keyset position or the offset.
 */
async function naturalPage(
  db: Queryable,
  filter: string,
  params: unknown[],
  page: { limit: number; offset?: number | undefined; after?: StoryKeyset | undefined },
): Promise<StoryPage> {
  const args = [...params];
  let keyset = '';
  if (page.after) {
    args.push(page.after.epicNumber, page.after.number, page.after.id);
    const n = args.length;
    keyset = ` AND (${EPIC_NUMBER}, s.number COLLATE natural_numbers, s.id) > ($${n - 2}::int, $${n - 1}::text COLLATE natural_numbers, $${n}::uuid)`;
  }
  args.push(page.limit + 1, page.after ? 0 : (page.offset ?? 0));
  // The total and the page at once (two of the pool's connections; one after the other on a client).
  const [count, rows] = await Promise.all([
    db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stories s WHERE ${filter}`, params),
    db.query<StoryRow>(
      `SELECT ${STORY_COLUMNS} FROM stories s WHERE ${filter}${keyset} ORDER BY ${NATURAL_ORDER}
     LIMIT $${args.length - 1} OFFSET $${args.length}`,
      args,
    ),
  ]);
  const more = rows.rows.length > page.limit;
  return { rows: rows.rows.slice(0, page.limit), more, total: count.rows[0].n };
}

/** A page of stories in natural order (epic number, then story number), and how many match in all. */
export async function listStories(db: Queryable, tenantId: string, f: StoryFilter): Promise<StoryPage> {
  const where = ['s.tenant_id = $1', LIVE];
  const params: unknown[] = [tenantId];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (f.projectId) add('s.project_id = ?', f.projectId);
  if (f.epicId) add('s.epic_id = ?', f.epicId);
  if (f.agentStatus) add('s.agent_status = ?', f.agentStatus);
  if (f.verifiedStatus) add('s.verified_status = ?', f.verifiedStatus);
  if (f.stalled !== undefined) add('s.stalled = ?', f.stalled);
  return naturalPage(db, where.join(' AND '), params, f);
}

const UNVERIFIED_DEPENDENCY = `EXISTS (SELECT 1 FROM story_dependencies d JOIN stories dep ON dep.id = d.depends_on_story_id
   WHERE d.story_id = s.id AND dep.verified_status <> 'verified')`;

/** The unverified dependencies of each story, for `blocking_dependencies`. */
export async function blockingDependencies(
  db: Queryable,
  tenantId: string,
  storyIds: string[],
): Promise<Map<string, { id: string; number: string; verified_status: string }[]>> {
  const out = new Map<string, { id: string; number: string; verified_status: string }[]>();
  if (storyIds.length === 0) return out;
  const { rows } = await db.query<{ story_id: string; id: string; number: string; verified_status: string }>(
    `SELECT d.story_id, dep.id, dep.number, dep.verified_status FROM story_dependencies d
       JOIN stories dep ON dep.id = d.depends_on_story_id
     WHERE d.tenant_id = $1 AND d.story_id = ANY($2::uuid[]) AND dep.verified_status <> 'verified'
     ORDER BY dep.number COLLATE natural_numbers`,
    [tenantId, storyIds],
  );
  for (const r of rows) {
    const list = out.get(r.story_id) ?? [];
    list.push({ id: r.id, number: r.number, verified_status: r.verified_status });
    out.set(r.story_id, list);
  }
  return out;
}

export interface TokenTotals {
  input_tokens: number;
  output_tokens: number;
  cost_millicents: number;
  reports: number;
  models: string[];
}

/**
 * Token usage as the accepted reports stated it, summed per story: read from the audit trail,
 * where each accepted report is written once, so a retried report never counts twice.
 */
export async function tokenTotals(
  db: Queryable,
  tenantId: string,
  scope: { storyIds?: string[]; projectId?: string },
): Promise<Map<string, TokenTotals>> {
  const { rows } = await db.query<{
    story_id: string;
    input_tokens: string;
    output_tokens: string;
    cost_millicents: string;
    reports: number;
    models: string[] | null;
  }>(
    `SELECT a.story_id,
       coalesce(sum((a.payload->'token_usage'->>'input_tokens')::numeric), 0) AS input_tokens,
       coalesce(sum((a.payload->'token_usage'->>'output_tokens')::numeric), 0) AS output_tokens,
       coalesce(sum((a.payload->'token_usage'->>'cost_millicents')::numeric), 0) AS cost_millicents,
       count(*)::int AS reports,
       array_remove(array_agg(DISTINCT a.payload->'token_usage'->>'model_name'), NULL) AS models
     FROM audit_events a
     WHERE a.tenant_id = $1 AND a.outcome = 'accepted' AND a.action = 'report' AND a.payload ? 'token_usage'
       AND ($2::uuid[] IS NULL OR a.story_id = ANY($2::uuid[])) AND ($3::uuid IS NULL OR a.project_id = $3)
     GROUP BY a.story_id`,
    [tenantId, scope.storyIds ?? null, scope.projectId ?? null],
  );
  return new Map(
    rows.map((r) => [
      r.story_id,
      {
        input_tokens: Number(r.input_tokens),
        output_tokens: Number(r.output_tokens),
        cost_millicents: Number(r.cost_millicents),
        reports: r.reports,
        models: r.models ?? [],
      },
    ]),
  );
}

/** What a ready or blocked list is filtered by. */
export interface WaitingFilter {
  projectId?: string | undefined;
  epicId?: string | undefined;
  limit: number;
  offset?: number | undefined;
  after?: StoryKeyset | undefined;
}

/** Ready: not yet claimed this iteration (pending or contracted) and every dependency verified. */
export async function readyStories(db: Queryable, tenantId: string, f: WaitingFilter) {
  return waitingStories(db, tenantId, f, `NOT ${UNVERIFIED_DEPENDENCY}`);
}

export async function blockedStories(db: Queryable, tenantId: string, f: WaitingFilter) {
  return waitingStories(db, tenantId, f, UNVERIFIED_DEPENDENCY);
}

/** Stories waiting to be claimed; an archived project's stories wait for nothing (it is read-only). */
async function waitingStories(
  db: Queryable,
  tenantId: string,
  f: WaitingFilter,
  dependencyCondition: string,
): Promise<StoryPage> {
  const filter = `s.tenant_id = $1 AND ${LIVE} AND ($2::uuid IS NULL OR s.project_id = $2)
    AND ($3::uuid IS NULL OR s.epic_id = $3) AND s.agent_status IN ('pending', 'contracted')
    AND s.verified_status <> 'verified' AND ${dependencyCondition}
    AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = s.project_id AND p.archived_at IS NOT NULL)`;
  return naturalPage(db, filter, [tenantId, f.projectId ?? null, f.epicId ?? null], f);
}

export interface ProgressRow {
  epic_id: string;
  epic_number: number;
  epic_title: string;
  agent_status: string;
  verified_status: string;
  backfilled: boolean;
  count: number;
}

export async function progressCounts(db: Queryable, tenantId: string, projectId: string): Promise<ProgressRow[]> {
  return (
    await db.query<ProgressRow>(
      `SELECT e.id AS epic_id, e.number AS epic_number, e.title AS epic_title, s.agent_status, s.verified_status, s.backfilled, count(*)::int AS count
       FROM stories s JOIN epics e ON e.id = s.epic_id
       WHERE s.tenant_id = $1 AND s.project_id = $2 AND s.deleted_at IS NULL
       GROUP BY e.id, e.number, e.title, s.agent_status, s.verified_status, s.backfilled ORDER BY e.number`,
      [tenantId, projectId],
    )
  ).rows;
}

/** Sets the given descriptive fields of a project (`settings` as JSON). */
export async function updateProject(db: Queryable, projectId: string, fields: Record<string, unknown>): Promise<void> {
  const sets: string[] = [];
  const values: unknown[] = [projectId];
  for (const [field, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    values.push(field === 'settings' ? JSON.stringify(value) : value);
    sets.push(`${field} = $${values.length}`);
  }
  if (sets.length > 0) await db.query(`UPDATE projects SET ${sets.join(', ')} WHERE id = $1`, values);
}

export async function archiveProject(db: Queryable, projectId: string): Promise<void> {
  await db.query('UPDATE projects SET archived_at = coalesce(archived_at, now()) WHERE id = $1', [projectId]);
}

/** A project's timings, as its stories' workflows take them. */
export async function projectTimings(
  db: Queryable,
  projectId: string,
): Promise<{ lease_ttl_seconds: number; stall_after_seconds: number }> {
  const { rows } = await db.query<{ lease_ttl_seconds: number; stall_after_seconds: number }>(
    'SELECT lease_ttl_seconds, stall_after_seconds FROM projects WHERE id = $1',
    [projectId],
  );
  return rows[0];
}

/** Changes what is given of an epic (`description: null` clears it; absent fields stay). */
export async function updateEpic(
  db: Queryable,
  epicId: string,
  patch: { title?: string; description?: string | null; metadata?: Record<string, unknown> },
): Promise<void> {
  await db.query(
    `UPDATE epics SET title = coalesce($2, title),
       description = CASE WHEN $5 THEN $3 ELSE description END, metadata = coalesce($4, metadata)
     WHERE id = $1`,
    [
      epicId,
      patch.title ?? null,
      patch.description ?? null,
      patch.metadata === undefined ? null : JSON.stringify(patch.metadata),
      patch.description !== undefined,
    ],
  );
}

/** Replaces an epic's content (a merge import: what the import says is what it holds). */
export async function replaceEpicContent(
  db: Queryable,
  epicId: string,
  content: { title: string; description: string | null; metadata: Record<string, unknown> },
): Promise<void> {
  await db.query('UPDATE epics SET title = $2, description = $3, metadata = $4 WHERE id = $1', [
    epicId,
    content.title,
    content.description,
    JSON.stringify(content.metadata),
  ]);
}

export interface DependencyEdge {
  id: string;
  story_id: string;
  depends_on_story_id: string;
}

export async function getDependencyEdge(db: Queryable, tenantId: string, id: string): Promise<DependencyEdge | null> {
  const { rows } = await db.query<DependencyEdge>(
    'SELECT id, story_id, depends_on_story_id FROM story_dependencies WHERE tenant_id = $1 AND id = $2',
    [tenantId, id],
  );
  return rows[0] ?? null;
}

/** The id of the edge `storyId` → `dependsOnId`, if there is one. */
export async function dependencyEdgeId(db: Queryable, storyId: string, dependsOnId: string): Promise<string | null> {
  const { rows } = await db.query<{ id: string }>(
    'SELECT id FROM story_dependencies WHERE story_id = $1 AND depends_on_story_id = $2',
    [storyId, dependsOnId],
  );
  return rows[0]?.id ?? null;
}

/** The live stories that depend on this one. */
export async function liveDependents(
  db: Queryable,
  tenantId: string,
  storyId: string,
): Promise<{ id: string; number: string }[]> {
  const { rows } = await db.query<{ id: string; number: string }>(
    `SELECT s.id, s.number FROM story_dependencies d JOIN stories s ON s.id = d.story_id
     WHERE d.tenant_id = $1 AND d.depends_on_story_id = $2 AND s.deleted_at IS NULL`,
    [tenantId, storyId],
  );
  return rows;
}

/** The workflows of every story that depends on this one. */
export async function dependentWorkflowIds(db: Queryable, tenantId: string, storyId: string): Promise<string[]> {
  const { rows } = await db.query<{ workflow_id: string }>(
    `SELECT s.workflow_id FROM story_dependencies d JOIN stories s ON s.id = d.story_id
     WHERE d.tenant_id = $1 AND d.depends_on_story_id = $2`,
    [tenantId, storyId],
  );
  return rows.map((r) => r.workflow_id);
}

/**
 * Takes the story's turn to signal its violation count: true unless some gateway took it within
 * the last `intervalMs` (the database's clock is the one every gateway shares).
 */
export async function takeViolationSignalTurn(
  db: Queryable,
  story: { id: string; tenant_id: string },
  intervalMs: number,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO violation_signals (story_id, tenant_id, sent_at) VALUES ($1, $2, now())
     ON CONFLICT (story_id) DO UPDATE SET sent_at = now()
     WHERE violation_signals.sent_at <= now() - $3 * interval '1 millisecond'`,
    [story.id, story.tenant_id, intervalMs],
  );
  return rowCount === 1;
}

/** A dependency as lists show it: both stories' numbers and the dependency's status. */
export interface DependencyListing {
  id: string;
  story_id: string;
  depends_on_story_id: string;
  story_number: string;
  depends_on_number: string;
  depends_on_verified_status: string;
  created_at: Date;
}

/**
 * Dependency edges between live stories, filtered by the dependent, the dependency, the project or
 * the epic (of the dependent), oldest first, a page at a time (keyed on creation time and id).
 */
export async function listDependencies(
  db: Queryable,
  tenantId: string,
  f: {
    storyId?: string | undefined;
    dependsOnStoryId?: string | undefined;
    projectId?: string | undefined;
    epicId?: string | undefined;
    limit: number;
    offset: number;
  },
): Promise<{ rows: DependencyListing[]; total: number }> {
  const filter = `d.tenant_id = $1 AND s.deleted_at IS NULL AND dep.deleted_at IS NULL
    AND ($2::uuid IS NULL OR d.story_id = $2) AND ($3::uuid IS NULL OR d.depends_on_story_id = $3)
    AND ($4::uuid IS NULL OR s.project_id = $4) AND ($5::uuid IS NULL OR s.epic_id = $5)`;
  const from = `FROM story_dependencies d JOIN stories s ON s.id = d.story_id JOIN stories dep ON dep.id = d.depends_on_story_id`;
  const params = [tenantId, f.storyId ?? null, f.dependsOnStoryId ?? null, f.projectId ?? null, f.epicId ?? null];
  const count = await db.query<{ n: number }>(`SELECT count(*)::int AS n ${from} WHERE ${filter}`, params);
  const { rows } = await db.query<DependencyListing>(
    `SELECT d.id, d.story_id, d.depends_on_story_id, s.number AS story_number, dep.number AS depends_on_number,
       dep.verified_status AS depends_on_verified_status, d.created_at
     ${from} WHERE ${filter} ORDER BY d.created_at, d.id LIMIT $6 OFFSET $7`,
    [...params, f.limit, f.offset],
  );
  return { rows, total: count.rows[0].n };
}
