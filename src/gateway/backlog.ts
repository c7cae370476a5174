/**
 * Creating stories: validates a whole backlog (unknown dependencies, cycles), writes it in one
 * transaction, then starts one workflow per story. Every step is idempotent, so importing the
 * same backlog again creates nothing new and completes anything a failed attempt left unstarted.
 */
import type pg from 'pg';
import { z } from 'zod';
import { findCycle } from '../custody/dependency-graph.js';
import type { Config } from '../config.js';
import { withProjectLock } from '../db/project-lock.js';
import { enforceQuota, quotasOf } from '../db/quotas.js';
import {
  insertDependencies,
  insertStories,
  listEpics,
  projectDependencyEdges,
  projectStoriesByNumber,
  markWorkflowsStarted,
  replaceEpicContent,
  storiesByIds,
  storiesByNumbers,
  upsertEpic,
  type EpicRow,
  type ProjectRow,
  type StoryRow,
} from '../db/story-repo.js';
import { inTransaction } from '../db/pool.js';
import { CustodyError } from '../custody/errors.js';
import { custodyErrorOf } from './temporal-errors.js';
import { storyWorkflowId, type StoryCommands } from './story-commands.js';
import { notBlank } from './routes/params.js';

/**
 * A story number is text ("2.10"). As a JSON number only an integer is taken: 2.10 arrives as
 * 2.1, another story, so a fractional number is refused rather than guessed at. As text it is
 * integers joined by dots, none with a leading zero ("01.5" would sort and compare as another
 * "1.5"), nothing else ("x", "1.5e0"); a dotted number starts with its epic's (`numberEpicProblem`).
 */
const storyNumber = z
  .union([z.string(), z.number().int().min(0).max(999_999_999)])
  .transform(String)
  .pipe(
    z
      .string()
      .regex(
        /^(0|[1-9]\d{0,8})(\.(0|[1-9]\d{0,8})){0,3}$/,
        'a story number is its epic number and an integer, like "2.1" (no leading zeros)',
      ),
  );

/** A dotted story number names its epic first: "1.1" is no story of epic 2. */
function numberEpicProblem(number: string, epicNumber: number): CustodyError | null {
  const dot = number.indexOf('.');
  if (dot < 0 || number.slice(0, dot) === String(epicNumber)) return null;
  return new CustodyError('story_number_mismatch', `Story ${number} is not a number of epic ${epicNumber}.`, {
    number,
    epic_number: epicNumber,
  });
}

/** Acceptance criteria with ids: each id once in a story (a contract's reviewer names them). */
export function duplicateCriterionIds(criteria: readonly unknown[]): string[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const c of criteria) {
    if (typeof c !== 'object' || c === null || !('id' in c)) continue;
    const id = String(c.id);
    if (seen.has(id)) repeated.add(id);
    seen.add(id);
  }
  return [...repeated];
}

/** 422 duplicate_criterion_id when a story's criteria name one id twice. */
export function refuseDuplicateCriterionIds(number: string, criteria: readonly unknown[]): void {
  const ids = duplicateCriterionIds(criteria);
  if (ids.length > 0)
    throw new CustodyError('duplicate_criterion_id', `Story ${number} names acceptance criterion ${ids[0]} twice.`, {
      number,
      ids,
    });
}

/** An epic number: an integer, or (as loopctl's clients send it) the same as a numeric string. */
export const EpicNumber = z
  .union([z.number(), z.string().regex(/^\d{1,7}$/, 'an epic number is an integer')])
  .transform(Number)
  .pipe(z.number().int().min(0).max(1_000_000));

const criterion = z.union([
  z.string().min(1).max(2000),
  z.strictObject({ id: z.union([z.string().max(64), z.number()]), description: z.string().min(1).max(2000) }),
]);

const metadata = z.record(z.string().max(200), z.unknown());

export const StoryInput = z.strictObject({
  number: storyNumber,
  title: notBlank(500),
  description: z.string().max(20_000).nullish(),
  acceptance_criteria: z.array(criterion).max(100).default([]),
  depends_on: z.array(storyNumber).max(100).optional(),
  estimated_hours: z.number().min(0).max(100_000).nullish(),
  metadata: metadata.nullish(),
});
export type StoryInput = z.infer<typeof StoryInput>;

/**
 * loopctl's import format (what its export and its MCP server send). `project`,
 * `export_metadata` and `epic_dependencies` are accepted and not used: a project is created on
 * its own, and custody orders work by story dependencies.
 */
export const ImportBody = z.strictObject({
  epics: z
    .array(
      z.strictObject({
        number: EpicNumber,
        title: notBlank(500),
        description: z.string().max(20_000).nullish(),
        phase: z.unknown().optional(),
        position: z.unknown().optional(),
        metadata: metadata.nullish(),
        stories: z.array(StoryInput).max(5000).default([]),
      }),
    )
    .min(1)
    .max(500),
  story_dependencies: z
    .array(z.strictObject({ story: storyNumber, depends_on: storyNumber }))
    .max(50_000)
    .optional(),
  epic_dependencies: z.array(z.unknown()).max(10_000).optional(),
  project: z.record(z.string(), z.unknown()).optional(),
  export_metadata: z.record(z.string(), z.unknown()).optional(),
});
export type ImportBody = z.input<typeof ImportBody>;
type ParsedImport = z.output<typeof ImportBody>;

/** Why a merge left a story as it was. */
export type SkipReason = 'story_in_progress' | 'epic_changed' | 'story_closed' | 'story_held' | 'story_withdrawn';

export interface ImportResult {
  stories: StoryRow[];
  created: number;
  /** The numbers of the stories this import created. */
  createdNumbers: string[];
  epicsCreated: number;
  updated: string[];
  unchanged: string[];
  skipped: { number: string; reason: SkipReason; agent_status: string; verified_status: string }[];
  orphaned: string[];
  dependenciesCreated: number;
  /** What `record` returned: the import's audit row, written in the import's own transaction. */
  recorded?: string | undefined;
}

/** Writes the import's audit row in its transaction (so an import is never committed unrecorded). */
export type ImportRecorder = (db: pg.PoolClient, result: Omit<ImportResult, 'recorded'>) => Promise<string>;

/** Workflow starts (and signals) in flight at once per import: enough to keep Temporal busy, bounded. */
const START_CONCURRENCY = 32;
/** Merge edits run once the import's transaction committed: a few at a time, to leave the pool room. */
const EDIT_CONCURRENCY = 4;

/** At most this many bytes of a story's stored fields (its JSON in UTF-8), whatever the request's size. */
export const STORY_BYTES_LIMIT = 256 * 1024;

/** Runs `fn` on every item, at most `limit` at once; a slow one holds one slot, not a whole batch. */
async function inWindow<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/** JSON with object keys sorted, for comparing content. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** What an import compares: the story's content, not its lifecycle. */
export function storyContent(s: {
  title: string;
  description?: string | null | undefined;
  acceptance_criteria: unknown[];
  estimated_hours?: number | string | null | undefined;
  metadata?: Record<string, unknown> | null | undefined;
}) {
  return {
    title: s.title,
    description: s.description ?? null,
    acceptance_criteria: s.acceptance_criteria,
    estimated_hours: s.estimated_hours === null || s.estimated_hours === undefined ? null : Number(s.estimated_hours),
    metadata: s.metadata ?? {},
  };
}
export type StoryContent = ReturnType<typeof storyContent>;

export function sameContent(a: Parameters<typeof storyContent>[0], b: Parameters<typeof storyContent>[0]): boolean {
  return canonical(storyContent(a)) === canonical(storyContent(b));
}

/** The bytes a story's stored fields take (number and content as JSON, UTF-8). */
export function storyBytes(number: string, content: StoryContent): number {
  return Buffer.byteLength(JSON.stringify({ number, ...content }), 'utf8');
}

/** 413 `story_too_large` when one story's stored fields pass the per-story limit. */
export function refuseOversizedStory(number: string, content: StoryContent): void {
  const bytes = storyBytes(number, content);
  if (bytes > STORY_BYTES_LIMIT) {
    throw new CustodyError(
      'story_too_large',
      `Story ${number} holds ${bytes} bytes; a story holds at most ${STORY_BYTES_LIMIT}.`,
      {
        number,
        bytes,
        limit: STORY_BYTES_LIMIT,
      },
    );
  }
}

/**
 * Edits a pending story through its workflow (the rules refuse once it is past pending): 'updated',
 * or why it was left as it was.
 */
export type StoryEditor = (story: StoryRow, content: StoryContent) => Promise<'updated' | SkipReason>;

function sameSet(a: readonly string[], b: ReadonlySet<string>): boolean {
  return a.length === b.size && a.every((x) => b.has(x));
}

/**
 * Imports a backlog, all or nothing. The project's lock is held from the first read to the commit
 * (for a merge, until its edits are made), so two imports of one project run one after the other
 * and each judges what the other wrote. A merge's content edits go through the stories' workflows
 * (the authority on whether a story is still pending), each committing through its workflow's
 * persistence; so they are sent only once the import's transaction has committed: a merge that
 * fails in the database has edited no workflow. Each edit is idempotent by content (a story that
 * holds the merged content is unchanged), so a merge whose edits were cut short (Temporal
 * unreachable, the gateway stopped) completes when sent again, as its unstarted workflows do.
 */
export async function importBacklog(
  deps: { pool: pg.Pool; commands: StoryCommands; config: Config },
  tenant: { id: string; slug: string },
  project: ProjectRow,
  backlog: ParsedImport,
  options: { merge?: boolean; edit?: StoryEditor; exact?: boolean; record?: ImportRecorder } = {},
): Promise<ImportResult> {
  const { pool } = deps;
  const incoming = backlog.epics.flatMap((epic) => epic.stories.map((story) => ({ epic, story })));
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const { epic, story } of incoming) {
    if (seen.has(story.number)) repeated.add(story.number);
    seen.add(story.number);
    refuseOversizedStory(story.number, storyContent(story));
    const misplaced = numberEpicProblem(story.number, epic.number);
    if (misplaced) throw misplaced;
    refuseDuplicateCriterionIds(story.number, story.acceptance_criteria);
  }
  if (repeated.size > 0) {
    throw new CustodyError('duplicate_story_number', 'A story number appears more than once in the backlog.', {
      numbers: [...repeated],
    });
  }
  const epicNumbers = new Set<number>();
  for (const epic of backlog.epics) {
    if (epicNumbers.has(epic.number)) {
      throw new CustodyError('duplicate_story_number', `Epic ${epic.number} appears more than once in the backlog.`, {
        epic_number: epic.number,
      });
    }
    epicNumbers.add(epic.number);
  }
  // Each story's dependencies: its own `depends_on` and the top-level `story_dependencies`.
  const wanted = new Map<string, string[]>();
  for (const { story } of incoming) wanted.set(story.number, [...new Set(story.depends_on ?? [])]);
  for (const dep of backlog.story_dependencies ?? []) {
    if (!seen.has(dep.story)) {
      throw new CustodyError('unknown_dependency', `story_dependencies names story ${dep.story}, not in the backlog.`, {
        number: dep.story,
        depends_on: dep.depends_on,
      });
    }
    const list = wanted.get(dep.story)!;
    if (!list.includes(dep.depends_on)) list.push(dep.depends_on);
  }

  const writeBacklog = async (db: pg.PoolClient) => {
    const existing = await projectStoriesByNumber(db, tenant.id, project.id);
    if (options.exact) {
      const taken = incoming.find(({ story }) => existing.has(story.number));
      if (taken) {
        const number = taken.story.number;
        throw new CustodyError('conflict', `Story ${number} already exists.`, {
          number,
          existing_id: existing.get(number)!.id,
        });
      }
    }
    const newCount = incoming.filter(({ story }) => !existing.has(story.number)).length;
    // Checked now, enforced (under the tenant's quota lock) once the merge's edits are made: a
    // lock held while waiting on workflows would make every other creator in the tenant wait.
    await enforceQuota(db, tenant.id, quotasOf(deps.config), 'stories', newCount, { lock: false });
    for (const [number, list] of wanted) {
      for (const dep of list) {
        const row = existing.get(dep);
        // A withdrawn story is never verified: a story depending on it would wait forever.
        // Its number stays taken (a merge skips it), so even one named in the backlog is refused.
        const withdrawn = row?.deleted_at;
        if (dep === number) {
          throw new CustodyError('dependency_cycle', `Story ${number} depends on itself.`, {
            cycle: [number, number],
          });
        }
        if ((!seen.has(dep) && !row) || withdrawn) {
          throw new CustodyError(
            'unknown_dependency',
            withdrawn
              ? `Story ${number} depends on ${dep}, which was withdrawn.`
              : `Story ${number} depends on ${dep}, which is not in the project or the backlog.`,
            { number, depends_on: dep, ...(withdrawn ? { withdrawn: true } : {}) },
          );
        }
      }
    }

    const byId = new Map([...existing.values()].map((s) => [s.id, s.number]));
    const storedEdges = (await projectDependencyEdges(db, tenant.id, project.id)).map(
      (e) => [byId.get(e.story_id)!, byId.get(e.depends_on_story_id)!] as [string, string],
    );
    const storedDeps = new Map<string, Set<string>>();
    // A dependency on a withdrawn story (written before such were refused) is not compared:
    // the export leaves it out, and its round trip must compare equal.
    const withdrawnNumbers = new Set([...existing.values()].filter((s) => s.deleted_at).map((s) => s.number));
    for (const [story, dep] of storedEdges) {
      if (withdrawnNumbers.has(dep)) continue;
      if (!storedDeps.has(story)) storedDeps.set(story, new Set());
      storedDeps.get(story)!.add(dep);
    }

    // An existing number with other content or other dependencies is a conflict unless merging;
    // a merge changes pending stories only. A withdrawn story's number stays taken: a conflict,
    // and a merge skips it (its workflow is never restarted).
    const conflicts: { number: string; reason: string }[] = [];
    const toUpdate: { row: StoryRow; content: StoryContent }[] = [];
    const skipped: ImportResult['skipped'] = [];
    const unchanged: string[] = [];
    /** Existing stories this import may give new dependencies: pending ones, when merging. */
    const mayChange = new Set<string>();
    for (const { epic, story } of incoming) {
      const row = existing.get(story.number);
      if (!row) continue;
      const list = wanted.get(story.number)!;
      const stored = storedDeps.get(story.number) ?? new Set<string>();
      const sameText = sameContent(row, story) && row.epic_number === epic.number;
      const newDeps = list.some((d) => !stored.has(d));
      if (row.deleted_at && options.merge) {
        skipped.push({
          number: story.number,
          reason: 'story_withdrawn',
          agent_status: row.agent_status,
          verified_status: row.verified_status,
        });
      } else if (row.deleted_at) conflicts.push({ number: story.number, reason: 'deleted' });
      else if (!options.merge) {
        if (!sameText) conflicts.push({ number: story.number, reason: 'content_differs' });
        else if (!sameSet(list, stored)) conflicts.push({ number: story.number, reason: 'dependencies_differ' });
        else unchanged.push(story.number);
      } else if (sameText && !newDeps) unchanged.push(story.number);
      else {
        const reason: SkipReason | null =
          row.epic_number !== epic.number
            ? 'epic_changed'
            : row.agent_status !== 'pending' || row.verified_status === 'verified'
              ? 'story_in_progress'
              : null;
        if (reason) {
          skipped.push({
            number: story.number,
            reason,
            agent_status: row.agent_status,
            verified_status: row.verified_status,
          });
          continue;
        }
        mayChange.add(story.number);
        if (!sameText) toUpdate.push({ row, content: storyContent(story) });
      }
    }
    // A story an operator closed would refuse its edit after the commit: found now, so that the
    // merge's audit row (written below) says it was skipped, as the answer does.
    if (options.merge && toUpdate.length > 0) {
      const closed = new Set<string>();
      await inWindow(toUpdate, EDIT_CONCURRENCY, async ({ row }) => {
        if (await deps.commands.isClosed(row.workflow_id)) closed.add(row.number);
      });
      for (const { row } of toUpdate.filter(({ row }) => closed.has(row.number))) {
        toUpdate.splice(
          toUpdate.findIndex((u) => u.row.number === row.number),
          1,
        );
        mayChange.delete(row.number);
        skipped.push({
          number: row.number,
          reason: 'story_closed',
          agent_status: row.agent_status,
          verified_status: row.verified_status,
        });
      }
    }
    // An existing epic with other content is a conflict too unless merging (a merge updates it):
    // kept silently, later contracts would read the old epic. (A story created by its epic's
    // number names the stored epic: nothing to compare.)
    const storedEpics = new Map((await listEpics(db, tenant.id, project.id)).map((e) => [e.number, e]));
    const epicConflicts = options.merge || options.exact ? [] : differingEpics(backlog.epics, storedEpics);
    if (conflicts.length > 0 || epicConflicts.length > 0) {
      throw new CustodyError(
        'duplicate_story_numbers',
        'Stories or epics with these numbers already exist with other content or dependencies; import with ?merge=true to update the pending stories and the epics.',
        {
          numbers: conflicts.map((c) => c.number),
          conflicts,
          epic_numbers: epicConflicts.map((c) => c.number),
          epic_conflicts: epicConflicts,
        },
      );
    }
    /** The dependencies this import adds: those of new stories and of the stories it may change. */
    const adding = (number: string) => !existing.has(number) || mayChange.has(number);
    const edges = [...storedEdges];
    for (const [number, list] of wanted) if (adding(number)) for (const dep of list) edges.push([number, dep]);
    const cycle = findCycle(edges);
    if (cycle)
      throw new CustodyError('dependency_cycle', `Dependencies form a cycle: ${cycle.join(' -> ')}.`, { cycle });

    await enforceQuota(db, tenant.id, quotasOf(deps.config), 'stories', newCount);
    // The stories this merge changes: merged content (sent to their workflows after the commit)
    // and pending stories that only gained dependencies.
    const updated = [...toUpdate.map(({ row }) => row.number)];
    for (const number of mayChange) if (!updated.includes(number)) updated.push(number);

    const stories = new Map<string, StoryRow>();
    let created = 0;
    const createdNumbers: string[] = [];
    let epicsCreated = 0;
    // Stories imported before: their workflows are running and learn new dependencies by signal.
    const alreadyRunning = new Set<string>();
    const epicIds = new Map<number, string>();
    const existingEpics = new Set(storedEpics.keys());
    for (const epic of backlog.epics) {
      if (!existingEpics.has(epic.number)) epicsCreated++;
      const row = await upsertEpic(db, tenant.id, project.id, {
        number: epic.number,
        title: epic.title,
        description: epic.description ?? undefined,
        metadata: epic.metadata ?? undefined,
      });
      if (options.merge && existingEpics.has(epic.number)) {
        await replaceEpicContent(db, row.id, {
          title: epic.title,
          description: epic.description ?? null,
          metadata: epic.metadata ?? {},
        });
      }
      epicIds.set(epic.number, row.id);
    }
    // One statement for every new story, then one read of every story the backlog names.
    const createdSet = await insertStories(
      db,
      tenant.id,
      incoming
        .filter(({ story }) => !existing.has(story.number))
        .map(({ epic, story }) => ({
          projectId: project.id,
          epicId: epicIds.get(epic.number)!,
          number: story.number,
          title: story.title,
          description: story.description ?? undefined,
          acceptanceCriteria: story.acceptance_criteria,
          estimatedHours: story.estimated_hours ?? undefined,
          metadata: story.metadata ?? undefined,
          workflowId: storyWorkflowId(tenant.slug, project.slug, story.number),
        })),
    );
    const named = await storiesByNumbers(
      db,
      tenant.id,
      project.id,
      incoming.map(({ story }) => story.number),
    );
    for (const { story } of incoming) {
      const row = named.get(story.number)!;
      if (row.deleted_at) continue; // withdrawn: skipped by the merge, never started again
      stories.set(story.number, row);
      if (createdSet.has(story.number)) {
        created++;
        createdNumbers.push(story.number);
      } else alreadyRunning.add(row.id);
    }
    const all = new Map([...existing, ...stories]);
    const newEdges = await insertDependencies(
      db,
      tenant.id,
      [...wanted]
        .filter(([number]) => adding(number))
        .flatMap(([number, list]) => list.map((dep): [string, string] => [all.get(number)!.id, all.get(dep)!.id])),
    );
    const dependenciesCreated = newEdges.length;
    // A story given a dependency here must hear of it, even one started and told before.
    const untold = new Set(newEdges.map(([storyId]) => storyId));
    for (const [number, story] of stories) {
      if (untold.has(story.id)) stories.set(number, { ...story, workflow_started: false });
    }
    // Every story's dependencies as they will stand: a workflow that a failed attempt left
    // unstarted starts with all of them, a running one hears of each.
    const dependsOn = new Map<string, StoryRow[]>();
    for (const [number, list] of wanted) {
      const numbers = new Set(storedDeps.get(number));
      if (adding(number)) for (const dep of list) numbers.add(dep);
      dependsOn.set(
        number,
        [...numbers].map((n) => all.get(n)!),
      );
    }
    const orphaned = [...existing.values()].filter((s) => !seen.has(s.number) && !s.deleted_at).map((s) => s.number);
    const summary = {
      stories: [...stories.values()],
      created,
      createdNumbers,
      epicsCreated,
      updated,
      skipped,
      unchanged,
      orphaned,
      dependenciesCreated,
    };
    // Last: the audit row takes the tenant's chain lock until the commit. Its `stories_updated`
    // lists the edits this merge sends; each edit's outcome is that story's own audit row.
    const recorded = options.record ? await options.record(db, summary) : undefined;
    return { ...summary, dependsOn, alreadyRunning, recorded, toUpdate };
  };

  // A merge holds the project's lock (a transaction of its own) past its commit, until its edits
  // are made: the next merge of the project judges content the workflows already hold.
  const written = options.merge
    ? await withProjectLock(pool, project.id, async () => {
        const committed = await inTransaction(pool, writeBacklog);
        await sendEdits(committed, options.edit);
        return committed;
      })
    : await withProjectLock(pool, project.id, writeBacklog);

  await startWorkflows(deps, tenant.id, written.stories, written.dependsOn, written.alreadyRunning, {
    leaseTtlMs: project.lease_ttl_seconds * 1000,
    stallAfterMs: project.stall_after_seconds * 1000,
  });
  const fresh = new Map(
    (
      await storiesByIds(
        pool,
        tenant.id,
        written.stories.map((s) => s.id),
      )
    ).map((s) => [s.id, s]),
  );
  return {
    stories: written.stories.map((s) => fresh.get(s.id) ?? s),
    created: written.created,
    createdNumbers: written.createdNumbers,
    epicsCreated: written.epicsCreated,
    updated: written.updated,
    unchanged: written.unchanged,
    skipped: written.skipped,
    orphaned: written.orphaned,
    dependenciesCreated: written.dependenciesCreated,
    recorded: written.recorded,
  };
}

/**
 * A committed merge's content edits, through the stories' workflows. A story that moved past
 * pending since the merge read it refuses: it keeps its content and is reported skipped (the
 * dependencies the merge gave it stay, as they would for a story contracted just after).
 */
async function sendEdits(
  written: Pick<ImportResult, 'updated' | 'skipped'> & { toUpdate: { row: StoryRow; content: StoryContent }[] },
  edit?: StoryEditor,
): Promise<void> {
  if (!edit) return;
  await inWindow(written.toUpdate, EDIT_CONCURRENCY, async ({ row, content }) => {
    const outcome = await edit(row, content);
    if (outcome === 'updated') return;
    written.updated.splice(written.updated.indexOf(row.number), 1);
    written.skipped.push({
      number: row.number,
      reason: outcome,
      agent_status: row.agent_status,
      verified_status: row.verified_status,
    });
  });
}

/** The backlog's epics that exist with another title, description or metadata, and which fields differ. */
function differingEpics(
  epics: ParsedImport['epics'],
  stored: ReadonlyMap<number, EpicRow>,
): { number: number; fields: string[] }[] {
  const differing: { number: number; fields: string[] }[] = [];
  for (const epic of epics) {
    const row = stored.get(epic.number);
    if (!row) continue;
    const fields: string[] = [];
    if (row.title !== epic.title) fields.push('title');
    if ((row.description ?? null) !== (epic.description ?? null)) fields.push('description');
    if (canonical(row.metadata ?? {}) !== canonical(epic.metadata ?? {})) fields.push('metadata');
    if (fields.length > 0) differing.push({ number: epic.number, fields });
  }
  return differing;
}

/**
 * Starts each story's workflow that is not known to be started and told of its dependencies (a
 * no-op for running ones) and tells it which dependencies are verified; a running one (in
 * `alreadyRunning`) is told of each of its dependencies, since its start input, written at its
 * first import, may not list a dependency added since. Then marks them started: an unchanged
 * re-import does not ask Temporal again. Starts run in a window of START_CONCURRENCY at once.
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
  const unstarted = stories.filter((s) => !s.workflow_started);
  if (unstarted.length === 0) return;
  await inWindow(unstarted, START_CONCURRENCY, async (story) => {
    const deps = dependsOn.get(story.number) ?? [];
    await startUnlessClosed(commands, [
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
    ]);
  });
  await announceDependencies({ pool, commands }, tenantId, unstarted, dependsOn, alreadyRunning);
  await markWorkflowsStarted(
    pool,
    tenantId,
    unstarted.map((s) => s.id),
  );
}

/** A closed story keeps its custody: importing it again leaves it closed (only an admin resumes it). */
async function startUnlessClosed(commands: StoryCommands, args: Parameters<StoryCommands['start']>): Promise<void> {
  try {
    await commands.start(...args);
  } catch (err) {
    if (custodyErrorOf(err)?.code === 'story_closed') return;
    throw err;
  }
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
  await inWindow(signals, START_CONCURRENCY, ([workflowId, dep]) =>
    deps.commands.tellDependencyStatus(workflowId, dep),
  );
}
