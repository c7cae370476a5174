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

/** The floor's own worker, client and 50 workflows, kept for the whole run. */
export class FloorRig {
  private constructor(
    private readonly worker: Worker,
    private readonly running: Promise<void>,
    private readonly nativeConnection: NativeConnection,
    readonly client: Client,
    readonly handles: WorkflowHandle[],
    private readonly prefix: string,
  ) {}

  static async start(address: string): Promise<FloorRig> {
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
    const rig = new FloorRig(worker, running, nativeConnection, client, [], prefix);
    rig.handles.push(...(await Promise.all(Array.from({ length: 50 }, (_, i) => rig.start(`${prefix}-${i}`)))));
    return rig;
  }

  start(id: string): Promise<WorkflowHandle> {
    return this.client.workflow.start('floorWorkflow', { taskQueue: 'floor', workflowId: id });
  }

  async time(persisted: boolean, h: WorkflowHandle): Promise<number> {
    const t = performance.now();
    await h.executeUpdate(persisted ? incrementPersisted : increment, { args: [1] });
    return performance.now() - t;
  }

  /** `callers` callers at once, each on its own workflow, `each` updates one after the other. */
  async updates(callers: number, each: number, persisted: boolean): Promise<number[]> {
    const latencies: number[] = [];
    await Promise.all(
      this.handles.slice(0, callers).map(async (h) => {
        for (let i = 0; i < each; i++) latencies.push(await this.time(persisted, h));
      }),
    );
    return latencies;
  }

  async stop(): Promise<void> {
    this.worker.shutdown();
    await this.running;
    await this.nativeConnection.close();
    await this.client.connection.close();
  }

  get idPrefix(): string {
    return this.prefix;
  }
}

export async function measureFloor(rig: FloorRig, scale: number, counts: { starts: number }): Promise<Floor> {
  const sequentialCount = Math.max(50, Math.round(400 * scale));
  const concurrentEach = Math.max(10, Math.round(60 * scale));
  const measure = async (persisted: boolean) => {
    await rig.updates(1, 20, persisted);
    const sequential = await rig.updates(1, sequentialCount, persisted);
    const concurrent = await rig.updates(10, concurrentEach, persisted);
    return { sequential: summary(sequential), concurrent: summary(concurrent) };
  };
  const bare = await measure(false);
  const persisted = await measure(true);

  // History events per update awaiting one activity, on a workflow of its own.
  const counted = await rig.start(`${rig.idPrefix}-counted`);
  await rig.time(true, counted);
  const before = await historyLength(counted);
  for (let i = 0; i < 10; i++) await rig.time(true, counted);
  const history_events_per_update = round(((await historyLength(counted)) - before) / 10, 2);

  // Throughput: 50 callers, each on its own workflow, as the 50-agent custody run.
  const each = Math.max(5, Math.round(20 * scale));
  const t0 = performance.now();
  await rig.updates(50, each, true);
  const with_activity_throughput_per_second = round((50 * each) / ((performance.now() - t0) / 1000), 1);

  // Starts, as an import makes them: a window of 32 in flight.
  const window = 32;
  const ids = Array.from({ length: counts.starts }, (_, i) => `${rig.idPrefix}-start-${i}`);
  const s0 = performance.now();
  await inWindow(ids, window, async (id) => void (await rig.start(id)));
  const startSeconds = (performance.now() - s0) / 1000;

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
