/**
 * A 1,000-story backlog in loopctl's format (10 epics, dependencies, criteria as strings and as
 * {id, description}, estimated_hours, metadata; past the ordinary 256 KiB body limit) imports,
 * exports and re-imports unchanged. Its own file: 1,000 workflows keep a worker busy for a while.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { createTeam, type Team } from '../support/api.js';

let stack: Stack;
let team: Team;

beforeAll(async () => {
  stack = await startStack();
  team = await createTeam(stack.api, 0, 'big-backlog');
});
afterAll(async () => stack?.stop());

const importInto = (projectId: string, payload: unknown) =>
  stack.api.post(`/api/v1/projects/${projectId}/import`, team.orchestrator.key, payload);

describe('a 1,000-story backlog', () => {
  it('imports, exports and re-imports unchanged', async () => {
    const projectId = team.projectId;
    const epics = Array.from({ length: 10 }, (_, e) => ({
      number: e + 1,
      title: `Epic ${e + 1}`,
      description: `Everything about area ${e + 1}`,
      metadata: { owner: `team-${e % 3}` },
      stories: Array.from({ length: 100 }, (_, s) => ({
        number: `${e + 1}.${s + 1}`,
        title: `Story ${e + 1}.${s + 1}: ${'build the thing '.repeat(4).trim()}`,
        description: `As a user I want ${e + 1}.${s + 1}. ${'Details. '.repeat(20)}`,
        acceptance_criteria: [
          { id: `AC-${e + 1}.${s + 1}.1`, description: 'it does what the title says' },
          { id: `AC-${e + 1}.${s + 1}.2`, description: 'it is tested' },
          'it is documented',
        ],
        estimated_hours: (s % 8) + 0.5,
        metadata: { priority: s % 3 === 0 ? 'high' : 'normal', tags: ['x', `e${e + 1}`] },
      })),
    }));
    const story_dependencies = epics.flatMap((e) =>
      e.stories.slice(1).map((s, i) => ({ story: s.number, depends_on: e.stories[i].number })),
    );
    const payload = { epics, story_dependencies };
    expect(JSON.stringify(payload).length).toBeGreaterThan(256 * 1024); // past the ordinary body limit

    const imported = await importInto(projectId, payload);
    expect(imported.status, JSON.stringify(imported.body).slice(0, 300)).toBe(201);
    expect(imported.body.data).toMatchObject({ stories_created: 1000, dependencies_created: 990 });

    const exported = await stack.api.get(`/api/v1/projects/${projectId}/export`, team.orchestrator.key);
    expect(exported.status).toBe(200);
    expect(exported.body.data.epics).toEqual(epics);
    expect(exported.body.data.story_dependencies).toEqual(story_dependencies);

    const reimported = await importInto(projectId, exported.body.data);
    expect(reimported.status).toBe(201);
    expect(reimported.body.data).toMatchObject({ stories_created: 0, dependencies_created: 0, skipped: [] });
    expect(reimported.body.data.stories_unchanged).toHaveLength(1000);
    const again = await stack.api.get(`/api/v1/projects/${projectId}/export`, team.orchestrator.key);
    expect({ ...again.body.data, export_metadata: null }).toEqual({ ...exported.body.data, export_metadata: null });
  }, 600_000);
});
