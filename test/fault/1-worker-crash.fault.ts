/**
 * Fault 1: the worker is SIGKILLed at random points of a busy run, three times, and started again.
 * 100 stories from one backlog import, ~10 agents at once. Every story must end verified, in the
 * projection and in its workflow, with exactly one accepted audit row per transition (seq 1..7).
 *
 * Each kill comes at a random point of its third of the run; the second is also aimed at a
 * persistence transaction in flight (rolled back, retried), the third at a commit the activity
 * has not reported yet (its retry must write nothing twice). Whether the aim was taken is printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, importBacklog, type Team } from '../support/api.js';
import { SimulatedAgents, backlogOf, plansFor, settleAndAssert, type StoryInfo } from './agents.js';
import { Harness, between, sleep, waitForDatabaseMoment, type DatabaseMoment } from './harness.js';

const STORIES = Number(process.env.FAULT_STORIES ?? 100);
const AGENTS_AT_ONCE = 10;
const AIMS: (DatabaseMoment | null)[] = [null, 'in-transaction', 'committing'];

let h: Harness;
let team: Team;
let stories: StoryInfo[];
const backlog = backlogOf(STORIES, { dependEvery: 5 });

beforeAll(async () => {
  h = await Harness.start({ name: 'worker-crash' });
  team = await createTeam(h.api, 4, 'worker-crash');
  stories = [...(await importBacklog(h.api, team, backlog)).values()];
});
afterAll(async () => h?.stop());

describe('fault 1: worker crash', () => {
  it(`finishes ${STORIES} stories through ${AIMS.length} SIGKILLs of the worker, nothing lost or doubled`, async () => {
    const started = Date.now();
    const agents = new SimulatedAgents(h.baseUrl, `wc-${Date.now()}`);
    const total = STORIES * 7;
    const crashes: {
      at_transition: number;
      aimed_at: string;
      aim_taken: boolean;
      down_ms: number;
      restart_ms: number;
    }[] = [];
    const run = agents.driveAll(plansFor(stories, team.agents, team.orchestrator, backlog), AGENTS_AT_ONCE);
    for (const [i, aim] of AIMS.entries()) {
      // A random point in this crash's third of the run.
      await agents.reached(Math.floor(total * between(0.1 + i * 0.28, 0.3 + i * 0.28)));
      if (agents.transitions >= total) break;
      const aimTaken = aim ? await waitForDatabaseMoment(h, aim, 5000) : (await sleep(between(0, 400)), true);
      const at = agents.transitions;
      await h.worker.kill();
      const down = Math.round(between(200, 1500));
      await sleep(down);
      crashes.push({
        at_transition: at,
        aimed_at: aim ?? 'random',
        aim_taken: aimTaken,
        down_ms: down,
        restart_ms: await h.worker.start(),
      });
    }
    await run;
    await settleAndAssert(
      expect,
      'fault 1: worker crash (SIGKILL + restart)',
      h,
      stories,
      team.orchestrator.key,
      agents,
      {
        crashes_survived: crashes.length,
        crashes,
        seconds: Math.round((Date.now() - started) / 1000),
      },
      backlog,
    );
    expect(crashes).toHaveLength(AIMS.length);
  });
});
