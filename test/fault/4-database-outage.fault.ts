/**
 * Fault 4: 20 seconds without PostgreSQL in the middle of a run. The machine's PostgreSQL cluster
 * is shared, so it is not stopped: the worker and the gateway reach it through a TCP proxy that
 * the test cuts (listener closed, every open connection destroyed) and restores. /health must say
 * 503 during the outage and 200 after; what the workflows accepted meanwhile must reach the
 * database once the proxy is back (the persistence activities retry), and nothing may be lost or
 * written twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, importBacklog, type Team } from '../support/api.js';
import {
  SimulatedAgents,
  backlogOf,
  plansFor,
  projectionRows,
  settleAndAssert,
  workflowView,
  type StoryInfo,
} from './agents.js';
import { Harness, between, sleep, waitForDatabaseMoment } from './harness.js';

const STORIES = Number(process.env.FAULT_STORIES ?? 40);
const AGENTS_AT_ONCE = 10;
const OUTAGE_MS = 20_000;

let h: Harness;
let team: Team;
let stories: StoryInfo[];
const backlog = backlogOf(STORIES, { dependEvery: 5 });

beforeAll(async () => {
  // A process that dies is started again (as a supervisor would) so the run can finish and be
  // counted; the death itself is still a failure (unexpected_exits).
  h = await Harness.start({
    name: 'db-outage',
    proxyDatabase: true,
    autoRestartWorker: true,
    autoRestartGateway: true,
  });
  team = await createTeam(h.api, 4, 'db-outage');
  stories = [...(await importBacklog(h.api, team, backlog)).values()];
});
afterAll(async () => h?.stop());

async function health(): Promise<number> {
  try {
    const res = await fetch(`${h.baseUrl}/health`, { signal: AbortSignal.timeout(8000) });
    await res.text();
    return res.status;
  } catch {
    return -1;
  }
}

/**
 * Stories whose workflow has accepted more than the projection shows (seq ahead of version), by
 * asking each workflow. A story whose query fails (no worker to answer it) is left out.
 */
async function behind(): Promise<{ waiting: Map<string, number>; unanswered: number }> {
  const rows = await projectionRows(
    h,
    stories.map((s) => s.id),
  );
  const waiting = new Map<string, number>();
  let unanswered = 0;
  await Promise.all(
    stories.map(async (s) => {
      try {
        const view = await Promise.race([
          workflowView(h, s.workflow_id),
          sleep(3000).then(() => Promise.reject(new Error('no answer in 3 s'))),
        ]);
        const version = Number(rows.get(s.id)?.version ?? 0);
        if (view.seq > version) waiting.set(s.id, view.seq);
      } catch {
        unanswered++;
      }
    }),
  );
  return { waiting, unanswered };
}

describe('fault 4: database outage', () => {
  it(`finishes ${STORIES} stories through ${OUTAGE_MS / 1000} s without the database`, async () => {
    const started = Date.now();
    const agents = new SimulatedAgents(h.baseUrl, `db-${Date.now()}`);
    const total = STORIES * 7;
    expect(await health()).toBe(200);
    const run = agents.driveAll(plansFor(stories, team.agents, team.orchestrator, backlog), AGENTS_AT_ONCE);
    await agents.reached(Math.floor(total * between(0.2, 0.4)));
    // Under load an outage usually strikes a transaction in flight: aim the cut at one.
    const midTransaction = await waitForDatabaseMoment(h, 'in-transaction', 5000);
    const at = agents.transitions;
    const proxy = h.proxy!;
    const outageStart = Date.now();
    await proxy.cut();
    const severed = proxy.severed;

    // During the outage: /health every second (after the first), and a look at what the
    // workflows accepted that the database does not have yet.
    const healthDuring: number[] = [];
    let pending = new Map<string, number>();
    let snapshotTaken = false;
    let unanswered = 0;
    const before = agents.transitions;
    while (Date.now() - outageStart < OUTAGE_MS - 1500) {
      await sleep(1000);
      healthDuring.push(await health());
      if (!snapshotTaken && Date.now() - outageStart > OUTAGE_MS / 2) {
        snapshotTaken = true;
        ({ waiting: pending, unanswered } = await behind());
      }
    }
    const transitionsDuringOutage = agents.transitions - before;
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageStart)));
    await proxy.restore();
    const outageMs = Date.now() - outageStart;

    // After: /health back to 200, and every transition that waited for the database written.
    const restored = Date.now();
    let healthAfter = await health();
    while (healthAfter !== 200 && Date.now() - restored < 30_000) {
      await sleep(250);
      healthAfter = await health();
    }
    const healthyAfterMs = Date.now() - restored;
    let caughtUpMs = -1;
    while (Date.now() - restored < 60_000) {
      const rows = await projectionRows(h, [...pending.keys()]);
      if ([...pending].every(([id, seq]) => Number(rows.get(id)?.version ?? 0) >= seq)) {
        caughtUpMs = Date.now() - restored;
        break;
      }
      await sleep(250);
    }
    await run;
    await settleAndAssert(
      expect,
      'fault 4: database outage (TCP proxy cut for 20 s)',
      h,
      stories,
      team.orchestrator.key,
      agents,
      {
        outage: {
          at_transition: at,
          ms: outageMs,
          connections_severed: severed,
          cut_during_open_transaction: midTransaction,
        },
        health_during_outage: healthDuring.join(','),
        health_after: `${healthAfter} after ${healthyAfterMs} ms`,
        transitions_answered_during_outage: transitionsDuringOutage,
        stories_with_accepted_transitions_waiting_for_db: pending.size,
        workflows_unanswered_at_snapshot: unanswered,
        persistence_caught_up_after_ms: caughtUpMs,
        seconds: Math.round((Date.now() - started) / 1000),
      },
      backlog,
    );
    expect(healthDuring.length).toBeGreaterThanOrEqual(10);
    expect(
      healthDuring.every((s) => s === 503),
      `health during the outage: ${healthDuring.join(',')}`,
    ).toBe(true);
    expect(healthAfter).toBe(200);
    expect(caughtUpMs).toBeGreaterThanOrEqual(0);
  });
});
