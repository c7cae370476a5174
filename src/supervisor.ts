/**
 * Keeps a child service running for `npm start`: when it dies (a crash, a SIGKILL), it is started
 * again after a backoff, with one log line per crash (and one per failed restart attempt). The
 * clients of the service (the worker's and gateway's Temporal connections, the PostgreSQL pool)
 * reconnect by themselves once it answers again.
 */

export interface RunningService {
  /** Settles when the process is gone, whatever the reason. */
  exited: Promise<unknown>;
  pid: number | undefined;
  stop(): Promise<void>;
}

export interface SupervisorOptions {
  name: string;
  start: () => Promise<RunningService>;
  log: (line: string) => void;
  /** First delay before a restart; doubled after each failed attempt, up to `maxDelayMs`. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** A service that ran this long before it died is restarted after the initial delay again. */
  stableAfterMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Supervisor {
  private stopping = false;
  private watching: Promise<void> = Promise.resolve();
  private wake: () => void = () => undefined;
  private readonly stopped = new Promise<void>((resolve) => (this.wake = resolve));
  /** Restarts so far (successful ones). */
  restarts = 0;

  private constructor(
    private readonly options: SupervisorOptions,
    private current: RunningService,
  ) {}

  /** Starts the service (a failure here is the caller's: nothing is running yet) and watches it. */
  static async start(options: SupervisorOptions): Promise<Supervisor> {
    const supervisor = new Supervisor(options, await options.start());
    supervisor.watching = supervisor.watch();
    return supervisor;
  }

  get pid(): number | undefined {
    return this.current.pid;
  }

  private async watch(): Promise<void> {
    const { name, log } = this.options;
    const initial = this.options.initialDelayMs ?? 500;
    const max = this.options.maxDelayMs ?? 30_000;
    const stableAfter = this.options.stableAfterMs ?? 60_000;
    let delay = initial;
    let startedAt = Date.now();
    for (;;) {
      await this.current.exited;
      if (this.stopping) return;
      if (Date.now() - startedAt >= stableAfter) delay = initial;
      log(`${name} exited unexpectedly; restarting it in ${delay} ms`);
      for (;;) {
        await Promise.race([sleep(delay), this.stopped]);
        if (this.stopping) return;
        delay = Math.min(delay * 2, max);
        try {
          this.current = await this.options.start();
          break;
        } catch (err) {
          log(
            `${name} did not start again (${err instanceof Error ? err.message : String(err)}); ` +
              `next try in ${delay} ms`,
          );
        }
      }
      if (this.stopping) {
        await this.current.stop();
        return;
      }
      this.restarts++;
      startedAt = Date.now();
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.current.stop();
    await this.watching;
  }
}
