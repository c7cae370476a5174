/**
 * Defects a review of the loopctl compatibility found, each held here against the real service:
 * dependencies on withdrawn stories and the dependency listing, whole merges that say what they
 * skipped and why, the per-story size limit, archived projects out of the work lists, re-imports
 * that change dependencies, list pages that stay put while stories are added, integer-only JSON
 * numbers, concurrent imports of one project, and odd input that must never be a 5xx.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { backlogStory as story, createTeam, OrchestratorSession, type Team } from '../support/api.js';

let stack: Stack;
let team: Team;
let orch: OrchestratorSession;

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 2, 'review');
  orch = new OrchestratorSession(stack.api, team.orchestrator.key, 'r');
});
afterAll(async () => stack?.stop());

/** Imports and returns the stories by number. */
async function seed(projectId: string, payload: unknown): Promise<Map<string, any>> {
  const r = await orch.importInto(projectId, payload);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return new Map((r.body.data.stories as any[]).map((s) => [s.number, s]));
}

async function storyRows(projectId: string) {
  const { rows } = await stack.pool.query<{ number: string; title: string; deleted: boolean }>(
    `SELECT number, title, deleted_at IS NOT NULL AS deleted FROM stories WHERE project_id = $1
     ORDER BY number COLLATE natural_numbers`,
    [projectId],
  );
  return rows;
}

async function edgesOf(projectId: string): Promise<string[]> {
  const { rows } = await stack.pool.query<{ edge: string }>(
    `SELECT s.number || '->' || dep.number AS edge FROM story_dependencies d
       JOIN stories s ON s.id = d.story_id JOIN stories dep ON dep.id = d.depends_on_story_id
     WHERE s.project_id = $1 ORDER BY 1`,
    [projectId],
  );
  return rows.map((r) => r.edge);
}

const contract = (s: { id: string; title: string; acceptance_criteria: unknown[] }) =>
  stack.api.act(s.id, 'contract', team.orchestrator.key, {
    story_title: s.title,
    ac_count: s.acceptance_criteria.length,
  });

describe('dependencies on withdrawn stories', () => {
  it('refuses an import whose story depends on a withdrawn one (it would wait forever), writing nothing', async () => {
    const projectId = await orch.newProject();
    const ids = await seed(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b')] }],
    });
    expect((await orch.call('DELETE', `/api/v1/stories/${ids.get('1.1').id}`)).status).toBe(200);
    const before = await storyRows(projectId);

    const viaDependsOn = await orch.importInto(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.3', 'c', { depends_on: ['1.1'] })] }],
    });
    expect([viaDependsOn.status, viaDependsOn.body.error?.code]).toEqual([422, 'unknown_dependency']);
    expect(viaDependsOn.body.error.context).toMatchObject({ number: '1.3', depends_on: '1.1', withdrawn: true });
    const viaSection = await orch.importInto(
      projectId,
      {
        epics: [{ number: 1, title: 'E', stories: [story('1.2', 'b'), story('1.4', 'd')] }],
        story_dependencies: [{ story: '1.4', depends_on: '1.1' }],
      },
      true,
    );
    expect([viaSection.status, viaSection.body.error?.code]).toEqual([422, 'unknown_dependency']);
    expect(await storyRows(projectId)).toEqual(before);
    expect(await edgesOf(projectId)).toEqual([]);

    // One at a time, too: a withdrawn story is not found.
    const added = await orch.call('POST', '/api/v1/story_dependencies', {
      story_id: ids.get('1.2').id,
      depends_on_story_id: ids.get('1.1').id,
    });
    expect([added.status, added.body.error?.code]).toEqual([404, 'not_found']);
  });

  it('never lets a withdrawal and a new dependency on the same story both succeed', async () => {
    const projectId = await orch.newProject();
    const pairs = 6;
    const stories = Array.from({ length: pairs }, (_, i) => [
      story(`1.${2 * i + 1}`, `target ${i}`),
      story(`1.${2 * i + 2}`, `dependent ${i}`),
    ]).flat();
    const ids = await seed(projectId, { epics: [{ number: 1, title: 'E', stories }] });
    const outcomes = await Promise.all(
      Array.from({ length: pairs }, async (_, i) => {
        const target = ids.get(`1.${2 * i + 1}`);
        const dependent = ids.get(`1.${2 * i + 2}`);
        const [withdrawn, added] = await Promise.all([
          orch.call('DELETE', `/api/v1/stories/${target.id}`),
          orch.call('POST', '/api/v1/story_dependencies', { story_id: dependent.id, depends_on_story_id: target.id }),
        ]);
        return [withdrawn.status, added.status];
      }),
    );
    for (const [withdrawn, added] of outcomes) {
      // Exactly one wins: withdrawn (the dependency is then 404) or depended on (the withdrawal 409).
      expect([withdrawn, added].sort()).toSatisfy(
        (s: number[]) => (s[0] === 200 && s[1] === 404) || (s[0] === 201 && s[1] === 409),
      );
    }
    const { rows } = await stack.pool.query(
      `SELECT count(*)::int AS n FROM story_dependencies d JOIN stories dep ON dep.id = d.depends_on_story_id
       WHERE dep.project_id = $1 AND dep.deleted_at IS NOT NULL`,
      [projectId],
    );
    expect(rows[0].n).toBe(0);
  });

  it('lists dependencies filtered by story_id, depends_on_story_id, project and epic', async () => {
    const projectId = await orch.newProject();
    const ids = await seed(projectId, {
      epics: [
        { number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b'), story('1.3', 'c')] },
        { number: 2, title: 'F', stories: [story('2.1', 'd')] },
      ],
      story_dependencies: [
        { story: '1.2', depends_on: '1.1' },
        { story: '1.3', depends_on: '1.1' },
        { story: '1.3', depends_on: '1.2' },
        { story: '2.1', depends_on: '1.3' },
      ],
    });
    const other = await orch.newProject();
    await seed(other, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'x'), story('1.2', 'y', { depends_on: ['1.1'] })] }],
    });
    const pairs = (r: any) => r.body.data.map((d: any) => `${d.story_number}->${d.depends_on_number}`).sort();

    const byStory = await orch.call('GET', `/api/v1/story_dependencies?story_id=${ids.get('1.3').id}`);
    expect(byStory.status).toBe(200);
    expect(pairs(byStory)).toEqual(['1.3->1.1', '1.3->1.2']);
    expect(byStory.body.meta.total_count).toBe(2);
    expect(byStory.body.data[0]).toMatchObject({
      story_id: ids.get('1.3').id,
      depends_on_verified_status: 'unverified',
    });
    const byDependency = await orch.call('GET', `/api/v1/story_dependencies?depends_on_story_id=${ids.get('1.1').id}`);
    expect(pairs(byDependency)).toEqual(['1.2->1.1', '1.3->1.1']);
    const byProject = await stack.api.get(
      `/api/v1/story_dependencies?project_id=${projectId}&limit=3`,
      team.agents[0].key,
    );
    expect(byProject.body.data).toHaveLength(3);
    expect(byProject.body.meta.total_count).toBe(4);
    const rest = await orch.call(
      'GET',
      `/api/v1/story_dependencies?project_id=${projectId}&cursor=${byProject.body.meta.next_cursor}`,
    );
    expect([...pairs(byProject), ...pairs(rest)].sort()).toEqual(['1.2->1.1', '1.3->1.1', '1.3->1.2', '2.1->1.3']);
    const epicId = ids.get('2.1').epic_id;
    expect(pairs(await orch.call('GET', `/api/v1/epics/${epicId}/story_dependencies`))).toEqual(['2.1->1.3']);
    for (const bad of ['story_id=nope', 'cursor=forged', 'owner=1'])
      expect((await orch.call('GET', `/api/v1/story_dependencies?${bad}`)).status).toBe(400);
  });
});

describe('merge imports', () => {
  it('says which stories it skipped and why, and changes only pending ones', async () => {
    const projectId = await orch.newProject();
    const ids = await seed(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b'), story('1.3', 'c')] }],
    });
    expect((await contract(ids.get('1.1'))).status).toBe(200);
    const merged = await orch.importInto(
      projectId,
      {
        epics: [
          {
            number: 1,
            title: 'E',
            stories: [story('1.1', 'a, renamed'), story('1.2', 'b, renamed'), story('1.3', 'c'), story('1.4', 'd')],
          },
        ],
      },
      true,
    );
    expect(merged.status, JSON.stringify(merged.body)).toBe(200);
    expect(merged.body.data).toMatchObject({
      stories_updated: ['1.2'],
      stories_unchanged: ['1.3'],
      created_count: 1,
      skipped: ['1.1'],
      skipped_count: 1,
      skipped_details: [
        { number: '1.1', reason: 'story_in_progress', agent_status: 'contracted', verified_status: 'unverified' },
      ],
    });
    expect((await storyRows(projectId)).map((r) => r.title)).toEqual(['a', 'b, renamed', 'c', 'd']);
  });

  it('skips a story an operator closed, instead of failing after half the merge was written', async () => {
    const projectId = await orch.newProject();
    const ids = await seed(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b')] }],
    });
    await stack.client.workflow.getHandle(ids.get('1.1').workflow_id).terminate('closed by an operator');
    const merged = await orch.importInto(
      projectId,
      { epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a2'), story('1.2', 'b2'), story('1.3', 'c')] }] },
      true,
    );
    expect(merged.status, JSON.stringify(merged.body)).toBe(200);
    expect(merged.body.data.skipped_details).toEqual([
      { number: '1.1', reason: 'story_closed', agent_status: 'pending', verified_status: 'unverified' },
    ]);
    expect(merged.body.data.stories_updated).toEqual(['1.2']);
    expect((await storyRows(projectId)).map((r) => r.title)).toEqual(['a', 'b2', 'c']);
    // The audit row of the merge says the same, written with it.
    const { rows } = await stack.pool.query(
      `SELECT payload FROM audit_events WHERE project_id = $1 AND action = 'project.merged'`,
      [projectId],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].payload.skipped_details).toEqual(merged.body.data.skipped_details);
  });

  it('writes nothing, edits included, when any part of the merge is refused', async () => {
    const projectId = await orch.newProject();
    await seed(projectId, { epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b')] }] });
    const refused = await orch.importInto(
      projectId,
      {
        epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a2'), story('1.2', 'b2'), story('1.3', 'c')] }],
        story_dependencies: [
          { story: '1.2', depends_on: '1.3' },
          { story: '1.3', depends_on: '1.2' },
        ],
      },
      true,
    );
    expect([refused.status, refused.body.error.code]).toEqual([422, 'dependency_cycle']);
    expect((await storyRows(projectId)).map((r) => r.title)).toEqual(['a', 'b']);
    const { rows } = await stack.pool.query(
      `SELECT count(*)::int AS n FROM audit_events WHERE project_id = $1 AND action IN ('edit', 'project.merged')`,
      [projectId],
    );
    expect(rows[0].n).toBe(0);
  });

  it('runs two concurrent imports of one project one after the other: every story once, each merge whole', async () => {
    const projectId = await orch.newProject();
    const ids = await seed(projectId, { epics: [{ number: 1, title: 'E', stories: [story('1.1', 'base')] }] });
    const backlog = (tag: string, numbers: string[]) => ({
      epics: [
        {
          number: 1,
          title: 'E',
          stories: [story('1.1', `base ${tag}`), ...numbers.map((n) => story(n, `${tag} ${n}`))],
        },
      ],
      story_dependencies: numbers.map((n) => ({ story: n, depends_on: '1.1' })),
    });
    const [a, b] = await Promise.all([
      orch.importInto(projectId, backlog('A', ['1.2', '1.3', '1.4']), true),
      orch.importInto(projectId, backlog('B', ['1.4', '1.5', '1.6']), true),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    // 1.4 was created by one of them; the other found it with other content, pending, and updated it.
    expect(a.body.data.created_count + b.body.data.created_count).toBe(5);
    const rows = await storyRows(projectId);
    expect(rows.map((r) => r.number)).toEqual(['1.1', '1.2', '1.3', '1.4', '1.5', '1.6']);
    const last = a.body.data.stories_updated.includes('1.4') ? 'A' : 'B';
    expect(rows.find((r) => r.number === '1.1')!.title).toBe(`base ${last}`);
    expect(rows.find((r) => r.number === '1.4')!.title).toBe(`${last} 1.4`);
    expect(await edgesOf(projectId)).toEqual(['1.2->1.1', '1.3->1.1', '1.4->1.1', '1.5->1.1', '1.6->1.1']);
    // Each story's workflow runs, and the title a contract is judged against is the stored one.
    const stored = (await orch.call('GET', `/api/v1/stories/${ids.get('1.1').id}`)).body.data;
    expect((await contract(stored)).status).toBe(200);
    const blocked = await orch.call('GET', `/api/v1/stories/blocked?project_id=${projectId}`);
    expect(blocked.body.data.map((s: any) => s.number)).toEqual(['1.2', '1.3', '1.4', '1.5', '1.6']);
  });
});

describe('the per-story size limit', () => {
  // 100 criteria of 2,000 three-byte characters: 600 KB, well inside the 5 MiB import limit.
  const bulky = Array.from({ length: 100 }, (_, i) => `${i}` + '準'.repeat(1990));

  it('answers 413 story_too_large for a story over 256 KiB in an import or a create, writing nothing', async () => {
    const projectId = await orch.newProject();
    const r = await orch.importInto(projectId, {
      epics: [
        {
          number: 1,
          title: 'E',
          stories: [story('1.1', 'small'), story('1.2', 'big', { acceptance_criteria: bulky })],
        },
      ],
    });
    expect([r.status, r.body.error?.code]).toEqual([413, 'story_too_large']);
    expect(r.body.error.context).toMatchObject({ number: '1.2', limit: 262_144 });
    expect(r.body.error.context.bytes).toBeGreaterThan(262_144);
    expect(await storyRows(projectId)).toEqual([]);
    // Just under the limit is taken.
    const fits = await orch.importInto(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'fits', { acceptance_criteria: bulky.slice(0, 40) })] }],
    });
    expect(fits.status).toBe(201);
  });

  it('holds an edit to the limit for the story as the edit would leave it', async () => {
    const projectId = await orch.newProject();
    const ids = await seed(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a', { acceptance_criteria: bulky.slice(0, 40) })] }],
    });
    const id = ids.get('1.1').id;
    // The request is small (under the 256 KiB body limit); the story it would make is not.
    const metadata = { notes: '準'.repeat(9000), more: '準'.repeat(9000), extra: '準'.repeat(9000) };
    const edit = await orch.call('PATCH', `/api/v1/stories/${id}`, { metadata });
    expect([edit.status, edit.body.error?.code]).toEqual([413, 'story_too_large']);
    const now = await orch.call('GET', `/api/v1/stories/${id}`);
    expect(now.body.data.metadata).toEqual({});
    expect((await orch.call('PATCH', `/api/v1/stories/${id}`, { metadata: { notes: 'short' } })).status).toBe(200);
  });
});

describe('archived projects', () => {
  it('keep their stories out of the ready and blocked lists', async () => {
    const projectId = await orch.newProject();
    const live = await orch.newProject();
    await seed(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b', { depends_on: ['1.1'] })] }],
    });
    await seed(live, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b', { depends_on: ['1.1'] })] }],
    });
    const archived = await stack.api.call('DELETE', `/api/v1/projects/${projectId}`, { key: team.admin.key });
    expect(archived.status).toBe(200);
    for (const list of ['ready', 'blocked']) {
      const scoped = await stack.api.get(`/api/v1/stories/${list}?project_id=${projectId}`, team.agents[0].key);
      expect([scoped.status, scoped.body.data, scoped.body.meta.total_count]).toEqual([200, [], 0]);
      const all = await stack.api.get(`/api/v1/stories/${list}?limit=500`, team.agents[0].key);
      expect(new Set(all.body.data.map((s: any) => s.project_id))).not.toContain(projectId);
      expect(all.body.data.filter((s: any) => s.project_id === live)).toHaveLength(1);
    }
    // loopctl's keep-working hook reads the ready list: nothing to do in an archived project.
    const hook = await stack.api.get(`/api/v1/stories/ready?project_id=${projectId}&limit=1`, team.agents[0].key);
    expect(hook.body.data).toHaveLength(0);
  });
});

describe('re-imports that change dependencies', () => {
  it('answer 409 duplicate_story_numbers instead of silently keeping or adding edges', async () => {
    const projectId = await orch.newProject();
    const payload = (deps: { story: string; depends_on: string }[]) => ({
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b'), story('1.3', 'c')] }],
      story_dependencies: deps,
    });
    await seed(projectId, payload([{ story: '1.3', depends_on: '1.1' }]));
    // The same backlog again changes nothing.
    const same = await orch.importInto(projectId, payload([{ story: '1.3', depends_on: '1.1' }]));
    expect([same.status, same.body.data.stories_unchanged]).toEqual([201, ['1.1', '1.2', '1.3']]);
    for (const deps of [
      [{ story: '1.3', depends_on: '1.2' }],
      [
        { story: '1.3', depends_on: '1.1' },
        { story: '1.3', depends_on: '1.2' },
      ],
      [],
    ]) {
      const changed = await orch.importInto(projectId, payload(deps));
      expect([changed.status, changed.body.error?.code], JSON.stringify(deps)).toEqual([
        409,
        'duplicate_story_numbers',
      ]);
      expect(changed.body.error.context.conflicts).toEqual([{ number: '1.3', reason: 'dependencies_differ' }]);
    }
    expect(await edgesOf(projectId)).toEqual(['1.3->1.1']);
  });

  it('merge adds dependencies to pending stories only, and lists the others as skipped', async () => {
    const projectId = await orch.newProject();
    const ids = await seed(projectId, {
      epics: [
        {
          number: 1,
          title: 'E',
          stories: [story('1.1', 'a'), story('1.2', 'b'), story('1.3', 'c'), story('1.4', 'd')],
        },
      ],
    });
    expect((await contract(ids.get('1.3'))).status).toBe(200);
    const merged = await orch.importInto(
      projectId,
      {
        epics: [
          {
            number: 1,
            title: 'E',
            stories: [story('1.1', 'a'), story('1.2', 'b'), story('1.3', 'c'), story('1.4', 'd')],
          },
        ],
        story_dependencies: [
          { story: '1.3', depends_on: '1.1' },
          { story: '1.4', depends_on: '1.2' },
        ],
      },
      true,
    );
    expect(merged.status, JSON.stringify(merged.body)).toBe(200);
    expect(merged.body.data.skipped_details).toEqual([
      { number: '1.3', reason: 'story_in_progress', agent_status: 'contracted', verified_status: 'unverified' },
    ]);
    expect(merged.body.data.stories_updated).toEqual(['1.4']);
    expect(await edgesOf(projectId)).toEqual(['1.4->1.2']);
    // The contracted story stays claimable; the pending one learnt its new dependency.
    expect((await stack.api.act(ids.get('1.3').id, 'claim', team.agents[0].key)).status).toBe(200);
    const story4 = ids.get('1.4');
    expect((await contract(story4)).status).toBe(200);
    const claim = await stack.api.act(story4.id, 'claim', team.agents[1].key);
    expect([claim.status, claim.body.error?.code]).toEqual([409, 'dependencies_not_met']);
  });
});

describe('list pages', () => {
  it('walk every story exactly once while stories are added before the cursor', async () => {
    const projectId = await orch.newProject();
    const numbers = Array.from({ length: 24 }, (_, i) => `2.${i + 1}`);
    await seed(projectId, { epics: [{ number: 2, title: 'E', stories: numbers.map((n) => story(n, `s ${n}`)) }] });
    const seen: string[] = [];
    let cursor: string | null = null;
    let added = 0;
    do {
      const r: any = await orch.call(
        'GET',
        `/api/v1/stories?project_id=${projectId}&limit=5${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(r.status).toBe(200);
      seen.push(...r.body.data.map((s: any) => s.number));
      cursor = r.body.meta.next_cursor;
      // Meanwhile a story is added that sorts before this page (2.0.x sorts before 2.1).
      const created = await orch.call('POST', `/api/v1/projects/${projectId}/stories`, {
        epic_number: 2,
        ...story(`2.0.${++added}`, `early ${added}`),
      });
      expect(created.status).toBe(201);
    } while (cursor);
    expect(seen).toEqual(numbers);
  });

  it("take loopctl's page/page_size and offset, with totals", async () => {
    const projectId = await orch.newProject();
    const ids = await seed(projectId, {
      epics: [{ number: 1, title: 'E', stories: Array.from({ length: 12 }, (_, i) => story(`1.${i + 1}`, `s${i}`)) }],
    });
    const epicId = ids.get('1.1').epic_id;
    const paged = await orch.call('GET', `/api/v1/epics/${epicId}/stories?page=2&page_size=5`);
    expect(paged.status).toBe(200);
    expect(paged.body.data.map((s: any) => s.number)).toEqual(['1.6', '1.7', '1.8', '1.9', '1.10']);
    expect(paged.body.meta).toMatchObject({ page: 2, page_size: 5, total_pages: 3, total_count: 12, offset: 5 });
    const last = await orch.call('GET', `/api/v1/stories?project_id=${projectId}&page=3&page_size=5`);
    expect(last.body.data.map((s: any) => s.number)).toEqual(['1.11', '1.12']);
    expect(last.body.meta.next_cursor).toBeNull();
    const offset = await orch.call('GET', `/api/v1/stories?project_id=${projectId}&offset=10&limit=5`);
    expect(offset.body.data.map((s: any) => s.number)).toEqual(['1.11', '1.12']);
    expect(offset.body.meta).toMatchObject({ offset: 10, total_count: 12, next_cursor: null });
    const ready = await orch.call('GET', `/api/v1/stories/ready?project_id=${projectId}&page=1&page_size=4`);
    expect(ready.body.data.map((s: any) => s.number)).toEqual(['1.1', '1.2', '1.3', '1.4']);
    const rest = await orch.call(
      'GET',
      `/api/v1/stories/ready?project_id=${projectId}&cursor=${ready.body.meta.next_cursor}&limit=100`,
    );
    expect(rest.body.data).toHaveLength(8);
    for (const bad of ['page=0', 'page_size=501', 'page=1.5', 'page=x'])
      expect((await orch.call('GET', `/api/v1/stories?project_id=${projectId}&${bad}`)).status).toBe(400);
  });
});

describe('short lists', () => {
  it("page projects, a project's epics and agents by loopctl's page/page_size, offset or cursor; all of them by default", async () => {
    const projectId = await orch.newProject();
    await seed(projectId, {
      epics: [5, 1, 3, 2, 4].map((number) => ({ number, title: `E${number}`, stories: [] })),
    });
    const epics = (q: string) => orch.call('GET', `/api/v1/projects/${projectId}/epics${q}`);
    expect((await epics('')).body.data.map((e: any) => e.number)).toEqual([1, 2, 3, 4, 5]);
    const second = await epics('?page=2&page_size=2');
    expect(second.body.data.map((e: any) => e.number)).toEqual([3, 4]);
    expect(second.body.meta).toMatchObject({ page: 2, page_size: 2, total_pages: 3, total_count: 5 });
    const first = await epics('?limit=2');
    // An epic created before the cursor's place is not shown again, nor is one skipped.
    expect((await orch.call('POST', `/api/v1/projects/${projectId}/epics`, { number: 0, title: 'E0' })).status).toBe(
      201,
    );
    const next = await epics(`?limit=2&cursor=${first.body.meta.next_cursor}`);
    expect(next.body.data.map((e: any) => e.number)).toEqual([3, 4]);
    expect((await epics('?offset=4&limit=10')).body.data.map((e: any) => e.number)).toEqual([4, 5]);

    const allProjects = await orch.call('GET', '/api/v1/projects');
    const total = allProjects.body.data.length;
    expect(allProjects.body.meta.total_count).toBe(total);
    const walked: string[] = [];
    let cursor: string | null = null;
    do {
      const r: any = await orch.call('GET', `/api/v1/projects?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      walked.push(...r.body.data.map((p: any) => p.id));
      cursor = r.body.meta.next_cursor;
    } while (cursor);
    expect(walked).toEqual(allProjects.body.data.map((p: any) => p.id));
    const agents = await stack.api.get('/api/v1/agents?page=1&page_size=2', team.admin.key);
    expect(agents.body.data).toHaveLength(2);
    expect(agents.body.meta).toMatchObject({ page: 1, page_size: 2, total_count: 4, total_pages: 2 });
    for (const bad of ['page=0', 'cursor=forged', 'owner=me'])
      expect((await orch.call('GET', `/api/v1/projects?${bad}`)).status).toBe(400);
  });
});

describe('JSON numbers', () => {
  it('are integers where a number is meant (epic numbers, story numbers sent as numbers)', async () => {
    const projectId = await orch.newProject();
    const refused: unknown[] = [
      { epics: [{ number: 1.5, title: 'E', stories: [] }] },
      { epics: [{ number: '1e3', title: 'E', stories: [] }] },
      { epics: [{ number: 1e300, title: 'E', stories: [] }] },
      { epics: [{ number: 1, title: 'E', stories: [story('x', 'a'), { ...story('y', 'b'), number: 1.1 }] }] },
      // 1.10 as a JSON number is 1.1: another story. Refused rather than guessed.
      { epics: [{ number: 1, title: 'E', stories: [{ ...story('y', 'b'), number: 1.1 }] }] },
      { epics: [{ number: 1, title: 'E', stories: [{ ...story('y', 'b'), number: 1e21 }] }] },
      { epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a', { depends_on: [1.2] })] }] },
    ];
    for (const payload of refused) {
      const r = await orch.importInto(projectId, payload);
      expect([r.status, r.body.error?.code], JSON.stringify(payload)).toEqual([400, 'invalid_body']);
    }
    expect(await storyRows(projectId)).toEqual([]);
    const ok = await orch.importInto(projectId, {
      epics: [{ number: '72', title: 'E', stories: [{ ...story('x', 'a'), number: 7 }] }],
    });
    expect(ok.status).toBe(201);
    expect(ok.body.data.stories[0].number).toBe('7');
    const byNumber = await orch.call('POST', `/api/v1/projects/${projectId}/stories`, {
      epic_number: '72',
      ...story('72.1', 'b'),
    });
    expect(byNumber.status).toBe(201);
    for (const epic_number of [72.5, '7e1', '72.0', -72])
      expect(
        (await orch.call('POST', `/api/v1/projects/${projectId}/stories`, { epic_number, ...story('72.2', 'c') }))
          .status,
      ).toBe(400);
  });
});

describe('odd input', () => {
  it('answers every odd import, merge, edit and export with a 2xx or a coded 4xx, never a 5xx', async () => {
    const projectId = await orch.newProject();
    const ids = await seed(projectId, {
      epics: [
        {
          number: 1,
          title: 'Émoji 🚀 عربى',
          stories: [story('1.1', 'Ünïcödé 🧪 title', { description: 'שלום\u200d👩‍💻' })],
        },
      ],
    });
    const id = ids.get('1.1').id;
    const imports: [unknown, boolean][] = [
      [{ epics: [] }, false],
      [{ epics: [] }, true],
      [{ epics: [{ number: 1, title: 'Émoji 🚀 عربى', stories: [] }] }, false],
      [{ epics: [{ number: 1, title: 'E', stories: [] }], story_dependencies: [] }, true],
      [{ epics: [{ number: 1, title: 'E', stories: null }] }, false],
      [
        {
          epics: [
            {
              number: 1,
              title: 'E',
              stories: [{ ...story('1.9', 'n'), description: null, metadata: null, estimated_hours: null }],
            },
          ],
        },
        true,
      ],
      [{ epics: [{ number: 1, title: 'E', stories: [{ ...story('1.8', 'n'), acceptance_criteria: null }] }] }, false],
      [{ epics: [{ number: 1, title: 'E', stories: [story('1.7', 'n', { depends_on: null })] }] }, false],
      [{ epics: [{ number: 1, title: 'E', stories: [story('1.6', 'n', { estimated_hours: 1e308 })] }] }, false],
      [
        {
          epics: [
            {
              number: 1,
              title: 'E',
              stories: [story('1.5', 'n', { metadata: { deep: { deeper: [1, { x: null }] } } })],
            },
          ],
        },
        true,
      ],
      [{ epics: [{ number: 9_999_999, title: 'E', stories: [] }] }, false],
      [{ epics: [{ number: 1, title: '\u200b', stories: [] }] }, false],
      [
        {
          epics: [
            {
              number: 1,
              title: 'E',
              stories: [story('1.4', 'n', { acceptance_criteria: [{ id: 1e21, description: 'x' }] })],
            },
          ],
        },
        false,
      ],
      [null, false],
      [[], true],
      ['text', false],
    ];
    for (const [payload, merge] of imports) {
      const r = await orch.importInto(projectId, payload, merge);
      expect(r.status, JSON.stringify(payload)).toBeLessThan(500);
      if (r.status >= 400) expect(r.body.error?.code, JSON.stringify(payload)).toMatch(/^[a-z_]+$/);
    }
    for (const patch of [
      {},
      { title: null },
      { acceptance_criteria: [] },
      { estimated_hours: -1 },
      { metadata: null },
      { description: '🧪'.repeat(5000) },
    ]) {
      const r = await orch.call('PATCH', `/api/v1/stories/${id}`, patch);
      expect(r.status, JSON.stringify(patch)).toBeLessThan(500);
    }
    for (const [method, path] of [
      ['GET', `/api/v1/projects/${projectId}/export`],
      ['GET', `/api/v1/stories?project_id=${projectId}&offset=99999999&limit=500`],
      ['GET', `/api/v1/stories?project_id=${projectId}&offset=1e400`],
      ['GET', `/api/v1/story_dependencies?story_id=${id}&limit=0`],
      ['DELETE', `/api/v1/story_dependencies/${id}`],
      ['PATCH', `/api/v1/projects/${projectId}`],
    ]) {
      const r = await orch.call(method, path, method === 'PATCH' ? { name: 'Ñame 🚀' } : undefined);
      expect(r.status, `${method} ${path}`).toBeLessThan(500);
    }
    // What went in comes back out the same, and round-trips.
    const exported = await orch.call('GET', `/api/v1/projects/${projectId}/export`);
    const again = await orch.importInto(projectId, exported.body.data);
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect(again.body.data.created_count).toBe(0);
  });
});
