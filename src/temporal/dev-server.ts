/**
 * Runs the Temporal CLI's dev server as a child process: persistent SQLite file, Web UI, the
 * story workflow's search attributes, and an in-flight update limit high enough for claim races.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Connection } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import { STORY_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes.js';

export interface DevServerOptions {
  executable: string;
  port: number;
  uiPort?: number;
  /** SQLite file; omitted means in memory (tests). */
  dbFilename?: string;
  logFile?: string;
  /** Holds the server's pid while it runs, so a start after a crash of ours can find it (src/startup/orphans.ts). */
  pidFile?: string;
  namespace?: string;
  /** More `key=value` dynamic config settings (after the defaults, so they win). */
  dynamicConfig?: string[];
}

export interface DevServer {
  address: string;
  uiUrl: string | null;
  process: ChildProcess;
  pid: number | undefined;
  /** Settles when the server process is gone (stopped, crashed or killed). */
  exited: Promise<void>;
  stop(): Promise<void>;
}

export function devServerArgs(options: DevServerOptions): string[] {
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(options.port), '--log-level', 'warn'];
  if (options.uiPort) args.push('--ui-port', String(options.uiPort));
  else args.push('--headless');
  if (options.dbFilename) args.push('--db-filename', options.dbFilename);
  if (options.namespace && options.namespace !== 'default') args.push('--namespace', options.namespace);
  for (const key of STORY_SEARCH_ATTRIBUTES) {
    args.push('--search-attribute', `${key.name}=${key.type === SearchAttributeType.INT ? 'Int' : 'Keyword'}`);
  }
  // Claim races send dozens of concurrent updates to one story; the default admits 10 in flight.
  args.push('--dynamic-config-value', 'history.maxInFlightUpdates=200');
  // The dev server has one history shard, whose transfer queue is read at most 20 times a second
  // by default: each activity then waits up to 50 ms to be dispatched, and its result as long
  // again to wake the workflow (measured: an update awaiting a no-op activity took 100 ms, 22 ms
  // with these two). Eager dispatch hands an activity to the worker that scheduled it directly.
  args.push('--dynamic-config-value', 'history.transferProcessorMaxPollRPS=10000');
  args.push('--dynamic-config-value', 'system.enableActivityEagerExecution=true');
  for (const setting of options.dynamicConfig ?? []) args.push('--dynamic-config-value', setting);
  return args;
}

async function waitUntilServing(
  address: string,
  namespace: string,
  child: ChildProcess,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the Temporal dev server exited with code ${child.exitCode}`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
        const missing = STORY_SEARCH_ATTRIBUTES.filter((k) => !(k.name in (customAttributes ?? {})));
        if (missing.length === 0) return;
        lastError = new Error(`search attributes not registered yet: ${missing.map((k) => k.name).join(', ')}`);
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the Temporal dev server did not come up in ${timeoutMs} ms: ${String(lastError)}`);
}

function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The last error the server logged since `from` (its JSON `msg` and `error`, or the raw line). */
function lastLogError(file: string, from: number): string {
  let text: string;
  try {
    text = readFileSync(file).subarray(from).toString('utf8');
  } catch {
    return '';
  }
  const lines = text.split('\n').filter((l) => /error|fatal|panic|fail/i.test(l));
  const last = lines.at(-1)?.trim();
  if (!last) return '';
  try {
    const entry = JSON.parse(last) as { msg?: string; error?: string };
    return [entry.msg, entry.error].filter(Boolean).join(': ').slice(0, 300);
  } catch {
    return last.slice(0, 300);
  }
}

export async function startDevServer(options: DevServerOptions, timeoutMs = 60_000): Promise<DevServer> {
  if (options.dbFilename) mkdirSync(dirname(options.dbFilename), { recursive: true });
  let stdio: ['ignore', number | 'ignore', number | 'ignore'] = ['ignore', 'ignore', 'ignore'];
  if (options.logFile) {
    mkdirSync(dirname(options.logFile), { recursive: true });
    const fd = openSync(options.logFile, 'a');
    stdio = ['ignore', fd, fd];
  }
  const logStart = options.logFile ? logSize(options.logFile) : 0;
  const child = spawn(options.executable, devServerArgs(options), { stdio });
  // The child has its own copy of the log's descriptor.
  if (typeof stdio[1] === 'number') closeSync(stdio[1]);
  const { pidFile } = options;
  if (pidFile && child.pid !== undefined) {
    const pid = String(child.pid);
    writeFileSync(pidFile, `${pid}\n`);
    child.once('exit', () => {
      try {
        if (readFileSync(pidFile, 'utf8').trim() === pid) rmSync(pidFile, { force: true });
      } catch {
        // Already gone.
      }
    });
  }
  const address = `127.0.0.1:${options.port}`;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (err) => ((spawnError = err), resolve()));
    child.once('exit', () => resolve());
  });
  try {
    await Promise.race([
      waitUntilServing(address, options.namespace ?? 'default', child, timeoutMs),
      exited.then(() => {
        throw spawnError
          ? new Error(`cannot run ${options.executable}: ${spawnError.message}`)
          : new Error(`the Temporal dev server exited with code ${child.exitCode ?? child.signalCode}`);
      }),
    ]);
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null && !spawnError) {
      child.kill('SIGKILL');
      await exited;
    }
    const reason = options.logFile ? lastLogError(options.logFile, logStart) : '';
    if (!reason) throw err;
    throw new Error(`${(err as Error).message}: ${reason} (log: ${options.logFile})`, { cause: err });
  }
  return {
    address,
    uiUrl: options.uiPort ? `http://localhost:${options.uiPort}` : null,
    process: child,
    pid: child.pid,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
