/**
 * Servers an earlier `npm start` on this data folder left running. A start that was SIGKILLed (or
 * died of an OOM kill) could not stop its children: the Temporal dev server and the embedded
 * PostgreSQL go on holding their ports and their files, and the next start would fail on them.
 * Each leaves a pid file in the data folder (PostgreSQL its own `postmaster.pid`, the dev server
 * `temporal.pid`, written by src/temporal/dev-server.ts); a pid is trusted only when /proc shows
 * that very program on this folder's files, so a pid reused by anything else is never signalled.
 * Runs once this start holds the data folder (src/startup/data-folder.ts), so no live start owns them.
 */
import { readFileSync, realpathSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { descendantsOf } from './descendants.js';

export const TEMPORAL_PID_FILE = 'temporal.pid';

/** A process's arguments, or null when it is gone, a zombie, or not ours to read. */
function argvOf(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return null;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return null;
  }
}

function pidIn(file: string): number | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const pid = Number.parseInt(text.split('\n')[0], 10);
  return Number.isSafeInteger(pid) && pid > 1 && pid !== process.pid ? pid : null;
}

function samePath(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return resolve(a) === resolve(b);
  }
}

/** The value after `flag` in `argv`. */
function option(argv: string[], flag: string): string | undefined {
  const at = argv.indexOf(flag);
  return at >= 0 ? argv[at + 1] : undefined;
}

/** The dev server `npm start` runs on this folder: `temporal server start-dev … --db-filename <dir>/temporal.sqlite`. */
function isOurDevServer(argv: string[], dataDir: string): boolean {
  const db = option(argv, '--db-filename');
  return argv.includes('start-dev') && db !== undefined && samePath(db, join(dataDir, 'temporal.sqlite'));
}

/** The postmaster of this folder's cluster: `…/postgres -D <dir>/postgres …` (the folder may be a link). */
function isOurPostmaster(argv: string[], dataDir: string): boolean {
  const cluster = option(argv, '-D');
  return (
    basename(argv[0] ?? '') === 'postgres' && cluster !== undefined && samePath(cluster, join(dataDir, 'postgres'))
  );
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already.
  }
}

async function goneWithin(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (argvOf(pid) !== null) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** Asks `pid` to stop with `polite`, then kills it (and what it had started) if it has not after `graceMs`. */
async function stop(pid: number, polite: NodeJS.Signals, graceMs: number): Promise<void> {
  // A postmaster's backends outlive it for a moment: they are waited for too.
  const children = descendantsOf(pid);
  signal(pid, polite);
  if (!(await goneWithin(pid, graceMs))) signal(pid, 'SIGKILL');
  await goneWithin(pid, 5000);
  for (const child of children) {
    if (!(await goneWithin(child, 2000))) signal(child, 'SIGKILL');
  }
}

/**
 * Stops the dev server and the PostgreSQL that an earlier start on `dataDir` left behind, saying
 * so; returns the pids it stopped. Linux only (it reads /proc); elsewhere it finds nothing.
 */
export async function stopOrphans(dataDir: string, log: (line: string) => void): Promise<number[]> {
  const stopped: number[] = [];
  const temporalPidFile = join(dataDir, TEMPORAL_PID_FILE);
  const temporal = pidIn(temporalPidFile);
  if (temporal !== null) {
    const argv = argvOf(temporal);
    if (argv && isOurDevServer(argv, dataDir)) {
      log(`stopping the Temporal dev server (pid ${temporal}) an earlier npm start left running`);
      await stop(temporal, 'SIGTERM', 10_000);
      stopped.push(temporal);
    }
    rmSync(temporalPidFile, { force: true });
  }
  // PostgreSQL removes its own pid file when it stops, and ignores one whose process is gone.
  const postmaster = pidIn(join(dataDir, 'postgres', 'postmaster.pid'));
  if (postmaster !== null) {
    const argv = argvOf(postmaster);
    if (argv && isOurPostmaster(argv, dataDir)) {
      log(`stopping the embedded PostgreSQL (pid ${postmaster}) an earlier npm start left running`);
      // SIGINT is its fast shutdown: sessions end, the data is flushed.
      await stop(postmaster, 'SIGINT', 15_000);
      stopped.push(postmaster);
    }
  }
  return stopped;
}
