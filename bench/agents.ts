/** Simulated agents: imports backlogs and drives stories through the lifecycle through the gateway(s). */
import type { Api, Team } from '../test/support/api.js';

export const ACTIONS = ['contract', 'claim', 'start', 'request-review', 'report', 'review-complete', 'verify'] as const;
export type Latencies = Record<(typeof ACTIONS)[number], number[]>;
export interface BenchStory {
  id: string;
  title: string;
  workflow_id: string;
}

const emptyLatencies = (): Latencies => Object.fromEntries(ACTIONS.map((a) => [a, []])) as unknown as Latencies;

export function backlogOf(epic: number, count: number, from = 0) {
  return {
    epics: [
      {
        number: epic,
        title: `Epic ${epic}`,
        stories: Array.from({ length: count }, (_, i) => ({
          number: `${epic}.${from + i + 1}`,
          title: `Story ${epic}.${from + i + 1}`,
          acceptance_criteria: ['works'],
        })),
      },
    ],
  };
}

/** Imports `count` stories into a new epic, 250 per request. */
export async function importStories(api: Api, team: Team, count: number, epic: number): Promise<BenchStory[]> {
  const stories: BenchStory[] = [];
  for (let start = 0; start < count; start += 250) {
    const r = await api.post(
      `/api/v1/projects/${team.projectId}/import`,
      team.orchestrator.key,
      backlogOf(epic, Math.min(250, count - start), start),
    );
    if (r.status !== 201) throw new Error(`import: ${r.status} ${JSON.stringify(r.body)}`);
    stories.push(...(r.body.data.stories as BenchStory[]));
  }
  return stories;
}

/**
 * `agents` concurrent agents drive `stories` through the lifecycle, each taking the next story
 * when done; agent `a` talks to gateway `a % gateways.length`.
 */
export async function drive(
  gateways: Api[],
  team: Team,
  stories: BenchStory[],
  agents: number,
): Promise<{ latencies: Latencies; errors: number; seconds: number; firstError?: string }> {
  const latencies = emptyLatencies();
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const half = team.agents.length / 2;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: agents }, async (_, a) => {
      const api = gateways[a % gateways.length];
      const implementer = team.agents[a % half];
      const reviewer = team.agents[half + (a % half)];
      for (;;) {
        const story = stories[next++];
        if (!story) return;
        const steps: [(typeof ACTIONS)[number], string, unknown][] = [
          ['contract', implementer.key, { story_title: story.title, ac_count: 1 }],
          ['claim', implementer.key, {}],
          ['start', implementer.key, {}],
          ['request-review', implementer.key, {}],
          ['report', reviewer.key, {}],
          [
            'review-complete',
            reviewer.key,
            { review_type: 'standard', findings_count: 0, fixes_count: 0, disproved_count: 0, summary: 'ok' },
          ],
          ['verify', team.orchestrator.key, { summary: 'done' }],
        ];
        for (const [action, key, body] of steps) {
          const t = performance.now();
          const r = await api.act(story.id, action, key, body);
          latencies[action].push(performance.now() - t);
          if (r.status !== 200) {
            errors++;
            firstError ??= `${action}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`;
          }
        }
      }
    }),
  );
  return { latencies, errors, seconds: (performance.now() - t0) / 1000, firstError };
}
