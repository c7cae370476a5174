/**
 * The production topology, proven without Docker (test/production/stack.ts): the real Temporal
 * server on PostgreSQL with SQL visibility, two workers and two gateways, each its own process.
 *
 * 200 stories go through both gateways (every attempt goes round them, as a load balancer would).
 * Midway one worker is SIGKILLed (put back later, as compose's restart policy would), then one
 * gateway, then the Temporal server itself is SIGKILLed and started again. Then: every story
 * verified in its workflow and in the projection, each transition once in the audit trail, the
 * hash chain intact, the search attributes filterable through SQL visibility, and a rate limit
 * that holds across both gateways. The figures (throughput, recovery after each kill) are printed
 * and written to test-results/production-figures.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { STORY_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes.js';
import { createTeam, importBacklog, type Team } from '../support/api.js';
import { REPO_ROOT } from '../support/compose.js';
import {
  SimulatedAgents,
  backlogOf,
  plansFor,
  projectionRows,
  report,
  settleAndAssert,
  type StepTiming,
  type StoryInfo,
} from '../fault/agents.js';
import { sleep } from '../fault/harness.js';
import { ProductionStack } from './stack.js';

const STORIES = Number(process.env.PRODUCTION_STORIES ?? 200);
const AGENTS_AT_ONCE = Number(process.env.PRODUCTION_CONCURRENCY ?? 20);
const TASK_QUEUE = 'custody-stories';

let stack: ProductionStack;
let team: Team;
let stories: StoryInfo[];
const backlog = backlogOf(STORIES, { dependEvery: 5 });
const figures: Record<string, unknown> = {};

beforeAll(async () => {
  const started = Date.now();
  stack = await ProductionStack.start({ workers: 2, gateways: 2 });
  await stack.startSampling();
  team = await createTeam(stack.api, 4, 'production');
  stories = [...(await importBacklog(stack.api, team, backlog)).values()];
  figures.stack_start = { ...stack.timings, total_ms: Date.now() - started };
});
afterAll(async () => {
  if (stack) {
    figures.peak_postgresql_connections = renamed(stack.peakConnections, stack.databases);
    report('peak PostgreSQL connections of the stack', figures.peak_postgresql_connections as Record<string, unknown>);
  }
  await stack?.stop();
  mkdirSync(`${REPO_ROOT}test-results`, { recursive: true });
  writeFileSync(`${REPO_ROOT}test-results/production-figures.json`, `${JSON.stringify(figures, null, 2)}\n`);
});

/** Transitions answered 200 per second in [from, to). */
function rate(steps: StepTiming[], from: number, to: number): number {
  const n = steps.filter((s) => s.status === 200 && s.answeredAt >= from && s.answeredAt < to).length;
  return Math.round((n / Math.max(1, (to - from) / 1000)) * 10) / 10;
}

/**
 * What a kill at `at` did to the work in flight: how many steps it caught (sent before it, answered
 * after), how long until the last of them was answered (the recovery time), and the throughput
 * in the 10 s before and after.
 */
function impact(steps: StepTiming[], event: { what: string; at: number; back_in_ms?: number }) {
  const caught = steps.filter((s) => s.startedAt < event.at && s.answeredAt >= event.at);
  const after = steps.filter((s) => s.answeredAt >= event.at).sort((a, b) => a.answeredAt - b.answeredAt);
  return {
    ...event,
    at: undefined,
    steps_in_flight: caught.length,
    recovery_ms: caught.length ? Math.max(...caught.map((s) => s.answeredAt - event.at)) : 0,
    first_answer_after_ms: after.length ? after[0].answeredAt - event.at : null,
    per_second_10s_before: rate(steps, event.at - 10_000, event.at),
    per_second_10s_after: rate(steps, event.at, event.at + 10_000),
  };
}

/** Resolves once Temporal sees `n` distinct pollers on the story task queue. */
async function pollers(n: number): Promise<string[]> {
  const deadline = Date.now() + 60_000;
  let identities: string[] = [];
  while (Date.now() < deadline) {
    const { pollers: found } = await stack.client.workflowService.describeTaskQueue({
      namespace: stack.namespace,
      taskQueue: { name: TASK_QUEUE },
      taskQueueType: 1, // workflow tasks
    });
    identities = [...new Set((found ?? []).map((p) => p.identity ?? ''))];
    if (identities.length >= n) return identities;
    await sleep(500);
  }
  return identities;
}

describe('production topology: real Temporal server on PostgreSQL, two workers, two gateways', () => {
  it(`drives ${STORIES} stories through both gateways while a worker, a gateway and the Temporal server are killed`, async () => {
    // Two workers share the cluster: Temporal sees both polling the story task queue.
    expect((await pollers(2)).length).toBeGreaterThanOrEqual(2);

    const started = Date.now();
    const agents = new SimulatedAgents(stack.gatewayUrls, `prod-${Date.now()}`);
    const total = STORIES * 7;
    const run = agents.driveAll(plansFor(stories, team.agents, team.orchestrator, backlog), AGENTS_AT_ONCE);
    const events: { what: string; at: number; back_in_ms?: number }[] = [];
    const [worker, gateway] = [stack.workers[0], stack.gateways[0]];

    await agents.reached(Math.floor(total * 0.2));
    events.push({ what: `SIGKILL ${worker.name}`, at: Date.now() });
    await worker.kill();
    await agents.reached(Math.floor(total * 0.35));
    const workerBackMs = await worker.start(180_000);

    await agents.reached(Math.floor(total * 0.45));
    events.push({ what: `SIGKILL ${gateway.name}`, at: Date.now() });
    await gateway.kill();
    await agents.reached(Math.floor(total * 0.6));
    const gatewayBackMs = await gateway.start(180_000);

    await agents.reached(Math.floor(total * 0.7));
    const temporalEvent: { what: string; at: number; back_in_ms?: number } = {
      what: 'SIGKILL + restart of the Temporal server',
      at: Date.now(),
    };
    events.push(temporalEvent);
    await stack.temporal.kill();
    temporalEvent.back_in_ms = await stack.temporal.start();

    await run;
    const seconds = (Date.now() - started) / 1000;
    const firstKill = events[0].at;
    const run_figures = {
      seconds: Math.round(seconds),
      transitions_per_second: Math.round((agents.transitions / seconds) * 10) / 10,
      stories_per_minute: Math.round((agents.storiesVerified / seconds) * 60),
      per_second_before_first_kill: rate(agents.steps, started, firstKill),
      step_latency_ms: latency(agents.steps),
      answered_200_by_gateway: Object.values(agents.okByGateway),
      events: events.map((e) => impact(agents.steps, e)),
      worker_restart_ms: workerBackMs,
      gateway_restart_ms: gatewayBackMs,
    };
    figures.run = { stories: STORIES, agents_at_once: AGENTS_AT_ONCE, ...run_figures };
    const ledger = await settleAndAssert(
      expect,
      `production topology: ${STORIES} stories, 2 workers, 2 gateways, real Temporal server on PostgreSQL`,
      stack,
      stories,
      team.orchestrator.key,
      agents,
      run_figures,
      backlog,
    );
    figures.ledger = { ...ledger, problems: ledger.problems.length };
    // Both gateways carried stories, and every kill happened while work was in flight.
    expect(Object.keys(agents.okByGateway).sort()).toEqual([...stack.gatewayUrls].sort());
    expect(stack.temporal.kills).toBe(1);
    expect(worker.kills + gateway.kills).toBe(2);
  });

  it('finds the stories by their search attributes through SQL visibility on PostgreSQL', async () => {
    // The namespace job registered every attribute the workflow sets, with its type.
    const { customAttributes } = await stack.client.connection.operatorService.listSearchAttributes({
      namespace: stack.namespace,
    });
    for (const key of STORY_SEARCH_ATTRIBUTES) expect(Object.keys(customAttributes ?? {})).toContain(key.name);

    const project = `ProjectId = '${team.projectId}'`;
    const projection = await projectionRows(
      stack,
      stories.map((s) => s.id),
    );
    const byAgent = new Map<string, number>();
    for (const row of projection.values()) {
      if (row.assigned_agent_id) byAgent.set(row.assigned_agent_id, (byAgent.get(row.assigned_agent_id) ?? 0) + 1);
    }
    const queries: [string, number][] = [
      [`${project} AND StoryStatus = 'reported_done' AND VerifiedStatus = 'verified'`, STORIES],
      [`TenantId = '${team.tenantId}'`, STORIES],
      [`${project} AND VerifiedStatus = 'unverified'`, 0],
      [`${project} AND StoryStatus = 'pending'`, 0],
      ...[...byAgent].map(([agent, n]): [string, number] => [`${project} AND AssignedAgent = '${agent}'`, n]),
    ];
    // Visibility is written after the fact: wait until it has caught up (or the deadline).
    const deadline = Date.now() + 120_000;
    let counts: number[] = [];
    for (;;) {
      counts = await Promise.all(queries.map(async ([query]) => (await stack.client.workflow.count(query)).count));
      if (counts.every((c, i) => c === queries[i][1]) || Date.now() > deadline) break;
      await sleep(1000);
    }
    const listed: string[] = [];
    for await (const wf of stack.client.workflow.list({ query: `${project} AND VerifiedStatus = 'verified'` })) {
      listed.push(wf.workflowId);
    }
    // The rows are in the visibility database of this run, on PostgreSQL.
    const visibilityRows = await stack.visibilityRows(stories.map((s) => s.workflow_id));
    figures.visibility = {
      queries: queries.map(([query, expected], i) => ({ query, expected, found: counts[i] })),
      listed: listed.length,
      rows_in_visibility_database: visibilityRows,
    };
    report('SQL visibility: story counts by search attribute', figures.visibility as Record<string, unknown>);
    expect(counts).toEqual(queries.map(([, n]) => n));
    expect(listed.sort()).toEqual(stories.map((s) => s.workflow_id).sort());
    expect(visibilityRows).toBe(STORIES);
  });

  it('holds the per-agent rate limit across both gateways (the counters are in PostgreSQL)', async () => {
    const limit = parseConfig({}).RATE_LIMIT_PER_MINUTE; // compose sets none: the default holds
    const extra = 30;
    const limits = await createTeam(stack.api, 1, 'limits');
    const key = limits.agents[0].key;
    const answers: { gateway: number; status: number }[] = [];
    let next = 0;
    const lane = async () => {
      while (next < limit + extra) {
        const i = next++;
        const gateway = i % stack.gatewayUrls.length;
        const res = await fetch(`${stack.gatewayUrls[gateway]}/api/v1/agents/me`, {
          headers: { authorization: `Bearer ${key}` },
        });
        await res.arrayBuffer();
        answers.push({ gateway, status: res.status });
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: 10 }, lane));
    const seconds = (Date.now() - started) / 1000;
    const tally = (gateway: number, status: number) =>
      answers.filter((a) => a.gateway === gateway && a.status === status).length;
    figures.rate_limit = {
      limit_per_minute: limit,
      requests: answers.length,
      seconds: Math.round(seconds * 10) / 10,
      by_gateway: stack.gatewayUrls.map((_, g) => ({ ok: tally(g, 200), limited: tally(g, 429) })),
    };
    report('rate limit across two gateways', figures.rate_limit as Record<string, unknown>);
    // One budget for the agent across both gateways: exactly `limit` answered, the rest refused,
    // by both gateways alike (with a counter per gateway, each would have let `limit` through).
    expect(answers.filter((a) => a.status === 200)).toHaveLength(limit);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(extra);
    for (let g = 0; g < stack.gatewayUrls.length; g++) expect(tally(g, 429)).toBeGreaterThan(0);
  });
});

/** Peak connections by role (temporal, visibility, custody) rather than by this run's database names. */
function renamed(peaks: Record<string, number>, databases: Record<string, string>): Record<string, number> {
  const role = Object.fromEntries(Object.entries(databases).map(([k, v]) => [v, k]));
  return Object.fromEntries(Object.entries(peaks).map(([name, n]) => [role[name] ?? name, n]));
}

function latency(steps: StepTiming[]) {
  const ms = steps.map((s) => s.answeredAt - s.startedAt).sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? 0;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: ms[ms.length - 1] ?? 0 };
}
