/**
 * Simulated agents: HTTP clients that drive stories through the whole lifecycle the way a careful
 * orchestrator would under failures. Every POST carries an Idempotency-Key unique to its logical
 * step; a network error, a 5xx (500, 503, 504) or a 429 is retried with the SAME key and body,
 * with backoff, until an answer or a deadline. Every HTTP attempt is counted.
 *
 * Then the ledger: what the database and the workflows say happened, compared with what should.
 */
import type { Harness } from './harness.js';
import { sleep } from './harness.js';
import { storyQuery, type StoryView } from '../../workflows/messages.js';

export interface Party {
  id: string;
  key: string;
}

export interface StoryInfo {
  id: string;
  number: string;
  title: string;
  acceptance_criteria: unknown[];
  workflow_id: string;
}

export interface Plan {
  story: StoryInfo;
  implementer: Party;
  /** Reports and reviews: never the implementer. */
  reviewer: Party;
  /** Verifies: an orchestrator that neither implemented nor reviewed. */
  verifier: Party;
  /** Numbers of the stories this one depends on: it is claimed once they are verified. */
  dependsOn?: string[];
}

export const LIFECYCLE = [
  'contract',
  'claim',
  'start',
  'request-review',
  'report',
  'review-complete',
  'verify',
] as const;
export type LifecycleAction = (typeof LIFECYCLE)[number];

export function lifecycleSteps(plan: Plan): { action: LifecycleAction; party: Party; body: unknown }[] {
  const { story, implementer, reviewer, verifier } = plan;
  return [
    {
      action: 'contract',
      party: implementer,
      body: { story_title: story.title, ac_count: story.acceptance_criteria.length },
    },
    { action: 'claim', party: implementer, body: {} },
    { action: 'start', party: implementer, body: {} },
    { action: 'request-review', party: implementer, body: {} },
    { action: 'report', party: reviewer, body: { artifact: `https://example.test/pr/${story.number}` } },
    {
      action: 'review-complete',
      party: reviewer,
      body: {
        review_type: 'standard',
        findings_count: 2,
        fixes_count: 1,
        disproved_count: 1,
        summary: `review of ${story.number}`,
      },
    },
    { action: 'verify', party: verifier, body: { summary: `verified ${story.number}` } },
  ];
}

/** What the ledger reads from a running stack (the fault harness, or the production stack). */
export type Stack = Pick<Harness, 'pool' | 'client' | 'api'>;
/** ...and what the common end of a run reports about its processes. */
export type SupervisedStack = Stack & Pick<Harness, 'unexpectedExits' | 'unexpectedExitSummaries' | 'logsTail'>;

/** One lifecycle step as an agent saw it: when it was first sent and when it was answered. */
export interface StepTiming {
  story: string;
  action: LifecycleAction;
  startedAt: number;
  answeredAt: number;
  status: number;
  attempts: number;
}

export interface Answer {
  status: number;
  body: any;
  /** HTTP attempts this logical call took (1 = no retry). */
  attempts: number;
}

/** "Try again": a 5xx, a 429, or a 409 saying the same Idempotency-Key is still in progress. */
const isRetryable = (status: number, body: any) =>
  status >= 500 ||
  status === 429 ||
  (status === 409 && body?.error?.code === 'conflict' && body?.error?.context?.retryable === true);

export class SimulatedAgents {
  /** Every HTTP request sent, retries included. */
  attempts = 0;
  /** Attempts after the first, per logical call. */
  retries = 0;
  /** Attempts that got no HTTP answer at all (refused, reset, timed out). */
  networkErrors = 0;
  /** Answers by status ("200", "504", ...; "net" for no answer). */
  readonly statuses: Record<string, number> = {};
  /** Answers 200 per gateway (its base URL): how the load was spread. */
  readonly okByGateway: Record<string, number> = {};
  /** Every lifecycle step, first send to final answer. */
  readonly steps: StepTiming[] = [];
  /** Answers the gateway replayed from its Idempotency-Key store. */
  replayed = 0;
  /** Lifecycle steps answered 200. */
  transitions = 0;
  storiesVerified = 0;
  /** Steps that ended in anything but 200 (after retries): each one is a story left behind. */
  readonly failures: string[] = [];
  private readonly waiters: { n: number; resolve: () => void }[] = [];
  private finished = false;
  /** Per story number: settles true once its verify was answered 200, false if it failed. */
  private readonly verified = new Map<string, { promise: Promise<boolean>; resolve: (ok: boolean) => void }>();

  private verifiedSignal(number: string) {
    let signal = this.verified.get(number);
    if (!signal) {
      let resolve!: (ok: boolean) => void;
      const promise = new Promise<boolean>((r) => (resolve = r));
      signal = { promise, resolve };
      this.verified.set(number, signal);
    }
    return signal;
  }

  private readonly baseUrls: string[];
  private turn = 0;

  constructor(
    /** One gateway, or several that every attempt goes round (a load balancer's round robin). */
    baseUrl: string | string[],
    /** Makes Idempotency-Keys unique to this run. */
    readonly tag: string,
    readonly options: { stepDeadlineMs: number; requestTimeoutMs: number } = {
      stepDeadlineMs: 240_000,
      requestTimeoutMs: 30_000,
    },
  ) {
    this.baseUrls = Array.isArray(baseUrl) ? baseUrl : [baseUrl];
  }

  get baseUrl(): string {
    return this.baseUrls[0];
  }

  private count(label: string): void {
    this.statuses[label] = (this.statuses[label] ?? 0) + 1;
  }

  /** One logical call: retried with the same key and body until an answer that is not "try again". */
  async send(
    method: 'GET' | 'POST',
    path: string,
    key: string,
    body?: unknown,
    idempotencyKey?: string,
    deadlineMs = this.options.stepDeadlineMs,
  ): Promise<Answer> {
    const deadline = Date.now() + deadlineMs;
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let lastProblem: string;
    for (let attempt = 0; ; attempt++) {
      this.attempts++;
      if (attempt > 0) this.retries++;
      const baseUrl = this.baseUrls[this.turn++ % this.baseUrls.length];
      try {
        const res = await fetch(`${baseUrl}${path}`, {
          method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(this.options.requestTimeoutMs),
        });
        const text = await res.text();
        this.count(String(res.status));
        if (res.status === 200) this.okByGateway[baseUrl] = (this.okByGateway[baseUrl] ?? 0) + 1;
        if (res.headers.get('idempotent-replayed') === 'true') this.replayed++;
        let parsed: any = text;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch {
          // keep the text
        }
        if (!isRetryable(res.status, parsed)) return { status: res.status, body: parsed, attempts: attempt + 1 };
        lastProblem = `${res.status} ${text.slice(0, 200)}`;
      } catch (err) {
        this.networkErrors++;
        this.count('net');
        lastProblem = String((err as Error)?.cause ?? err);
      }
      if (Date.now() > deadline) {
        return {
          status: -1,
          body: {
            error: { code: 'client_deadline', message: `gave up after ${attempt + 1} attempts: ${lastProblem}` },
          },
          attempts: attempt + 1,
        };
      }
      await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random()));
    }
  }

  /** A lifecycle action on a story, with its own Idempotency-Key. */
  async act(storyId: string, action: string, party: Party, body: unknown, idempotencyKey: string): Promise<Answer> {
    const answer = await this.send('POST', `/api/v1/stories/${storyId}/${action}`, party.key, body, idempotencyKey);
    if (answer.status === 200) {
      this.transitions++;
      this.wake();
    }
    return answer;
  }

  /** `act`, timed into `steps`. */
  private async timedStep(plan: Plan, step: ReturnType<typeof lifecycleSteps>[number]): Promise<Answer> {
    const startedAt = Date.now();
    const answer = await this.act(
      plan.story.id,
      step.action,
      step.party,
      step.body,
      `${this.tag}:${plan.story.number}:${step.action}`,
    );
    this.steps.push({
      story: plan.story.number,
      action: step.action,
      startedAt,
      answeredAt: Date.now(),
      status: answer.status,
      attempts: answer.attempts,
    });
    return answer;
  }

  /**
   * Drives one story from pending to verified; false (and a failure recorded) if a step did not
   * pass. A story with dependencies is claimed as soon as their verify was answered: the contract
   * is that an answered verify makes the dependents claimable at once.
   */
  async drive(plan: Plan): Promise<boolean> {
    const done = this.verifiedSignal(plan.story.number);
    for (const step of lifecycleSteps(plan)) {
      if (step.action === 'claim' && plan.dependsOn?.length) {
        const ready = await Promise.all(plan.dependsOn.map((n) => this.verifiedSignal(n).promise));
        if (!ready.every(Boolean)) {
          this.failures.push(`story ${plan.story.number}: a dependency was never verified`);
          done.resolve(false);
          return false;
        }
      }
      const answer = await this.timedStep(plan, step);
      if (answer.status !== 200) {
        this.failures.push(
          `story ${plan.story.number} ${step.action}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`,
        );
        done.resolve(false);
        return false;
      }
    }
    this.storiesVerified++;
    done.resolve(true);
    return true;
  }

  /** `concurrency` agents take the next story off one queue until none is left. */
  async driveAll(plans: Plan[], concurrency: number): Promise<void> {
    let next = 0;
    const lane = async () => {
      while (next < plans.length) {
        const plan = plans[next++];
        await this.drive(plan);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(concurrency, plans.length) }, lane));
    } finally {
      this.finished = true;
      this.wake();
    }
  }

  /** Resolves once `n` lifecycle steps were answered 200 (or the run is over). */
  reached(n: number): Promise<void> {
    if (this.transitions >= n || this.finished) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  private wake(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i];
      if (this.transitions >= w.n || this.finished) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  figures() {
    return {
      http_attempts: this.attempts,
      retries: this.retries,
      network_errors: this.networkErrors,
      idempotent_replays: this.replayed,
      statuses: { ...this.statuses },
      transitions_answered_200: this.transitions,
      stories_driven_to_verified: this.storiesVerified,
      failed_steps: this.failures.length,
    };
  }
}

/**
 * Plans for stories in backlog order: rotating implementers and reviewers (never the same agent),
 * one verifier, and each story's dependencies from the backlog.
 */
export function plansFor(stories: StoryInfo[], agents: Party[], verifier: Party, backlog?: Backlog): Plan[] {
  if (agents.length < 2) throw new Error('two agents at least: an implementer and a reviewer');
  const dependsOn = new Map(
    (backlog?.epics ?? []).flatMap((e) => e.stories.map((s) => [s.number, s.depends_on ?? []] as const)),
  );
  return stories.map((story, i) => ({
    story,
    implementer: agents[i % agents.length],
    reviewer: agents[(i + 1) % agents.length],
    verifier,
    dependsOn: dependsOn.get(story.number) ?? [],
  }));
}

export interface Backlog {
  epics: {
    number: number;
    title: string;
    stories: { number: string; title: string; acceptance_criteria: string[]; depends_on?: string[] }[];
  }[];
}

/**
 * A backlog of `count` stories in epics of 25, each with 1 to 4 acceptance criteria. With
 * `dependEvery: n`, every n-th story of an epic depends on the one before it (which depends on
 * nothing): claims wait for a verify, and verifies notify dependents, under every fault.
 */
export function backlogOf(count: number, options: { dependEvery?: number; perEpic?: number } = {}): Backlog {
  const perEpic = options.perEpic ?? 25;
  const every = options.dependEvery ?? 0;
  const epics: Backlog['epics'] = [];
  for (let i = 0; i < count; i++) {
    const e = Math.floor(i / perEpic) + 1;
    const k = (i % perEpic) + 1;
    if (!epics[e - 1]) epics.push({ number: e, title: `Epic ${e}`, stories: [] });
    epics[e - 1].stories.push({
      number: `${e}.${k}`,
      title: `Story ${e}.${k}`,
      acceptance_criteria: Array.from({ length: (i % 4) + 1 }, (_, c) => `criterion ${c + 1}`),
      ...(every > 1 && k % every === 0 ? { depends_on: [`${e}.${k - 1}`] } : {}),
    });
  }
  return { epics };
}

async function inBatches<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

/** The story as its workflow holds it (a query: answered by the worker from workflow state). */
export async function workflowView(h: Stack, workflowId: string): Promise<StoryView> {
  return h.client.workflow.getHandle(workflowId).query(storyQuery);
}

export interface ProjectionRow {
  id: string;
  number: string;
  workflow_id: string;
  agent_status: string;
  verified_status: string;
  assigned_agent_id: string | null;
  reported_by_agent_id: string | null;
  reviewer_agent_id: string | null;
  verified_by_agent_id: string | null;
  iteration: number;
  version: string;
}

export async function projectionRows(h: Stack, storyIds: string[]): Promise<Map<string, ProjectionRow>> {
  const { rows } = await h.pool.query<ProjectionRow>(
    `SELECT id, number, workflow_id, agent_status, verified_status, assigned_agent_id, reported_by_agent_id,
            reviewer_agent_id, verified_by_agent_id, iteration, version
     FROM stories WHERE id = ANY ($1::uuid[])`,
    [storyIds],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

export interface AuditRow {
  story_id: string;
  seq: string | null;
  action: string;
  outcome: string;
  update_id: string;
  actor_agent_id: string | null;
  code: string | null;
}

export async function auditRows(h: Stack, storyIds: string[]): Promise<AuditRow[]> {
  const { rows } = await h.pool.query<AuditRow>(
    `SELECT story_id, seq, action, outcome, update_id, actor_agent_id, code FROM audit_events
     WHERE story_id = ANY ($1::uuid[]) ORDER BY story_id, id`,
    [storyIds],
  );
  return rows;
}

/** Where the projection and the workflow disagree about a story (empty when they agree). */
export function disagreement(row: ProjectionRow | undefined, view: StoryView): string[] {
  if (!row) return ['no projection row'];
  const s = view.state;
  const pairs: [string, unknown, unknown][] = [
    ['agent_status', row.agent_status, s.agentStatus],
    ['verified_status', row.verified_status, s.verifiedStatus],
    ['assigned_agent_id', row.assigned_agent_id, s.assignedAgentId],
    ['reported_by_agent_id', row.reported_by_agent_id, s.reportedByAgentId],
    ['reviewer_agent_id', row.reviewer_agent_id, s.reviewerAgentId],
    ['verified_by_agent_id', row.verified_by_agent_id, s.verifiedByAgentId],
    ['iteration', Number(row.iteration), s.iteration],
    ['version/seq', Number(row.version), view.seq],
  ];
  return pairs
    .filter(([, a, b]) => a !== b)
    .map(([k, a, b]) => `${k}: projection ${JSON.stringify(a)} vs workflow ${JSON.stringify(b)}`);
}

/**
 * What the workflow histories show of the faults: activities that needed more than one attempt
 * (their last attempt's number is recorded), and workflow tasks that timed out or failed.
 */
export async function historyFigures(h: Stack, stories: StoryInfo[]) {
  let retriedActivities = 0;
  let extraAttempts = 0;
  let workflowTaskTimeouts = 0;
  let workflowTaskFailures = 0;
  await inBatches(stories, 16, async (s) => {
    const history = await h.client.workflow.getHandle(s.workflow_id).fetchHistory();
    for (const event of history.events ?? []) {
      const attempt = event.activityTaskStartedEventAttributes?.attempt ?? 1;
      if (attempt > 1) {
        retriedActivities++;
        extraAttempts += attempt - 1;
      }
      if (event.workflowTaskTimedOutEventAttributes) workflowTaskTimeouts++;
      if (event.workflowTaskFailedEventAttributes) workflowTaskFailures++;
    }
  });
  return {
    activities_retried: retriedActivities,
    activity_extra_attempts: extraAttempts,
    workflow_task_timeouts: workflowTaskTimeouts,
    workflow_task_failures: workflowTaskFailures,
  };
}

export interface Ledger {
  stories: number;
  transitions_expected: number;
  accepted_rows: number;
  rows_lost: number;
  rows_duplicated: number;
  rejected_rows: number;
  verified_in_projection: number;
  verified_in_workflow: number;
  audit_chain_ok: boolean;
  /** Every discrepancy, one line each (empty when all is well). */
  problems: string[];
}

/**
 * Compares, for every story, what must have happened (the seven lifecycle steps, once each, in
 * order, seq 1..7) with the audit table, the projection and the workflow's own state.
 */
export async function ledgerOf(h: Stack, stories: StoryInfo[], chainKey: string, backlog?: Backlog): Promise<Ledger> {
  const idOf = new Map(stories.map((s) => [s.number, s.id]));
  const dependsOn = new Map(
    (backlog?.epics ?? []).flatMap((e) => e.stories.map((s) => [s.number, s.depends_on ?? []] as const)),
  );
  const ids = stories.map((s) => s.id);
  const [projection, audit] = await Promise.all([projectionRows(h, ids), auditRows(h, ids)]);
  const views = await inBatches(stories, 16, async (s) => [s.id, await workflowView(h, s.workflow_id)] as const);
  const viewOf = new Map(views);
  const problems: string[] = [];
  let lost = 0;
  let duplicated = 0;
  const accepted = audit.filter((r) => r.outcome === 'accepted');
  for (const story of stories) {
    const rows = accepted.filter((r) => r.story_id === story.id);
    const where = `story ${story.number}`;
    LIFECYCLE.forEach((action, i) => {
      const matching = rows.filter((r) => r.action === action);
      if (matching.length === 0) {
        lost++;
        problems.push(`${where}: no accepted audit row for ${action}`);
      } else if (matching.length > 1) {
        duplicated += matching.length - 1;
        problems.push(`${where}: ${matching.length} accepted audit rows for ${action}`);
      } else if (Number(matching[0].seq) !== i + 1) {
        problems.push(`${where}: ${action} has seq ${matching[0].seq}, expected ${i + 1}`);
      }
    });
    const extra = rows.filter((r) => !(LIFECYCLE as readonly string[]).includes(r.action));
    if (extra.length > 0) {
      duplicated += extra.length;
      problems.push(`${where}: unexpected accepted rows ${extra.map((r) => r.action).join(', ')}`);
    }
    const seqs = rows.map((r) => Number(r.seq)).sort((a, b) => a - b);
    if (seqs.join(',') !== '1,2,3,4,5,6,7') problems.push(`${where}: audit seqs ${seqs.join(',')}`);
    const row = projection.get(story.id);
    const view = viewOf.get(story.id)!;
    if (row?.agent_status !== 'reported_done' || row?.verified_status !== 'verified') {
      problems.push(`${where}: projection is ${row?.agent_status}/${row?.verified_status}`);
    }
    if (view.state.agentStatus !== 'reported_done' || view.state.verifiedStatus !== 'verified' || view.seq !== 7) {
      problems.push(`${where}: workflow is ${view.state.agentStatus}/${view.state.verifiedStatus} at seq ${view.seq}`);
    }
    for (const d of disagreement(row, view)) problems.push(`${where}: ${d}`);
    for (const dep of dependsOn.get(story.number) ?? []) {
      if (view.state.dependencies[idOf.get(dep)!]?.verified !== true)
        problems.push(`${where}: its workflow does not know that ${dep} is verified`);
    }
  }
  const chain = await h.api.get('/api/v1/audit/verify', chainKey);
  const chainOk = chain.status === 200 && chain.body?.data?.ok === true;
  if (!chainOk) problems.push(`audit chain: ${chain.status} ${JSON.stringify(chain.body)}`);
  return {
    stories: stories.length,
    transitions_expected: stories.length * LIFECYCLE.length,
    accepted_rows: accepted.length,
    rows_lost: lost,
    rows_duplicated: duplicated,
    rejected_rows: audit.length - accepted.length,
    verified_in_projection: [...projection.values()].filter(
      (r) => r.agent_status === 'reported_done' && r.verified_status === 'verified',
    ).length,
    verified_in_workflow: views.filter(
      ([, v]) => v.state.verifiedStatus === 'verified' && v.state.agentStatus === 'reported_done',
    ).length,
    audit_chain_ok: chainOk,
    problems,
  };
}

/** Prints a test's figures as one block the run's output keeps. */
export function report(title: string, figures: Record<string, unknown>): void {
  const lines = Object.entries(figures).map(
    ([k, v]) => `  ${k.padEnd(34)} ${typeof v === 'object' ? JSON.stringify(v) : String(v as string)}`,
  );
  console.log(`\n=== ${title}\n${lines.join('\n')}\n`);
}

/**
 * The common end of every run: the ledger, the figures printed, then the assertions (every step
 * answered 200, every story verified in the projection and the workflow, lost = duplicated = 0,
 * the audit chain intact, no process died unasked).
 */
export async function settleAndAssert(
  expect: typeof import('vitest').expect,
  title: string,
  h: SupervisedStack,
  stories: StoryInfo[],
  chainKey: string,
  agents: SimulatedAgents,
  figures: Record<string, unknown>,
  backlog?: Backlog,
): Promise<Ledger> {
  const ledger = await ledgerOf(h, stories, chainKey, backlog);
  const histories = await historyFigures(h, stories);
  report(title, {
    stories: ledger.stories,
    stories_waiting_on_a_dependency: (backlog?.epics ?? [])
      .flatMap((e) => e.stories)
      .filter((s) => s.depends_on?.length).length,
    transitions_expected: ledger.transitions_expected,
    ...figures,
    ...agents.figures(),
    accepted_audit_rows: ledger.accepted_rows,
    rejected_audit_rows: ledger.rejected_rows,
    verified_projection: ledger.verified_in_projection,
    verified_workflow: ledger.verified_in_workflow,
    rows_lost: ledger.rows_lost,
    rows_duplicated: ledger.rows_duplicated,
    audit_chain_ok: ledger.audit_chain_ok,
    histories,
    unexpected_exits: h.unexpectedExitSummaries(),
  });
  if (ledger.problems.length > 0 || agents.failures.length > 0) {
    console.log(
      `--- problems (first 30)\n${[...agents.failures, ...ledger.problems].slice(0, 30).join('\n')}\n${h.logsTail()}`,
    );
  }
  if (h.unexpectedExits().length > 0)
    console.log(`--- processes that died unasked\n${h.unexpectedExits().join('\n\n')}`);
  expect(agents.failures, agents.failures.slice(0, 10).join('\n')).toEqual([]);
  expect(ledger.problems.slice(0, 20)).toEqual([]);
  expect(ledger.rows_lost).toBe(0);
  expect(ledger.rows_duplicated).toBe(0);
  expect(ledger.accepted_rows).toBe(ledger.transitions_expected);
  expect(ledger.verified_in_projection).toBe(stories.length);
  expect(ledger.verified_in_workflow).toBe(stories.length);
  expect(ledger.audit_chain_ok).toBe(true);
  // Nothing in a clean lifecycle is ever refused: a rejected row would be a retry judged anew.
  expect(ledger.rejected_rows).toBe(0);
  expect(h.unexpectedExitSummaries(), 'a process of the stack died without being killed').toEqual([]);
  return ledger;
}
