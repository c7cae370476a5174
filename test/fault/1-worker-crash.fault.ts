/**
 * Fault 1: the worker is SIGKILLed at random points of a busy run, three times, and started again.
 * 100 stories from one backlog import, ~10 agents at once. Every story must end verified, in the
 * projection and in its workflow, with exactly one accepted audit row per transition.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, importBacklog, type Team } from '../support/api.js';
import { SimulatedAgents, backlogOf, ledgerOf, plansFor, report, type StoryInfo } from './agents.js';
import { Harness, sleep } from './harness.js';

const STORIES = Number(process.env.FAULT_STORIES ?? 100);
const AGENTS_AT_ONCE = 10;
const CRASHES = 3;

let h: Harness;
let team: Team;
let stories: StoryInfo[];

beforeAll(async () => {
  h = await Harness.start({ name: 'worker-crash' });
  team = await createTeam(h.api, 4, 'worker-crash');
  stories = [...(await importBacklog(h.api, team, backlogOf(STORIES))).values()];
});
afterAll(async () => h?.stop());

const between = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

describe('worker crash', () => {
  it(`finishes ${STORIES} stories through ${CRASHES} SIGKILLs of the worker, nothing lost or doubled`, async () => {
    const started = Date.now();
    const agents = new SimulatedAgents(h.baseUrl, `wc-${Date.now()}`);
    const total = STORIES * 7;
    // One crash in each third of the run, at a random point of it.
    const points = Array.from({ length: CRASHES }, (_, i) => Math.floor(total * between(0.1 + i * 0.28, 0.3 + i * 0.28)));
    const run = agents.driveAll(plansFor(stories, team.agents, team.orchestrator), AGENTS_AT_ONCE);
    const crashes: { at_transition: number; restart_ms: number }[] = [];
    for (const point of points) {
      await agents.reached(point);
      if (agents.transitions >= total) break;
      await sleep(between(0, 400));
      const at = agents.transitions;
      await h.worker.kill();
      await sleep(between(200, 1500));
      crashes.push({ at_transition: at, restart_ms: await h.worker.start() });
    }
    await run;
    const ledger = await ledgerOf(h, stories, team.orchestrator.key);
    report('fault 1: worker crash', {
      stories: ledger.stories,
      transitions_expected: ledger.transitions_expected,
      crashes_survived: crashes.length,
      crashes: crashes,
      ...agents.figures(),
      accepted_audit_rows: ledger.accepted_rows,
      rejected_audit_rows: ledger.rejected_rows,
      verified_projection: ledger.verified_in_projection,
      verified_workflow: ledger.verified_in_workflow,
      rows_lost: ledger.rows_lost,
      rows_duplicated: ledger.rows_duplicated,
      audit_chain_ok: ledger.audit_chain_ok,
      unexpected_exits: h.unexpectedExits().length,
      seconds: Math.round((Date.now() - started) / 1000),
    });
    expect(agents.failures, agents.failures.slice(0, 10).join('\n')).toEqual([]);
    expect(crashes).toHaveLength(CRASHES);
    expect(ledger.problems.slice(0, 20)).toEqual([]);
    expect(ledger.rows_lost).toBe(0);
    expect(ledger.rows_duplicated).toBe(0);
    expect(ledger.accepted_rows).toBe(ledger.transitions_expected);
    expect(ledger.verified_in_projection).toBe(STORIES);
    expect(ledger.verified_in_workflow).toBe(STORIES);
    expect(h.unexpectedExits()).toEqual([]);
  });
});
