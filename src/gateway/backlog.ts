/**
 * Creating stories: validates a whole backlog (unknown dependencies, cycles), writes it in one
 * transaction, then starts one workflow per story. Every step is idempotent, so importing the
 * same backlog again creates nothing new and completes anything a failed attempt left unstarted.
 */
import type pg from 'pg';
import { z } from 'zod';
import { findCycle } from '../custody/dependency-graph.js';
import { inTransaction } from '../db/pool.js';
import {
  insertDependency,
  insertStory,
  projectDependencyEdges,
  projectStoriesByNumber,
  storiesByIds,
  upsertEpic,
  type ProjectRow,
  type StoryRow,
} from '../db/story-repo.js';
import { ApiError } from './errors.js';
import { storyWorkflowId, type StoryCommands } from './story-commands.js';

const storyNumber = z
  .union([z.string(), z.number()])
  .transform(String)
  .pipe(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/, 'a story number is like "2.1"'));

const criterion = z.union([
  z.string().min(1).max(2000),
  z.strictObject({ id: z.union([z.string().max(64), z.number()]), description: z.string().min(1).max(2000) }),
]);

export const StoryInput = z.strictObject({
  number: storyNumber,
  title: z.string().min(1).max(500),
  description: z.string().max(20_000).optional(),
  acceptance_criteria: z.array(criterion).max(100),
  depends_on: z.array(storyNumber).max(100).optional(),
});

export const ImportBody = z.strictObject({
  epics: z
    .array(
      z.strictObject({
        number: z.number().int().min(0).max(1_000_000),
        title: z.string().min(1).max(500),
        description: z.string().max(20_000).optional(),
        stories: z.array(StoryInput).max(2000),
      }),
    )
    .min(1)
    .max(500),
});
export type ImportBody = z.infer<typeof ImportBody>;

export interface ImportResult {
  stories: StoryRow[];
  created: number;
}

const START_CONCURRENCY = 16;

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

export async function importBacklog(
  deps: { pool: pg.Pool; commands: StoryCommands },
  tenant: { id: string; slug: string },
  project: ProjectRow,
  backlog: ImportBody,
): Promise<ImportResult> {
  const { pool } = deps;
  const incoming = backlog.epics.flatMap((epic) => epic.stories.map((story) => ({ epic, story })));
  const seen = new Set<string>();
  for (const { story } of incoming) {
    if (seen.has(story.number)) {
      throw new ApiError('invalid_body', `Story number ${story.number} appears twice in the backlog.`, {
        number: story.number,
      });
    }
    seen.add(story.number);
  }

  const written = await inTransaction(pool, async (db) => {
    // Serializes imports into one project, so the cycle check sees every committed edge.
    await db.query('SELECT id FROM projects WHERE id = $1 FOR UPDATE', [project.id]);
    const existing = await projectStoriesByNumber(db, tenant.id, project.id);
    const known = new Set([...existing.keys(), ...seen]);
    for (const { story } of incoming) {
      for (const dep of story.depends_on ?? []) {
        if (!known.has(dep)) {
          throw new ApiError(
            'invalid_body',
            `Story ${story.number} depends on ${dep}, which is not in the project or the backlog.`,
            {
              number: story.number,
              depends_on: dep,
            },
          );
        }
      }
    }
    const byId = new Map([...existing.values()].map((s) => [s.id, s.number]));
    const edges: [string, string][] = (await projectDependencyEdges(db, tenant.id, project.id)).map((e) => [
      byId.get(e.story_id)!,
      byId.get(e.depends_on_story_id)!,
    ]);
    for (const { story } of incoming) for (const dep of story.depends_on ?? []) edges.push([story.number, dep]);
    const cycle = findCycle(edges);
    if (cycle) throw new ApiError('dependency_cycle', `Dependencies form a cycle: ${cycle.join(' -> ')}.`, { cycle });

    const stories = new Map<string, StoryRow>();
    let created = 0;
    // Stories imported before: their workflows are running and learn new dependencies by signal.
    const alreadyRunning = new Set<string>();
    const epicIds = new Map<number, string>();
    for (const epic of backlog.epics) {
      epicIds.set(epic.number, (await upsertEpic(db, tenant.id, project.id, epic)).id);
    }
    for (const { epic, story } of incoming) {
      const result = await insertStory(db, tenant.id, {
        projectId: project.id,
        epicId: epicIds.get(epic.number)!,
        number: story.number,
        title: story.title,
        description: story.description,
        acceptanceCriteria: story.acceptance_criteria,
        workflowId: storyWorkflowId(tenant.slug, project.slug, story.number),
      });
      stories.set(story.number, result.story);
      if (result.created) created++;
      else alreadyRunning.add(result.story.id);
    }
    const all = new Map([...existing, ...stories]);
    for (const { story } of incoming) {
      for (const dep of story.depends_on ?? []) {
        await insertDependency(db, tenant.id, all.get(story.number)!.id, all.get(dep)!.id);
      }
    }
    const dependsOn = new Map<string, StoryRow[]>();
    for (const { story } of incoming) {
      dependsOn.set(
        story.number,
        (story.depends_on ?? []).map((n) => all.get(n)!),
      );
    }
    return { stories: [...stories.values()], created, dependsOn, alreadyRunning };
  });

  await startWorkflows(deps, tenant.id, written.stories, written.dependsOn, written.alreadyRunning, {
    leaseTtlMs: project.lease_ttl_seconds * 1000,
    stallAfterMs: project.stall_after_seconds * 1000,
  });
  return { stories: written.stories, created: written.created };
}

/**
 * Starts each story's workflow (a no-op for running ones) and tells it which dependencies are
 * verified; a running one (in `alreadyRunning`) is told of each of its dependencies, since its
 * start input, written at its first import, may not list a dependency added since.
 */
export async function startWorkflows(
  deps: { pool: pg.Pool; commands: StoryCommands },
  tenantId: string,
  stories: StoryRow[],
  dependsOn: Map<string, StoryRow[]>,
  alreadyRunning: ReadonlySet<string>,
  projectSettings: { leaseTtlMs: number; stallAfterMs: number },
): Promise<void> {
  const { pool, commands } = deps;
  await inBatches(stories, START_CONCURRENCY, async (story) => {
    const deps = dependsOn.get(story.number) ?? [];
    await commands.start(
      {
        tenantId: story.tenant_id,
        projectId: story.project_id,
        storyId: story.id,
        number: story.number,
        title: story.title,
        acCount: story.acceptance_criteria.length,
        dependsOn: deps.map((d) => d.id),
      },
      story.workflow_id,
      `${story.number} ${story.title}`,
      Object.fromEntries(
        deps.map((d) => [d.id, { verified: d.verified_status === 'verified', seq: Number(d.version) }]),
      ),
      projectSettings,
    );
  });
  await announceDependencies({ pool, commands }, tenantId, stories, dependsOn, alreadyRunning);
}

/**
 * A dependency verified while the dependent's row was still uncommitted was announced to nobody;
 * reading the dependencies again after the workflows run closes that gap (signals are idempotent).
 * A story that was already running hears of every dependency, verified or not.
 */
async function announceDependencies(
  deps: { pool: pg.Pool; commands: StoryCommands },
  tenantId: string,
  stories: StoryRow[],
  dependsOn: Map<string, StoryRow[]>,
  alreadyRunning: ReadonlySet<string>,
): Promise<void> {
  const ids = [...new Set(stories.flatMap((s) => (dependsOn.get(s.number) ?? []).map((d) => d.id)))];
  const fresh = new Map((await storiesByIds(deps.pool, tenantId, ids)).map((d) => [d.id, d]));
  const signals: [string, StoryRow][] = [];
  for (const story of stories) {
    for (const dep of dependsOn.get(story.number) ?? []) {
      const now = fresh.get(dep.id);
      if (now && (now.verified_status === 'verified' || alreadyRunning.has(story.id)))
        signals.push([story.workflow_id, now]);
    }
  }
  await inBatches(signals, START_CONCURRENCY, ([workflowId, dep]) =>
    deps.commands.tellDependencyStatus(workflowId, dep),
  );
}
