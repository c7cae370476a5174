/**
 * Backlogs in loopctl's format: import all or nothing, 409 duplicate_story_numbers and merge,
 * export round trips (a 1,000-story backlog too), the 422 codes, edits and withdrawals of pending
 * stories through their workflows, archived projects, and an audit row for every change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { backlogStory as story, createTeam, OrchestratorSession, type Team } from '../support/api.js';

let stack: Stack;
let team: Team;
let orch: OrchestratorSession;

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 2, 'backlogs');
  orch = new OrchestratorSession(stack.api, team.orchestrator.key, 'p');
});
afterAll(async () => stack?.stop());

async function rowCounts(projectId: string) {
  const { rows } = await stack.pool.query(
    `SELECT (SELECT count(*)::int FROM stories WHERE project_id = $1) AS stories,
       (SELECT count(*)::int FROM epics WHERE project_id = $1) AS epics,
       (SELECT count(*)::int FROM story_dependencies d JOIN stories s ON s.id = d.story_id WHERE s.project_id = $1) AS deps`,
    [projectId],
  );
  return rows[0];
}

describe('import in loopctl format', () => {
  it('answers 422 with a stable code for duplicates, unknown dependencies and cycles, and writes nothing', async () => {
    const projectId = await orch.newProject();
    const cases: [unknown, string][] = [
      [
        { epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.1', 'b')] }] },
        'duplicate_story_number',
      ],
      [
        { epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a', { depends_on: ['9.9'] })] }] },
        'unknown_dependency',
      ],
      [
        {
          epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a')] }],
          story_dependencies: [{ story: '1.1', depends_on: '4.4' }],
        },
        'unknown_dependency',
      ],
      [
        {
          epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b')] }],
          story_dependencies: [
            { story: '1.1', depends_on: '1.2' },
            { story: '1.2', depends_on: '1.1' },
          ],
        },
        'dependency_cycle',
      ],
    ];
    for (const [payload, code] of cases) {
      const r = await orch.importInto(projectId, payload);
      expect([r.status, r.body.error.code], JSON.stringify(payload)).toEqual([422, code]);
    }
    const bad = await orch.importInto(projectId, { epics: [{ number: 'seven', title: 'E', stories: [] }] });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid_body']);
    expect(await rowCounts(projectId)).toEqual({ stories: 0, epics: 0, deps: 0 });
  });

  it('refuses an existing number with other content (409 duplicate_story_numbers) unless merging; merge never restarts a workflow', async () => {
    const projectId = await orch.newProject();
    const first = {
      epics: [
        {
          number: '3',
          title: 'E',
          stories: [story('3.1', 'one'), story('3.2', 'two'), story('3.3', 'three'), story('3.4', 'four')],
        },
      ],
    };
    const created = await orch.importInto(projectId, first);
    expect(created.status).toBe(201);
    const ids = new Map<string, any>(created.body.data.stories.map((s: any) => [s.number, s]));
    // Same content again: nothing changes.
    const again = await orch.importInto(projectId, first);
    expect(again.body.data).toMatchObject({ stories_created: 0, stories_unchanged: ['3.1', '3.2', '3.3', '3.4'] });

    // 3.2 gets under way, so a merge must leave it alone.
    const implementer = team.agents[0];
    expect(
      (await stack.api.act(ids.get('3.2').id, 'contract', implementer.key, { story_title: 'two', ac_count: 1 })).status,
    ).toBe(200);

    const changed = {
      epics: [
        {
          number: 3,
          title: 'E',
          stories: [
            story('3.1', 'one, reworded', { estimated_hours: 2 }),
            story('3.2', 'two, reworded'),
            story('3.3', 'three'),
            story('3.5', 'five', { depends_on: ['3.1'] }),
          ],
        },
      ],
    };
    const before = await rowCounts(projectId);
    const conflict = await orch.importInto(projectId, changed);
    expect([conflict.status, conflict.body.error.code]).toEqual([409, 'duplicate_story_numbers']);
    expect(conflict.body.error.context.numbers).toEqual(['3.1', '3.2']);
    expect(await rowCounts(projectId)).toEqual(before); // 3.5 was not half-imported

    const merged = await orch.importInto(projectId, changed, true);
    expect(merged.status).toBe(200);
    expect(merged.body.data).toMatchObject({
      stories_created: 1,
      stories_updated: ['3.1'],
      stories_unchanged: ['3.3'],
      skipped: ['3.2'],
      stories_orphaned: ['3.4'],
      dependencies_created: 1,
    });
    const one = await stack.api.get(`/api/v1/stories/${ids.get('3.1').id}`, team.orchestrator.key);
    expect(one.body.data).toMatchObject({
      title: 'one, reworded',
      estimated_hours: 2,
      workflow_id: ids.get('3.1').workflow_id,
    });
    // The running workflow took the new title: a contract must match it.
    expect(
      (await stack.api.act(ids.get('3.1').id, 'contract', implementer.key, { story_title: 'one', ac_count: 1 })).body
        .error.code,
    ).toBe('contract_mismatch');
    expect(
      (
        await stack.api.act(ids.get('3.1').id, 'contract', implementer.key, {
          story_title: 'one, reworded',
          ac_count: 1,
        })
      ).status,
    ).toBe(200);
    const two = await stack.api.get(`/api/v1/stories/${ids.get('3.2').id}`, team.orchestrator.key);
    expect(two.body.data).toMatchObject({ title: 'two', agent_status: 'contracted' });
    const { rows } = await stack.pool.query(
      `SELECT count(*)::int AS n FROM audit_events WHERE project_id = $1 AND action IN ('project.imported', 'project.merged')`,
      [projectId],
    );
    expect(rows[0].n).toBe(3);
  });

  it('refuses an existing epic number with another title (409, its number in context) unless merging, writing nothing', async () => {
    const projectId = await orch.newProject();
    const first = { epics: [{ number: 7, title: 'Payments', description: 'pay', stories: [story('7.1', 'one')] }] };
    expect((await orch.importInto(projectId, first)).status).toBe(201);
    const renamed = {
      epics: [
        { number: 7, title: 'Billing', description: 'pay', stories: [story('7.1', 'one'), story('7.2', 'two')] },
        { number: 8, title: 'New epic', stories: [story('8.1', 'eight')] },
      ],
    };
    const before = await rowCounts(projectId);
    const conflict = await orch.importInto(projectId, renamed);
    expect([conflict.status, conflict.body.error.code]).toEqual([409, 'duplicate_story_numbers']);
    expect(conflict.body.error.context).toMatchObject({
      numbers: [],
      epic_numbers: [7],
      epic_conflicts: [{ number: 7, fields: ['title'] }],
    });
    expect(await rowCounts(projectId)).toEqual(before); // neither 7.2 nor epic 8 half-imported
    const epics = await orch.call('GET', `/api/v1/projects/${projectId}/epics`);
    expect(epics.body.data.map((e: any) => [e.number, e.title])).toEqual([[7, 'Payments']]);

    const merged = await orch.importInto(projectId, renamed, true);
    expect(merged.status).toBe(200);
    expect(merged.body.data).toMatchObject({ epics_created: 1, stories_created: 2, stories_unchanged: ['7.1'] });
    const after = await orch.call('GET', `/api/v1/projects/${projectId}/epics`);
    expect(after.body.data.map((e: any) => [e.number, e.title])).toEqual([
      [7, 'Billing'],
      [8, 'New epic'],
    ]);
    // The same backlog again, epics as stored: nothing changes, no conflict.
    const again = await orch.importInto(projectId, renamed);
    expect([again.status, again.body.data.stories_created]).toEqual([201, 0]);
  });

  it('skips a withdrawn story under ?merge=true, saying so in skipped_details, and refuses a dependency on it', async () => {
    const projectId = await orch.newProject();
    const backlog = { epics: [{ number: 4, title: 'E', stories: [story('4.1', 'one'), story('4.2', 'two')] }] };
    const created = await orch.importInto(projectId, backlog);
    const withdrawn = created.body.data.stories.find((s: any) => s.number === '4.2');
    expect((await orch.call('DELETE', `/api/v1/stories/${withdrawn.id}`)).status).toBe(200);

    const plain = await orch.importInto(projectId, backlog);
    expect([plain.status, plain.body.error.code]).toEqual([409, 'duplicate_story_numbers']);
    expect(plain.body.error.context.conflicts).toEqual([{ number: '4.2', reason: 'deleted' }]);

    const next = {
      epics: [
        {
          number: 4,
          title: 'E',
          stories: [story('4.1', 'one, reworded'), story('4.2', 'two, reworded'), story('4.3', 'three')],
        },
      ],
    };
    const merged = await orch.importInto(projectId, next, true);
    expect(merged.status, JSON.stringify(merged.body)).toBe(200);
    expect(merged.body.data).toMatchObject({
      stories_created: 1,
      stories_updated: ['4.1'],
      skipped: ['4.2'],
      skipped_details: [{ number: '4.2', reason: 'story_withdrawn' }],
    });
    expect((await stack.api.get(`/api/v1/stories/${withdrawn.id}`, team.orchestrator.key)).status).toBe(404);
    expect(merged.body.data.stories.map((s: any) => s.number)).toEqual(['4.1', '4.3']);

    // A new story depending on the withdrawn one would wait forever: refused, nothing written.
    const before = await rowCounts(projectId);
    const dependent = await orch.importInto(
      projectId,
      {
        epics: [
          {
            number: 4,
            title: 'E',
            stories: [story('4.2', 'two, reworded'), story('4.4', 'four', { depends_on: ['4.2'] })],
          },
        ],
      },
      true,
    );
    expect([dependent.status, dependent.body.error.code]).toEqual([422, 'unknown_dependency']);
    expect(dependent.body.error.context).toMatchObject({ number: '4.4', depends_on: '4.2', withdrawn: true });
    expect(await rowCounts(projectId)).toEqual(before);
  });

  it('edits no workflow when a merge fails part-way: a conflicting row fails its insert, the stories keep their content', async () => {
    const projectId = await orch.newProject();
    const created = await orch.importInto(projectId, {
      epics: [{ number: 5, title: 'E', stories: [story('5.1', 'one'), story('5.2', 'two')] }],
    });
    const one = created.body.data.stories.find((s: any) => s.number === '5.1');
    const { rows: slugs } = await stack.pool.query(
      'SELECT t.slug AS tenant, p.slug AS project FROM projects p JOIN tenants t ON t.id = p.tenant_id WHERE p.id = $1',
      [projectId],
    );
    // A row of another project holding the workflow id that story 5.3 would get, written by a
    // transaction left open: the merge waits on it, then fails on 5.3's insert once it commits.
    // (Another tenant's project: a row of this tenant would hold its usage counter's lock.)
    const stranger = await createTeam(stack.api, 0, 'blocker');
    const other = stranger.projectId;
    const otherEpic = (
      await stack.api.post(`/api/v1/projects/${other}/import`, stranger.orchestrator.key, {
        epics: [{ number: 1, title: 'E', stories: [story('1.1', 'z')] }],
      })
    ).body.data.stories[0].epic_id;
    const blocker = await stack.pool.connect();
    try {
      const blockerPid = (await blocker.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await blocker.query('BEGIN');
      await blocker.query(
        `INSERT INTO stories (tenant_id, project_id, epic_id, number, title, acceptance_criteria, workflow_id)
         VALUES ($1, $2, $3, '9.9', 'blocker', '[]', $4)`,
        [stranger.tenantId, other, otherEpic, `story/${slugs[0].tenant}/${slugs[0].project}/5.3`],
      );
      const merge = orch.importInto(
        projectId,
        {
          epics: [
            {
              number: 5,
              title: 'E',
              stories: [story('5.1', 'one, reworded'), story('5.2', 'two'), story('5.3', 'three')],
            },
          ],
        },
        true,
      );
      const deadline = Date.now() + 30_000;
      for (;;) {
        const { rows } = await stack.pool.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))`,
          [blockerPid],
        );
        if (rows[0].n > 0) break;
        if (Date.now() > deadline) throw new Error('the merge never reached its insert');
        await new Promise((r) => setTimeout(r, 50));
      }
      // Mid-merge, an agent contracts 5.1 with the title it reads.
      const seen = (await stack.api.get(`/api/v1/stories/${one.id}`, team.agents[0].key)).body.data;
      const contract = await stack.api.act(one.id, 'contract', team.agents[0].key, {
        story_title: seen.title,
        ac_count: seen.acceptance_criteria.length,
      });
      expect(contract.status).toBe(200);
      await blocker.query('COMMIT');
      const failed = await merge;
      expect(failed.status).toBe(500);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.query(`DELETE FROM stories WHERE number = '9.9' AND project_id = $1`, [other]);
      blocker.release();
    }
    // The failed merge changed nothing: 5.1 holds its old content in the projection and in its
    // workflow (the contract was taken against 'one'), no edit was recorded, 5.3 was not created.
    const after = (await stack.api.get(`/api/v1/stories/${one.id}`, team.orchestrator.key)).body.data;
    expect([after.title, after.agent_status, after.acceptance_criteria]).toEqual(['one', 'contracted', ['one works']]);
    const audit = await stack.pool.query('SELECT action FROM audit_events WHERE story_id = $1 ORDER BY id', [one.id]);
    expect(audit.rows.map((r) => r.action)).not.toContain('edit');
    expect(await rowCounts(projectId)).toMatchObject({ stories: 2 });
    const merges = await stack.pool.query(
      `SELECT count(*)::int AS n FROM audit_events WHERE project_id = $1 AND action = 'project.merged'`,
      [projectId],
    );
    expect(merges.rows[0].n).toBe(0);
  });
});

describe('body limits', () => {
  it('takes imports up to 5 MiB and nothing else past 256 KiB', async () => {
    const projectId = await orch.newProject();
    const padding = 'x'.repeat(1_000);
    const huge = {
      epics: [
        {
          number: 1,
          title: 'E',
          stories: Array.from({ length: 5_600 }, (_, i) => story(`1.${i}`, `s${i}`, { description: padding })),
        },
      ],
    };
    const tooBig = await orch.importInto(projectId, huge);
    expect([tooBig.status, tooBig.body.error.code]).toEqual([413, 'body_too_large']);
    const bigProject = await stack.api.post('/api/v1/projects', team.orchestrator.key, {
      name: 'P',
      slug: 'too-big',
      description: 'x'.repeat(300 * 1024),
    });
    expect([bigProject.status, bigProject.body.error.code]).toEqual([413, 'body_too_large']);
    expect(await rowCounts(projectId)).toEqual({ stories: 0, epics: 0, deps: 0 });
  });
});

describe('edits, withdrawals, dependencies and archives', () => {
  it('edits a pending story through its workflow, refuses once contracted, withdraws keeping history', async () => {
    const projectId = await orch.newProject();
    const r = await orch.importInto(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b', { depends_on: ['1.1'] })] }],
    });
    const [a, b] = r.body.data.stories;
    const edited = await orch.call('PATCH', `/api/v1/stories/${a.id}`, {
      title: 'a2',
      acceptance_criteria: ['x', 'y'],
      description: 'now with more',
    });
    expect(edited.status).toBe(200);
    expect(edited.body.data).toMatchObject({
      title: 'a2',
      acceptance_criteria: ['x', 'y'],
      description: 'now with more',
    });
    const implementer = team.agents[0];
    expect((await stack.api.act(a.id, 'contract', implementer.key, { story_title: 'a2', ac_count: 2 })).status).toBe(
      200,
    );
    const late = await orch.call('PATCH', `/api/v1/stories/${a.id}`, { title: 'a3' });
    expect([late.status, late.body.error.code]).toEqual([409, 'story_in_progress']);

    // 1.2 depends on 1.1: 1.1 cannot be withdrawn; the dependency can go while 1.2 is pending.
    expect((await orch.call('DELETE', `/api/v1/stories/${a.id}`)).status).toBe(409);
    const deps = await stack.pool.query('SELECT id FROM story_dependencies WHERE story_id = $1', [b.id]);
    const removed = await orch.call('DELETE', `/api/v1/story_dependencies/${deps.rows[0].id}`);
    expect(removed.status).toBe(200);
    expect((await stack.api.act(b.id, 'contract', implementer.key, { story_title: 'b', ac_count: 1 })).status).toBe(
      200,
    );
    expect((await stack.api.act(b.id, 'claim', implementer.key)).status).toBe(200); // no longer blocked

    const c = (
      await stack.api.post(`/api/v1/projects/${projectId}/stories`, team.orchestrator.key, {
        epic_number: '1',
        number: '1.3',
        title: 'c',
      })
    ).body.data;
    expect((await orch.call('DELETE', `/api/v1/stories/${c.id}`)).status).toBe(200);
    expect((await stack.api.get(`/api/v1/stories/${c.id}`, team.orchestrator.key)).status).toBe(404);
    const history = await stack.pool.query('SELECT action FROM audit_events WHERE story_id = $1 ORDER BY id', [c.id]);
    expect(history.rows.map((x) => x.action)).toEqual(['story.created', 'delete']);

    const other = await orch.newProject();
    const foreign = (await orch.importInto(other, { epics: [{ number: 1, title: 'E', stories: [story('1.1', 'z')] }] }))
      .body.data.stories[0];
    const cross = await stack.api.post('/api/v1/story_dependencies', team.orchestrator.key, {
      story_id: b.id,
      depends_on_story_id: foreign.id,
    });
    expect([cross.status, cross.body.error.code]).toEqual([422, 'cross_project_dependency']);
  });

  it('archives a project read-only, and writes an audit row for every change with who made it', async () => {
    const projectId = await orch.newProject();
    await orch.importInto(projectId, { epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a')] }] });
    const patched = await orch.call('PATCH', `/api/v1/projects/${projectId}`, { mission: 'ship', tech_stack: 'ts' });
    expect(patched.body.data).toMatchObject({ mission: 'ship', tech_stack: 'ts', status: 'active' });
    const byOrchestrator = await orch.call('DELETE', `/api/v1/projects/${projectId}`);
    expect(byOrchestrator.status).toBe(403); // archive is the admin's
    const archived = await stack.api.call('DELETE', `/api/v1/projects/${projectId}`, { key: team.admin.key });
    expect(archived.body.data.status).toBe('archived');
    const refused = await orch.importInto(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.2', 'b')] }],
    });
    expect([refused.status, refused.body.error.code]).toEqual([409, 'project_archived']);
    const list = await stack.api.get(`/api/v1/stories?project_id=${projectId}`, team.orchestrator.key);
    expect(list.body.data).toHaveLength(1); // kept, readable
    const act = await stack.api.act(list.body.data[0].id, 'contract', team.agents[0].key, {
      story_title: 'a',
      ac_count: 1,
    });
    expect([act.status, act.body.error.code]).toEqual([409, 'project_archived']);

    const { rows } = await stack.pool.query(
      'SELECT action, actor_agent_id FROM audit_events WHERE project_id = $1 AND story_id IS NULL ORDER BY id',
      [projectId],
    );
    expect(rows).toEqual([
      { action: 'project.created', actor_agent_id: team.orchestrator.id },
      { action: 'project.imported', actor_agent_id: team.orchestrator.id },
      { action: 'project.edited', actor_agent_id: team.orchestrator.id },
      { action: 'project.archived', actor_agent_id: team.admin.id },
    ]);
    const imported = await stack.pool.query(
      `SELECT payload FROM audit_events WHERE project_id = $1 AND action = 'project.imported'`,
      [projectId],
    );
    expect(imported.rows[0].payload).toMatchObject({ created_numbers: ['1.1'], stories_created: 1 });
    const keys = await stack.pool.query(
      `SELECT action, actor_agent_id FROM audit_events WHERE tenant_id = $1 AND action IN ('tenant.created', 'agent.registered') ORDER BY id`,
      [team.tenantId],
    );
    expect(keys.rows.map((r) => r.action)).toEqual([
      'tenant.created',
      'agent.registered',
      'agent.registered',
      'agent.registered',
    ]);
    expect(keys.rows.every((r) => r.actor_agent_id === team.admin.id)).toBe(true);
    const chain = await stack.api.get('/api/v1/audit/verify', team.admin.key);
    expect(chain.body.data.ok).toBe(true);
  });
});

describe('loose identifiers (F9)', () => {
  it('refuses story numbers that are not integers joined by dots, and a dotted number of another epic, everywhere', async () => {
    const projectId = await orch.newProject();
    for (const number of ['x', '1.5e0', '01.5', '1.05', '1.', '.1', '1..2', ' 1.1', '1.1 ']) {
      const imported = await orch.importInto(projectId, {
        epics: [{ number: 1, title: 'E', stories: [story(number, 'a')] }],
      });
      expect([imported.status, imported.body.error?.code], number).toEqual([400, 'invalid_body']);
      const created = await orch.call('POST', `/api/v1/projects/${projectId}/stories`, {
        epic_number: 1,
        ...story(number, 'a'),
      });
      expect([created.status, created.body.error?.code], number).toEqual([400, 'invalid_body']);
    }
    const misplaced = await orch.importInto(projectId, {
      epics: [{ number: 2, title: 'E', stories: [story('1.1', 'a')] }],
    });
    console.log(`story 1.1 in epic 2: ${misplaced.status} ${JSON.stringify(misplaced.body.error)}`);
    expect([misplaced.status, misplaced.body.error?.code]).toEqual([422, 'story_number_mismatch']);
    expect(misplaced.body.error.context).toEqual({ number: '1.1', epic_number: 2 });
    expect(await rowCounts(projectId)).toEqual({ stories: 0, epics: 0, deps: 0 });

    const ok = await orch.importInto(projectId, {
      epics: [
        { number: 2, title: 'E', stories: [story('2.1', 'a'), story('2.10', 'b'), { ...story('x', 'c'), number: 7 }] },
      ],
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    const epicId = ok.body.data.stories[0].epic_id as string;
    const byEpic = await orch.call('POST', `/api/v1/epics/${epicId}/stories`, story('3.1', 'd'));
    expect([byEpic.status, byEpic.body.error?.code]).toEqual([422, 'story_number_mismatch']);
    const byNumber = await orch.call('POST', `/api/v1/projects/${projectId}/stories`, {
      epic_number: 2,
      ...story('1.2', 'd'),
    });
    expect([byNumber.status, byNumber.body.error?.code]).toEqual([422, 'story_number_mismatch']);
    expect((await orch.call('POST', `/api/v1/epics/${epicId}/stories`, story('2.2', 'd'))).status).toBe(201);
  });

  it('refuses acceptance criteria naming one id twice in a story: 422 duplicate_criterion_id on import, create and PATCH', async () => {
    const projectId = await orch.newProject();
    const twice = [
      { id: 'AC-1', description: 'a' },
      { id: 'AC-1', description: 'b' },
    ];
    const imported = await orch.importInto(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a', { acceptance_criteria: twice })] }],
    });
    console.log(`duplicate criterion ids: ${imported.status} ${JSON.stringify(imported.body.error)}`);
    expect([imported.status, imported.body.error?.code]).toEqual([422, 'duplicate_criterion_id']);
    expect(imported.body.error.context).toEqual({ number: '1.1', ids: ['AC-1'] });
    expect(await rowCounts(projectId)).toEqual({ stories: 0, epics: 0, deps: 0 });

    const ok = await orch.importInto(projectId, {
      epics: [
        { number: 1, title: 'E', stories: [story('1.1', 'a', { acceptance_criteria: [twice[0], 'plain', 'plain'] })] },
      ],
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    const id = ok.body.data.stories[0].id as string;
    // A numeric id and its text are one id.
    const mixed = [
      { id: 1, description: 'a' },
      { id: '1', description: 'b' },
    ];
    const created = await orch.call('POST', `/api/v1/projects/${projectId}/stories`, {
      epic_number: 1,
      ...story('1.2', 'b', { acceptance_criteria: mixed }),
    });
    expect([created.status, created.body.error?.code]).toEqual([422, 'duplicate_criterion_id']);
    expect((await rowCounts(projectId)).stories).toBe(1);
    const patched = await orch.call('PATCH', `/api/v1/stories/${id}`, { acceptance_criteria: twice });
    expect([patched.status, patched.body.error?.code]).toEqual([422, 'duplicate_criterion_id']);
    const shown = await orch.call('GET', `/api/v1/stories/${id}`);
    expect(shown.body.data.acceptance_criteria).toEqual([twice[0], 'plain', 'plain']);
  });

  it('refuses POST /story_dependencies on a story under way (409 story_in_progress), as a merge leaves it alone', async () => {
    const projectId = await orch.newProject();
    const ok = await orch.importInto(projectId, {
      epics: [{ number: 1, title: 'E', stories: [story('1.1', 'a'), story('1.2', 'b'), story('1.3', 'c')] }],
    });
    const ids = new Map<string, string>(ok.body.data.stories.map((s: any) => [s.number, s.id]));
    const implementer = team.agents[0];
    for (const [action, body] of [
      ['contract', { story_title: 'a', ac_count: 1 }],
      ['claim', {}],
      ['start', {}],
    ] as const) {
      expect((await stack.api.act(ids.get('1.1')!, action, implementer.key, body)).status).toBe(200);
    }
    const added = await orch.call('POST', '/api/v1/story_dependencies', {
      story_id: ids.get('1.1'),
      depends_on_story_id: ids.get('1.2'),
    });
    console.log(`dependency on an implementing story: ${added.status} ${JSON.stringify(added.body.error)}`);
    expect([added.status, added.body.error?.code]).toEqual([409, 'story_in_progress']);
    expect(added.body.error.context).toMatchObject({ current_agent_status: 'implementing' });
    // The merge of the same dependency skips that story the same way.
    const merged = await orch.importInto(
      projectId,
      {
        epics: [
          {
            number: 1,
            title: 'E',
            stories: [story('1.1', 'a', { depends_on: ['1.2'] }), story('1.2', 'b'), story('1.3', 'c')],
          },
        ],
      },
      true,
    );
    expect(merged.body.data.skipped).toEqual(['1.1']);
    expect((await rowCounts(projectId)).deps).toBe(0);
    // A pending story takes one.
    const pending = await orch.call('POST', '/api/v1/story_dependencies', {
      story_id: ids.get('1.3'),
      depends_on_story_id: ids.get('1.2'),
    });
    expect(pending.status).toBe(201);
  });
});
