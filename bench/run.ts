/**
 * `npm run bench`: the custody path against the floor of Temporal itself, on this machine.
 * Starts its own Temporal dev server, database, worker and gateway (as separate processes, so
 * their memory can be read), measures, prints the figures and a ratio, and writes them to
 * bench/results/. It is a measurement: a missed target is reported, not failed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import pg from 'pg';
import { newSigningSeed } from '../src/custody/identity.js';
import { migrate } from '../src/db/migrate.js';
import { locateTemporalCli } from '../src/temporal/cli.js';
import { startDevServer } from '../src/temporal/dev-server.js';
import { freePort } from '../test/global-setup.js';
import { Api, createTeam, type Team } from '../test/support/api.js';
import { increment, incrementPersisted } from './floor-workflow.js';
import { RssSampler, round, summary } from './stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const THROUGHPUT_STORIES = Number(process.env.BENCH_STORIES ?? 500);
const READ_STORIES = Number(process.env.BENCH_READ_STORIES ?? 10_000);
const started = Date.now();

Runtime.install({ logger: new DefaultLogger('ERROR') });

// ---- the stack -----------------------------------------------------------------------------
const executable = await locateTemporalCli();
if (!executable) throw new Error('no Temporal CLI (install Go, or set TEMPORAL_CLI_PATH)');
const temporal = await startDevServer({ executable, port: await freePort() });
const adminUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `custody_bench_${Date.now().toString(36)}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const dbUrl = new URL(adminUrl);
dbUrl.pathname = `/${dbName}`;
const databaseUrl = dbUrl.toString();
await migrate(databaseUrl);

const gatewayPort = await freePort();
const env = {
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? '/root',
  TEMPORAL_ADDRESS: temporal.address,
  TEMPORAL_TASK_QUEUE: 'custody-bench',
  DATABASE_URL: databaseUrl,
  DATABASE_POOL_SIZE: '20',
  PORT: String(gatewayPort),
  HOST: '127.0.0.1',
  CUSTODY_SIGNING_KEY: newSigningSeed(),
  RATE_LIMIT_PER_MINUTE: '0',
  LOG_LEVEL: 'warn',
  // Worker settings to compare runs with (unset: the service's defaults).
  ...(process.env.WORKER_MAX_CACHED_WORKFLOWS
    ? { WORKER_MAX_CACHED_WORKFLOWS: process.env.WORKER_MAX_CACHED_WORKFLOWS }
    : {}),
};
function startProcess(entry: string): ChildProcess {
  // BENCH_NODE_ARGS: extra node flags for the worker and the gateway (e.g. --cpu-prof to profile them).
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', entry], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return child;
}
const workerProcess = startProcess('src/bin/worker.ts');
const gatewayProcess = startProcess('src/bin/gateway.ts');
const workerRss = new RssSampler(workerProcess.pid!, (p) => readFileSync(p, 'utf8'));
const gatewayRss = new RssSampler(gatewayProcess.pid!, (p) => readFileSync(p, 'utf8'));
const api = new Api(`http://127.0.0.1:${gatewayPort}`);
for (let i = 0; ; i++) {
  const health = await api.get('/health').catch(() => null);
  if (health?.status === 200) break;
  if (i > 300) throw new Error('the gateway did not come up');
  await sleep(200);
}
// The worker bundles its workflows at start: wait until it polls.
const ping = await createTeam(api, 1, 'warmup');
const warm = await api.post(`/api/v1/projects/${ping.projectId}/import`, ping.orchestrator.key, {
  epics: [{ number: 1, title: 'w', stories: [{ number: '1.1', title: 'w', acceptance_criteria: [] }] }],
});
await api.act(warm.body.data.stories[0].id, 'contract', ping.agents[0].key, { story_title: 'w', ac_count: 0 });
const workerStartPeakMb = round(workerRss.peakKb / 1024, 1);
say(
  `stack up in ${round((Date.now() - started) / 1000, 1)} s: Temporal ${temporal.address}, gateway :${gatewayPort}, database ${dbName}`,
);

// ---- the floor: a raw update round trip, same server, same client settings ------------------
type Summary = ReturnType<typeof summary>;
async function measureFloor(): Promise<{
  sequential: Summary;
  concurrent10: Summary;
  with_activity_sequential: Summary;
  with_activity_concurrent10: Summary;
}> {
  const nativeConnection = await NativeConnection.connect({ address: temporal.address });
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue: 'floor',
    workflowsPath: fileURLToPath(new URL('./floor-workflow.ts', import.meta.url)),
    activities: { noop: async (value: number) => value },
  });
  const running = worker.run();
  const client = new Client({ connection: await Connection.connect({ address: temporal.address }) });
  const handles = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      client.workflow.start('floorWorkflow', { taskQueue: 'floor', workflowId: `floor-${Date.now()}-${i}` }),
    ),
  );
  const measure = async (update: typeof increment) => {
    const time = async (h: (typeof handles)[number]) => {
      const t = performance.now();
      await h.executeUpdate(update, { args: [1] });
      return performance.now() - t;
    };
    for (let i = 0; i < 50; i++) await time(handles[0]);
    const sequential: number[] = [];
    for (let i = 0; i < 400; i++) sequential.push(await time(handles[0]));
    const concurrent: number[] = [];
    await Promise.all(
      handles.map(async (h) => {
        for (let i = 0; i < 60; i++) concurrent.push(await time(h));
      }),
    );
    return { sequential: summary(sequential), concurrent: summary(concurrent) };
  };
  const bare = await measure(increment);
  const persisted = await measure(incrementPersisted);
  worker.shutdown();
  await running;
  await nativeConnection.close();
  await client.connection.close();
  return {
    sequential: bare.sequential,
    concurrent10: bare.concurrent,
    with_activity_sequential: persisted.sequential,
    with_activity_concurrent10: persisted.concurrent,
  };
}
const floor = await measureFloor();
say(
  `floor: sequential median ${floor.sequential.median_ms} ms, p99 ${floor.sequential.p99_ms} ms; 10 concurrent median ${floor.concurrent10.median_ms} ms, p99 ${floor.concurrent10.p99_ms} ms`,
);
say(
  `floor with one no-op activity: sequential median ${floor.with_activity_sequential.median_ms} ms, p99 ${floor.with_activity_sequential.p99_ms} ms; 10 concurrent median ${floor.with_activity_concurrent10.median_ms} ms, p99 ${floor.with_activity_concurrent10.p99_ms} ms`,
);

// ---- simulated agents -----------------------------------------------------------------------
const ACTIONS = ['contract', 'claim', 'start', 'request-review', 'report', 'review-complete', 'verify'] as const;
type Latencies = Record<(typeof ACTIONS)[number], number[]>;
const emptyLatencies = (): Latencies => Object.fromEntries(ACTIONS.map((a) => [a, []])) as unknown as Latencies;

async function importStories(team: Team, count: number, epic: number): Promise<{ id: string; title: string }[]> {
  const stories: { id: string; title: string }[] = [];
  for (let start = 0; start < count; start += 250) {
    const batch = Array.from({ length: Math.min(250, count - start) }, (_, i) => ({
      number: `${epic}.${start + i + 1}`,
      title: `Story ${epic}.${start + i + 1}`,
      acceptance_criteria: ['works'],
    }));
    const r = await api.post(`/api/v1/projects/${team.projectId}/import`, team.orchestrator.key, {
      epics: [{ number: epic, title: `Epic ${epic}`, stories: batch }],
    });
    if (r.status !== 201) throw new Error(`import: ${r.status} ${JSON.stringify(r.body)}`);
    stories.push(...r.body.data.stories.map((s: { id: string; title: string }) => ({ id: s.id, title: s.title })));
  }
  return stories;
}

/** `agents` concurrent agents drive `stories` through the lifecycle, each agent its own share. */
async function drive(
  team: Team,
  stories: { id: string; title: string }[],
  agents: number,
): Promise<{ latencies: Latencies; errors: number; seconds: number }> {
  const latencies = emptyLatencies();
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: agents }, async (_, a) => {
      const implementer = team.agents[a % (team.agents.length / 2)];
      const reviewer = team.agents[team.agents.length / 2 + (a % (team.agents.length / 2))];
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
          if (r.status !== 200) errors++;
        }
      }
    }),
  );
  return { latencies, errors, seconds: (performance.now() - t0) / 1000 };
}

const team = await createTeam(api, 100, 'bench');
const byConcurrency: Record<
  string,
  { overall: ReturnType<typeof summary>; by_action: Record<string, ReturnType<typeof summary>>; errors: number }
> = {};
let epic = 1;
for (const agents of [1, 10, 50]) {
  const count = agents === 1 ? 30 : agents === 10 ? 60 : 100;
  const stories = await importStories(team, count, epic++);
  const { latencies, errors } = await drive(team, stories, agents);
  const all = Object.values(latencies).flat();
  byConcurrency[agents] = {
    overall: summary(all),
    by_action: Object.fromEntries(Object.entries(latencies).map(([a, v]) => [a, summary(v)])),
    errors,
  };
  say(
    `transition at ${String(agents).padStart(2)} agents: median ${byConcurrency[agents].overall.median_ms} ms, p99 ${byConcurrency[agents].overall.p99_ms} ms, errors ${errors}  (${Object.entries(
      byConcurrency[agents].by_action,
    )
      .map(([a, s]) => `${a} ${s.median_ms}`)
      .join(', ')})`,
  );
}

// ---- throughput -----------------------------------------------------------------------------
const throughputStories = await importStories(team, THROUGHPUT_STORIES, epic);
const run = await drive(team, throughputStories, 50);
const transitions = Object.values(run.latencies).flat().length;
const throughput = {
  stories: THROUGHPUT_STORIES,
  agents: 50,
  seconds: round(run.seconds, 1),
  transitions_per_second: round(transitions / run.seconds, 1),
  lifecycles_per_second: round(THROUGHPUT_STORIES / run.seconds, 2),
  errors: run.errors,
};
const { rows: verifiedRows } = await admin.query(`SELECT 1`).then(async () => {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const r = await db.query(
    `SELECT count(*)::int AS n FROM stories WHERE id = ANY($1::uuid[]) AND verified_status = 'verified'`,
    [throughputStories.map((s) => s.id)],
  );
  await db.end();
  return r;
});
say(
  `throughput: ${THROUGHPUT_STORIES} lifecycles with 50 agents in ${throughput.seconds} s: ${throughput.transitions_per_second} transitions/s, ${throughput.lifecycles_per_second} lifecycles/s, errors ${run.errors}, verified ${verifiedRows[0].n}`,
);

// ---- reads with 10,000 stories in a project ----------------------------------------------------
const readProject = (await api.post('/api/v1/projects', team.admin.key, { name: 'Reads', slug: 'reads' })).body.data
  .id as string;
{
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const epics = await db.query<{ id: string }>(
    `INSERT INTO epics (tenant_id, project_id, number, title) SELECT $1, $2, g, 'Epic ' || g FROM generate_series(1, 20) g RETURNING id`,
    [team.tenantId, readProject],
  );
  const statuses = ['pending', 'contracted', 'assigned', 'implementing', 'review_requested', 'reported_done'];
  await db.query(
    `INSERT INTO stories (tenant_id, project_id, epic_id, number, title, acceptance_criteria, workflow_id, agent_status, verified_status)
     SELECT $1, $2, ($3::uuid[])[1 + (g % 20)], 'r.' || g, 'Read story ' || g, '["a"]', 'bench-read/' || g,
       ($4::text[])[1 + (g % 6)], CASE WHEN g % 6 = 5 AND g % 2 = 0 THEN 'verified' ELSE 'unverified' END
     FROM generate_series(1, $5) g`,
    [team.tenantId, readProject, epics.rows.map((r) => r.id), statuses, READ_STORIES],
  );
  // A chain of dependencies inside each epic, so "ready" has real work to do.
  await db.query(
    `INSERT INTO story_dependencies (tenant_id, story_id, depends_on_story_id)
     SELECT $1, s.id, d.id FROM stories s JOIN stories d ON d.project_id = s.project_id
       AND d.number = 'r.' || (substring(s.number from 3)::int - 20)
     WHERE s.project_id = $2`,
    [team.tenantId, readProject],
  );
  await db.query('ANALYZE');
  await db.end();
}
async function timeReads(path: string): Promise<ReturnType<typeof summary>> {
  for (let i = 0; i < 20; i++) await api.get(path, team.orchestrator.key);
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    const r = await api.get(path, team.orchestrator.key);
    times.push(performance.now() - t);
    if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
  }
  return summary(times);
}
const reads = {
  stories_in_project: READ_STORIES,
  ready: await timeReads(`/api/v1/stories/ready?project_id=${readProject}&limit=1`),
  progress: await timeReads(`/api/v1/projects/${readProject}/progress`),
};
say(
  `reads with ${READ_STORIES} stories: /stories/ready median ${reads.ready.median_ms} ms, /progress median ${reads.progress.median_ms} ms`,
);

// ---- memory, targets, summary -----------------------------------------------------------------
const memory = {
  worker_peak_rss_mb: workerRss.stop(),
  worker_peak_rss_during_start_mb: workerStartPeakMb,
  gateway_peak_rss_mb: gatewayRss.stop(),
};
say(
  `memory: worker peak RSS ${memory.worker_peak_rss_mb} MB (${memory.worker_peak_rss_during_start_mb} MB during start), gateway peak RSS ${memory.gateway_peak_rss_mb} MB`,
);

const at10 = byConcurrency['10'].overall;
// The floor at the same concurrency as the transitions it is compared with: 10 callers at once.
const floorAt10 = floor.concurrent10;
const ratio = round(at10.median_ms / floorAt10.median_ms, 2);
const ratios = {
  transition_over_floor_at_10: ratio,
  transition_p99_over_floor_median_at_10: round(at10.p99_ms / floorAt10.median_ms, 2),
  transition_over_sequential_floor: round(at10.median_ms / floor.sequential.median_ms, 2),
  transition_over_floor_with_activity_at_10: round(at10.median_ms / floor.with_activity_concurrent10.median_ms, 2),
};
const targets = {
  'transition median <= 1.5 x floor median at 10 agents': ratio <= 1.5,
  'transition p99 <= 3 x floor median at 10 agents': at10.p99_ms <= 3 * floorAt10.median_ms,
  '500 lifecycles with zero errors': run.errors === 0 && verifiedRows[0].n === THROUGHPUT_STORIES,
  'reads <= 20 ms median at 10,000 stories': reads.ready.median_ms <= 20 && reads.progress.median_ms <= 20,
  'worker + gateway RSS <= 400 MB': memory.worker_peak_rss_mb + memory.gateway_peak_rss_mb <= 400,
};
for (const [target, met] of Object.entries(targets)) say(`  ${met ? 'met    ' : 'NOT met'}  ${target}`);
say(
  `ratios at 10 agents: transition/floor ${ratios.transition_over_floor_at_10}, p99/floor ${ratios.transition_p99_over_floor_median_at_10}, transition/floor-with-one-activity ${ratios.transition_over_floor_with_activity_at_10}`,
);
say(
  `transition median / floor median at 10 agents = ${ratio} (${at10.median_ms} / ${floorAt10.median_ms} ms; target <= 1.5)`,
);

const results = {
  at: new Date().toISOString(),
  machine: {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model,
    memory_gb: round(totalmem() / 2 ** 30, 1),
    node: process.version,
  },
  floor,
  transition: byConcurrency,
  throughput,
  reads,
  memory,
  ratio_transition_over_floor_at_10_agents: ratio,
  ratios,
  targets,
  run_seconds: round((Date.now() - started) / 1000, 1),
};
mkdirSync(`${ROOT}/bench/results`, { recursive: true });
writeFileSync(`${ROOT}/bench/results/latest.json`, JSON.stringify(results, null, 2));
writeFileSync(`${ROOT}/bench/results/${results.at.replace(/[:.]/g, '-')}.json`, JSON.stringify(results, null, 2));
say(`figures written to bench/results/latest.json (run took ${results.run_seconds} s)`);

workerProcess.kill('SIGTERM');
gatewayProcess.kill('SIGTERM');
await sleep(1000);
await temporal.stop();
await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
await admin.end();
process.exit(0);
