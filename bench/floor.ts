/**
 * The floors: what Temporal itself costs on this machine, in the same run, with the same server
 * and client settings as the service, so every custody figure is read as a ratio to them.
 */
import { fileURLToPath } from 'node:url';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { increment, incrementPersisted } from './floor-workflow.js';
import { round, summary } from './stats.js';

type Summary = ReturnType<typeof summary>;

export interface Floor {
  sequential: Summary;
  concurrent10: Summary;
  with_activity_sequential: Summary;
  with_activity_concurrent10: Summary;
  /** Updates awaiting one no-op activity per second, 50 callers on 50 workflows. */
  with_activity_throughput_per_second: number;
  /** History events one update awaiting one activity adds. */
  history_events_per_update: number;
  /** Bare workflow starts per second, `window` in flight at once (what an import's starts cost at least). */
  starts: { count: number; window: number; seconds: number; per_second: number };
}

/** Runs `fn` on every item, at most `limit` at once. */
export async function inWindow<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

export async function historyLength(handle: WorkflowHandle): Promise<number> {
  return (await handle.fetchHistory()).events?.length ?? 0;
}

export async function measureFloor(address: string, scale: number, counts: { starts: number }): Promise<Floor> {
  const nativeConnection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue: 'floor',
    workflowsPath: fileURLToPath(new URL('./floor-workflow.ts', import.meta.url)),
    activities: { noop: async (value: number) => value },
  });
  const running = worker.run();
  const client = new Client({ connection: await Connection.connect({ address }) });
  const prefix = `floor-${Date.now()}`;
  const start = (id: string) => client.workflow.start('floorWorkflow', { taskQueue: 'floor', workflowId: id });
  const handles = await Promise.all(Array.from({ length: 50 }, (_, i) => start(`${prefix}-${i}`)));
  const ten = handles.slice(0, 10);
  const sequentialCount = Math.max(50, Math.round(400 * scale));
  const concurrentEach = Math.max(10, Math.round(60 * scale));
  const time = async (update: typeof increment, h: WorkflowHandle) => {
    const t = performance.now();
    await h.executeUpdate(update, { args: [1] });
    return performance.now() - t;
  };
  const measure = async (update: typeof increment) => {
    for (let i = 0; i < 20; i++) await time(update, handles[0]);
    const sequential: number[] = [];
    for (let i = 0; i < sequentialCount; i++) sequential.push(await time(update, handles[0]));
    const concurrent: number[] = [];
    await Promise.all(
      ten.map(async (h) => {
        for (let i = 0; i < concurrentEach; i++) concurrent.push(await time(update, h));
      }),
    );
    return { sequential: summary(sequential), concurrent: summary(concurrent) };
  };
  const bare = await measure(increment);
  const persisted = await measure(incrementPersisted);

  // History events per update awaiting one activity, on a workflow of its own.
  const counted = await start(`${prefix}-counted`);
  await time(incrementPersisted, counted);
  const before = await historyLength(counted);
  for (let i = 0; i < 10; i++) await time(incrementPersisted, counted);
  const history_events_per_update = round(((await historyLength(counted)) - before) / 10, 2);

  // Throughput: 50 callers, each on its own workflow, as the 50-agent custody run.
  const each = Math.max(5, Math.round(20 * scale));
  const t0 = performance.now();
  await Promise.all(
    handles.map(async (h) => {
      for (let i = 0; i < each; i++) await time(incrementPersisted, h);
    }),
  );
  const with_activity_throughput_per_second = round((50 * each) / ((performance.now() - t0) / 1000), 1);

  // Starts, as an import makes them: a window of 32 in flight.
  const window = 32;
  const ids = Array.from({ length: counts.starts }, (_, i) => `${prefix}-start-${i}`);
  const s0 = performance.now();
  await inWindow(ids, window, async (id) => void (await start(id)));
  const startSeconds = (performance.now() - s0) / 1000;

  worker.shutdown();
  await running;
  await nativeConnection.close();
  await client.connection.close();
  return {
    sequential: bare.sequential,
    concurrent10: bare.concurrent,
    with_activity_sequential: persisted.sequential,
    with_activity_concurrent10: persisted.concurrent,
    with_activity_throughput_per_second,
    history_events_per_update,
    starts: {
      count: counts.starts,
      window,
      seconds: round(startSeconds, 2),
      per_second: round(counts.starts / startSeconds, 1),
    },
  };
}
