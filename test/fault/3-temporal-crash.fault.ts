/**
 * Fault 3: the Temporal server itself is SIGKILLed mid-run (twice) and started again on the same
 * port and the same SQLite file, after a few seconds down. The worker and the gateway stay up and
 * must reconnect by themselves; every story must finish, once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, importBacklog, type Team } from '../support/api.js';
import { SimulatedAgents, backlogOf, plansFor, settleAndAssert, type StoryInfo } from './agents.js';
import { Harness, between, sleep } from './harness.js';

const STORIES = Number(process.env.FAULT_STORIES ?? 30);
const AGENTS_AT_ONCE = 10;
const CRASHES = 2;

let h: Harness;
let team: Team;
let stories: StoryInfo[];
const backlog = backlogOf(STORIES, { dependEvery: 5 });

beforeAll(async () => {
  h = await Harness.start({ name: 'temporal-crash' });
  team = await createTeam(h.api, 4, 'temporal-crash');
  stories = [...(await importBacklog(h.api, team, backlog)).values()];
});
afterAll(async () => h?.stop());

describe('fault 3: Temporal server crash', () => {
  it(`finishes ${STORIES} stories through ${CRASHES} SIGKILLs of the Temporal dev server`, async () => {
    const started = Date.now();
    const agents = new SimulatedAgents(h.baseUrl, `tc-${Date.now()}`);
    const total = STORIES * 7;
    const run = agents.driveAll(plansFor(stories, team.agents, team.orchestrator, backlog), AGENTS_AT_ONCE);
    const crashes: { at_transition: number; down_ms: number; restart_ms: number }[] = [];
    for (let i = 0; i < CRASHES; i++) {
      await agents.reached(Math.floor(total * between(0.15 + i * 0.4, 0.35 + i * 0.4)));
      if (agents.transitions >= total) break;
      const at = agents.transitions;
      await h.temporal.kill();
      const down = Math.round(between(2000, 6000));
      await sleep(down);
      crashes.push({ at_transition: at, down_ms: down, restart_ms: await h.temporal.start() });
    }
    await run;
    await settleAndAssert(
      expect,
      'fault 3: Temporal dev server crash (SIGKILL + restart, same port and SQLite file)',
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
    expect(crashes).toHaveLength(CRASHES);
  });
});
