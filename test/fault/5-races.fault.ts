/**
 * Fault 5: races between agents, through the real processes (gateway, worker, Temporal server).
 * Each race ends with exactly the outcomes the custody rules allow, and the projection, the
 * workflow's state and the audit trail (accepted rows for the 200s, rejected rows for the 409s)
 * all tell the same story.
 *
 * - 50 concurrent claims of one contracted story: one 200, 49 × 409 invalid_transition.
 * - verify and reject on a reviewed story (reject is allowed from verified too): either verify
 *   first (both 200; final pending/rejected, iteration 2) or reject first (verify 409).
 * - review-complete from two reviewers on a reported story: one 200, one 409.
 * - unclaim and request-review by the assignee of an implementing story: one 200, one 409.
 * - report (by a reviewer) and force-unclaim (by an orchestrator) on a review_requested story:
 *   one 200, one 409.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTeam, importBacklog, type Team } from '../support/api.js';
import {
  SimulatedAgents,
  auditRows,
  backlogOf,
  disagreement,
  lifecycleSteps,
  projectionRows,
  report,
  workflowView,
  type Answer,
  type Party,
  type Plan,
  type StoryInfo,
} from './agents.js';
import { Harness, between, sleep } from './harness.js';

const CLAIMERS = 50;
const CLAIM_RACES = 3;
const RUNS_PER_PAIR_RACE = 12;

let h: Harness;
let team: Team;
let secondOrchestrator: Party;
let stories: StoryInfo[];
let agents: SimulatedAgents;

beforeAll(async () => {
  h = await Harness.start({ name: 'races' });
  team = await createTeam(h.api, CLAIMERS, 'races');
  const r = await h.api.post('/api/v1/agents/register', team.admin.key, {
    name: 'orchestrator-2',
    role: 'orchestrator',
  });
  expect(r.status).toBe(201);
  secondOrchestrator = { id: r.body.data.agent.id, key: r.body.data.api_key.key };
  stories = [...(await importBacklog(h.api, team, backlogOf(CLAIM_RACES + 4 * RUNS_PER_PAIR_RACE))).values()];
  agents = new SimulatedAgents(h.baseUrl, `race-${Date.now()}`);
});
afterAll(async () => h?.stop());

let nextStory = 0;
const takeStory = () => stories[nextStory++];

/** The first `steps` lifecycle steps, each once, with the usual parties; returns the plan used. */
async function prepare(story: StoryInfo, steps: number): Promise<Plan> {
  const [implementer, reviewer] = [team.agents[0], team.agents[1]];
  const plan: Plan = { story, implementer, reviewer, verifier: team.orchestrator };
  for (const step of lifecycleSteps(plan).slice(0, steps)) {
    const a = await agents.act(
      story.id,
      step.action,
      step.party,
      step.body,
      `${agents.tag}:prep:${story.number}:${step.action}`,
    );
    if (a.status !== 200)
      throw new Error(`preparing ${story.number}: ${step.action} → ${a.status} ${JSON.stringify(a.body)}`);
  }
  return plan;
}

interface Contender {
  name: string;
  action: string;
  party: Party;
  body: unknown;
}

/** Fires the contenders at once (one of them a few ms late, at random); answers in contender order. */
async function race(story: StoryInfo, contenders: Contender[]): Promise<Answer[]> {
  const late = Math.floor(Math.random() * contenders.length);
  const lateBy = between(0, 15);
  return Promise.all(
    contenders.map(async (c, i) => {
      if (i === late) await sleep(lateBy);
      return agents.act(story.id, c.action, c.party, c.body, `${agents.tag}:race:${story.number}:${c.name}:${i}`);
    }),
  );
}

/**
 * After a race: projection = workflow; accepted audit rows = the preparation steps then the
 * winners, in seq order; one rejected audit row per 409, with its code.
 */
async function consistency(
  story: StoryInfo,
  prepared: string[],
  winnersInOrder: string[],
  losers: { action: string; code: string }[],
): Promise<string[]> {
  const problems: string[] = [];
  const where = `story ${story.number}`;
  const [rows, view, audit] = await Promise.all([
    projectionRows(h, [story.id]),
    workflowView(h, story.workflow_id),
    auditRows(h, [story.id]),
  ]);
  for (const d of disagreement(rows.get(story.id), view)) problems.push(`${where}: ${d}`);
  const accepted = audit.filter((r) => r.outcome === 'accepted').sort((a, b) => Number(a.seq) - Number(b.seq));
  const expected = [...prepared, ...winnersInOrder];
  const got = accepted.map((r) => r.action);
  if (got.join(',') !== expected.join(','))
    problems.push(`${where}: accepted audit rows ${got.join(',')} expected ${expected.join(',')}`);
  const seqs = accepted.map((r) => Number(r.seq)).join(',');
  if (seqs !== expected.map((_, i) => i + 1).join(',')) problems.push(`${where}: accepted seqs ${seqs}`);
  const rejected = audit
    .filter((r) => r.outcome === 'rejected')
    .map((r) => `${r.action}:${r.code}`)
    .sort();
  const expectedRejected = losers.map((l) => `${l.action}:${l.code}`).sort();
  if (rejected.join(',') !== expectedRejected.join(',')) {
    problems.push(`${where}: rejected audit rows [${rejected.join(',')}] expected [${expectedRejected.join(',')}]`);
  }
  return problems;
}

const codeOf = (a: Answer) => a.body?.error?.code as string | undefined;
const is409 = (a: Answer, code = 'invalid_transition') => a.status === 409 && codeOf(a) === code;

describe('fault 5: races', () => {
  it('lets exactly one of 50 concurrent claims win, everywhere', async () => {
    const problems: string[] = [];
    const figures: Record<string, unknown>[] = [];
    for (let n = 0; n < CLAIM_RACES; n++) {
      const story = takeStory();
      await prepare(story, 1);
      const claimers = team.agents.slice(0, CLAIMERS);
      const answers = await race(
        story,
        claimers.map((a, i) => ({ name: `claim-${i}`, action: 'claim', party: a, body: {} })),
      );
      const ok = answers.filter((a) => a.status === 200).length;
      const conflicts = answers.filter((a) => is409(a)).length;
      figures.push({
        story: story.number,
        ok_200: ok,
        conflict_409: conflicts,
        other: answers.length - ok - conflicts,
        http_attempts: answers.reduce((s, a) => s + a.attempts, 0),
      });
      if (ok !== 1 || conflicts !== CLAIMERS - 1) {
        problems.push(
          `story ${story.number}: ${ok} × 200, ${conflicts} × 409 invalid_transition, others: ${answers
            .filter((a) => a.status !== 200 && !is409(a))
            .map((a) => `${a.status} ${codeOf(a)}`)
            .join(', ')}`,
        );
      }
      const winner = claimers[answers.findIndex((a) => a.status === 200)];
      const [rows, view] = await Promise.all([projectionRows(h, [story.id]), workflowView(h, story.workflow_id)]);
      const row = rows.get(story.id)!;
      if (!winner || row.assigned_agent_id !== winner.id || view.state.assignedAgentId !== winner.id) {
        problems.push(
          `story ${story.number}: winner ${winner?.id}, projection assignee ${row.assigned_agent_id}, workflow assignee ${view.state.assignedAgentId}`,
        );
      }
      const { rows: implementers } = await h.pool.query('SELECT implementer_agent_ids FROM stories WHERE id = $1', [
        story.id,
      ]);
      if (JSON.stringify(implementers[0]?.implementer_agent_ids) !== JSON.stringify(winner ? [winner.id] : [])) {
        problems.push(
          `story ${story.number}: implementer_agent_ids ${JSON.stringify(implementers[0]?.implementer_agent_ids)}`,
        );
      }
      problems.push(
        ...(await consistency(
          story,
          ['contract'],
          ['claim'],
          answers.filter((a) => a.status === 409).map((a) => ({ action: 'claim', code: codeOf(a)! })),
        )),
      );
    }
    report('fault 5a: 50 concurrent claims of one contracted story', {
      races: CLAIM_RACES,
      per_race: figures,
      problems: problems.length,
    });
    expect(problems).toEqual([]);
  });

  it('verify racing reject on a reviewed story: verify-then-reject or reject-then-409', async () => {
    const problems: string[] = [];
    const tally = { verify_first_both_200: 0, reject_first_verify_409: 0, other: 0 };
    await Promise.all(
      Array.from({ length: RUNS_PER_PAIR_RACE }, async () => {
        const story = takeStory();
        await prepare(story, 6);
        const [verify, reject] = await race(story, [
          { name: 'verify', action: 'verify', party: team.orchestrator, body: { summary: 'looks done' } },
          { name: 'reject', action: 'reject', party: secondOrchestrator, body: { reason: 'regression found' } },
        ]);
        const prepared = ['contract', 'claim', 'start', 'request-review', 'report', 'review-complete'];
        const view = await workflowView(h, story.workflow_id);
        const s = view.state;
        const finalOk =
          s.agentStatus === 'pending' &&
          s.verifiedStatus === 'rejected' &&
          s.iteration === 2 &&
          s.assignedAgentId === null &&
          s.verifiedByAgentId === null;
        if (verify.status === 200 && reject.status === 200) {
          tally.verify_first_both_200++;
          if (!finalOk || view.seq !== 8)
            problems.push(`story ${story.number}: both 200 but final ${JSON.stringify(s)} seq ${view.seq}`);
          problems.push(...(await consistency(story, prepared, ['verify', 'reject'], [])));
        } else if (reject.status === 200 && is409(verify)) {
          tally.reject_first_verify_409++;
          if (!finalOk || view.seq !== 7)
            problems.push(`story ${story.number}: reject won but final ${JSON.stringify(s)} seq ${view.seq}`);
          problems.push(
            ...(await consistency(story, prepared, ['reject'], [{ action: 'verify', code: 'invalid_transition' }])),
          );
        } else {
          tally.other++;
          problems.push(
            `story ${story.number}: verify ${verify.status} ${codeOf(verify)}, reject ${reject.status} ${codeOf(reject)}`,
          );
        }
      }),
    );
    report('fault 5b: verify vs reject on a reviewed story', {
      races: RUNS_PER_PAIR_RACE,
      ...tally,
      problems: problems.length,
    });
    expect(problems).toEqual([]);
  });

  it('two reviewers completing the review at once: one 200, one 409', async () => {
    const problems: string[] = [];
    const tally = { first_reviewer_won: 0, second_reviewer_won: 0, other: 0 };
    await Promise.all(
      Array.from({ length: RUNS_PER_PAIR_RACE }, async () => {
        const story = takeStory();
        await prepare(story, 5);
        const reviewers = [team.agents[2], team.agents[3]];
        const review = (i: number) => ({
          review_type: 'standard',
          findings_count: 1,
          fixes_count: 1,
          disproved_count: 0,
          summary: `review ${i}`,
        });
        const answers = await race(
          story,
          reviewers.map((r, i) => ({ name: `review-${i}`, action: 'review-complete', party: r, body: review(i) })),
        );
        const winners = answers.map((a, i) => (a.status === 200 ? i : -1)).filter((i) => i >= 0);
        const losers = answers.filter((a) => is409(a));
        if (winners.length !== 1 || losers.length !== 1) {
          tally.other++;
          problems.push(`story ${story.number}: ${answers.map((a) => `${a.status} ${codeOf(a) ?? ''}`).join(' / ')}`);
          return;
        }
        const winner = reviewers[winners[0]];
        if (winners[0] === 0) tally.first_reviewer_won++;
        else tally.second_reviewer_won++;
        const view = await workflowView(h, story.workflow_id);
        if (
          view.state.reviewerAgentId !== winner.id ||
          view.state.review?.reviewer_agent_id !== winner.id ||
          view.state.agentStatus !== 'reported_done'
        ) {
          problems.push(
            `story ${story.number}: workflow reviewer ${view.state.reviewerAgentId}, expected ${winner.id}`,
          );
        }
        problems.push(
          ...(await consistency(
            story,
            ['contract', 'claim', 'start', 'request-review', 'report'],
            ['review-complete'],
            [{ action: 'review-complete', code: 'invalid_transition' }],
          )),
        );
      }),
    );
    report('fault 5c: review-complete from two reviewers', {
      races: RUNS_PER_PAIR_RACE,
      ...tally,
      problems: problems.length,
    });
    expect(problems).toEqual([]);
  });

  it('unclaim racing request-review on an implementing story: exactly one wins', async () => {
    const problems: string[] = [];
    const tally = { unclaim_won: 0, request_review_won: 0, other: 0 };
    await Promise.all(
      Array.from({ length: RUNS_PER_PAIR_RACE }, async () => {
        const story = takeStory();
        const plan = await prepare(story, 3);
        const [unclaim, requestReview] = await race(story, [
          { name: 'unclaim', action: 'unclaim', party: plan.implementer, body: {} },
          { name: 'request-review', action: 'request-review', party: plan.implementer, body: {} },
        ]);
        const view = await workflowView(h, story.workflow_id);
        const prepared = ['contract', 'claim', 'start'];
        if (unclaim.status === 200 && is409(requestReview)) {
          tally.unclaim_won++;
          if (view.state.agentStatus !== 'contracted' || view.state.assignedAgentId !== null)
            problems.push(
              `story ${story.number}: unclaim won but workflow ${view.state.agentStatus}/${view.state.assignedAgentId}`,
            );
          problems.push(
            ...(await consistency(
              story,
              prepared,
              ['unclaim'],
              [{ action: 'request-review', code: 'invalid_transition' }],
            )),
          );
        } else if (requestReview.status === 200 && is409(unclaim)) {
          tally.request_review_won++;
          if (view.state.agentStatus !== 'review_requested' || view.state.assignedAgentId !== plan.implementer.id) {
            problems.push(
              `story ${story.number}: request-review won but workflow ${view.state.agentStatus}/${view.state.assignedAgentId}`,
            );
          }
          problems.push(
            ...(await consistency(
              story,
              prepared,
              ['request-review'],
              [{ action: 'unclaim', code: 'invalid_transition' }],
            )),
          );
        } else {
          tally.other++;
          problems.push(
            `story ${story.number}: unclaim ${unclaim.status} ${codeOf(unclaim)}, request-review ${requestReview.status} ${codeOf(requestReview)}`,
          );
        }
      }),
    );
    report('fault 5d: unclaim vs request-review on an implementing story', {
      races: RUNS_PER_PAIR_RACE,
      ...tally,
      problems: problems.length,
    });
    expect(problems).toEqual([]);
  });

  it('report racing force-unclaim on a review_requested story: exactly one wins', async () => {
    const problems: string[] = [];
    const tally = { report_won: 0, force_unclaim_won: 0, other: 0 };
    await Promise.all(
      Array.from({ length: RUNS_PER_PAIR_RACE }, async () => {
        const story = takeStory();
        const plan = await prepare(story, 4);
        const [reportAnswer, forceUnclaim] = await race(story, [
          {
            name: 'report',
            action: 'report',
            party: plan.reviewer,
            body: { artifact: 'https://example.test/pr/race' },
          },
          { name: 'force-unclaim', action: 'force-unclaim', party: team.orchestrator, body: { reason: 'stuck' } },
        ]);
        const view = await workflowView(h, story.workflow_id);
        const prepared = ['contract', 'claim', 'start', 'request-review'];
        if (reportAnswer.status === 200 && is409(forceUnclaim)) {
          tally.report_won++;
          if (view.state.agentStatus !== 'reported_done' || view.state.reportedByAgentId !== plan.reviewer.id) {
            problems.push(
              `story ${story.number}: report won but workflow ${view.state.agentStatus}/${view.state.reportedByAgentId}`,
            );
          }
          problems.push(
            ...(await consistency(
              story,
              prepared,
              ['report'],
              [{ action: 'force-unclaim', code: 'invalid_transition' }],
            )),
          );
        } else if (forceUnclaim.status === 200 && is409(reportAnswer)) {
          tally.force_unclaim_won++;
          if (view.state.agentStatus !== 'contracted' || view.state.assignedAgentId !== null) {
            problems.push(
              `story ${story.number}: force-unclaim won but workflow ${view.state.agentStatus}/${view.state.assignedAgentId}`,
            );
          }
          problems.push(
            ...(await consistency(
              story,
              prepared,
              ['force-unclaim'],
              [{ action: 'report', code: 'invalid_transition' }],
            )),
          );
        } else {
          tally.other++;
          problems.push(
            `story ${story.number}: report ${reportAnswer.status} ${codeOf(reportAnswer)}, force-unclaim ${forceUnclaim.status} ${codeOf(forceUnclaim)}`,
          );
        }
      }),
    );
    report('fault 5e: report vs force-unclaim on a review_requested story', {
      races: RUNS_PER_PAIR_RACE,
      ...tally,
      problems: problems.length,
    });
    expect(problems).toEqual([]);
  });

  it('left no process dead and no request unanswered', () => {
    report('fault 5: client totals', { ...agents.figures(), unexpected_exits: h.unexpectedExitSummaries() });
    expect(agents.statuses['net'] ?? 0).toBe(0);
    expect(h.unexpectedExitSummaries()).toEqual([]);
  });
});
