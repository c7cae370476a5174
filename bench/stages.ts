/**
 * `npm run bench:stages`: where one transition's time goes, at 1 agent. The gateway and the
 * worker run in this process (the integration tests' stack, defaults but the limits' budgets) on
 * a Temporal dev server of its own; every SQL statement is timed by what it says, and each
 * update's history gives the worker's side: the workflow task that accepts it, the persistence
 * activity, the task that answers. Not the bench: one process, so its figures are stage costs,
 * not the latency of the separate processes.
 */
import pg from 'pg';
import { fileURLToPath } from 'node:url';
import { locateTemporalCli } from '../src/temporal/cli.js';
import { startDevServer } from '../src/temporal/dev-server.js';
import { freePort } from '../test/global-setup.js';
import { startStack } from '../test/support/stack.js';
import { createTeam } from '../test/support/api.js';
import { ACTIONS, drive, importStories } from './agents.js';
import { round, summary } from './stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STORIES = Number(process.env.STAGES_STORIES ?? 20);
const say = (line: string) => process.stdout.write(`${line}\n`);

// Every statement, timed from the call to its answer, by its first words.
const statements = new Map<string, number[]>();
let recording = false;
const labelOf = (text: string) => text.replace(/\s+/g, ' ').trim().slice(0, 90);
// Wrapped, then called with each client as `this`.
// eslint-disable-next-line @typescript-eslint/unbound-method
const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
pg.Client.prototype.query = function timed(this: pg.Client, ...args: unknown[]) {
  const first = args[0];
  const text = typeof first === 'string' ? first : ((first as { text?: string })?.text ?? '?');
  const t = performance.now();
  const note = () => {
    if (!recording) return;
    const label = labelOf(text);
    statements.set(label, [...(statements.get(label) ?? []), performance.now() - t]);
  };
  const callback = args.findIndex((a) => typeof a === 'function');
  if (callback >= 0) {
    const cb = args[callback] as (...r: unknown[]) => void;
    args[callback] = (...r: unknown[]) => {
      note();
      cb(...r);
    };
    return query.apply(this, args);
  }
  const result = query.apply(this, args);
  if (result && typeof (result as Promise<unknown>).then === 'function') {
    return (result as Promise<unknown>).finally(note);
  }
  return result;
} as typeof pg.Client.prototype.query;

const executable = await locateTemporalCli();
if (!executable) throw new Error('no Temporal CLI');
const server = await startDevServer({ executable, port: await freePort() });
const stack = await startStack({
  temporalAddress: server.address,
  workflowBundlePath: `${ROOT}/dist/workflow-bundle.js`,
  // The limits on, as in production, with budgets this run cannot spend.
  env: { RATE_LIMIT_PER_MINUTE: '1000000', RATE_LIMIT_TENANT_PER_MINUTE: '1000000' },
});
try {
  const team = await createTeam(stack.api, 2, 'stages');
  const warm = await importStories(stack.api, team, 3, 1);
  await drive([stack.api], team, warm, 1);
  const stories = await importStories(stack.api, team, STORIES, 2);
  recording = true;
  const run = await drive([stack.api], team, stories, 1);
  recording = false;
  const transitions = STORIES * ACTIONS.length;
  const all = Object.values(run.latencies).flat();
  say(`${transitions} transitions, 1 agent, errors ${run.errors}: ${JSON.stringify(summary(all))}`);
  say('\nSQL per transition (count, mean ms, total ms per transition):');
  const rows = [...statements.entries()].map(([label, times]) => ({
    label,
    perTransition: round(times.length / transitions, 2),
    mean: round(times.reduce((a, b) => a + b, 0) / times.length, 3),
    msPerTransition: round(times.reduce((a, b) => a + b, 0) / transitions, 3),
  }));
  rows.sort((a, b) => b.msPerTransition - a.msPerTransition);
  for (const r of rows) say(`  ${r.perTransition}x ${r.mean} ms = ${r.msPerTransition} ms  ${r.label}`);
  say(
    `  total: ${round(
      rows.reduce((a, r) => a + r.msPerTransition, 0),
      2,
    )} ms per transition`,
  );

  // The worker's side, from the histories: accept task, activity, answer task.
  const stages: Record<string, number[]> = {};
  const add = (k: string, v: number) => (stages[k] ??= []).push(v);
  for (const story of stories) {
    const history = await stack.client.workflow.getHandle(story.workflow_id).fetchHistory();
    const events = (history.events ?? []).map((e) => ({
      type: Object.keys(e).find((k) => k.endsWith('EventAttributes') && e[k as keyof typeof e]) ?? '',
      t: Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6,
    }));
    for (let i = 0; i < events.length; i++) {
      if (events[i].type !== 'activityTaskScheduledEventAttributes') continue;
      const started = events.slice(i).find((e) => e.type === 'activityTaskStartedEventAttributes');
      const completed = events.slice(i).find((e) => e.type === 'activityTaskCompletedEventAttributes');
      if (!started || !completed) continue;
      add('activity: scheduled → started', started.t - events[i].t);
      add('activity: started → completed (run time)', completed.t - started.t);
      const wfts = events.slice(0, i).filter((e) => e.type.startsWith('workflowTask'));
      const accepted = wfts.slice(-3);
      if (accepted.length === 3) {
        add('accepting task: scheduled → started', accepted[1].t - accepted[0].t);
        add('accepting task: started → completed (validator, handler)', accepted[2].t - accepted[1].t);
      }
      const after = events.slice(i).filter((e) => e.t >= completed.t && e.type.startsWith('workflowTask'));
      if (after.length >= 3) {
        add('answering task: scheduled → started', after[1].t - after[0].t);
        add('answering task: started → completed', after[2].t - after[1].t);
      }
    }
  }
  say('\nworker side, from the histories (median ms):');
  for (const [k, v] of Object.entries(stages)) say(`  ${k}: ${summary(v).median_ms} (n ${v.length})`);
} finally {
  await stack.stop();
  await server.stop?.();
  process.exit(0);
}
