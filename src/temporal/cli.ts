/**
 * Finds a Temporal CLI to run the dev server with, building it from Go modules when needed.
 * Order: TEMPORAL_CLI_PATH; `temporal` on PATH; the per-user build cache; `go install` into that
 * cache (first run only, printing its progress); otherwise (no Go) null.
 */
import { spawn } from 'node:child_process';
import {
  accessSync,
  constants,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';
/** Later tags carry a `replace` directive in go.mod and cannot be `go install`ed. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';

export function temporalCliCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'custody', `temporal-cli-${TEMPORAL_CLI_VERSION}`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | null {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** The last line a build wrote that says what it is doing: a module downloading, a package compiling. */
class BuildProgress {
  downloads = 0;
  compiled = 0;
  current = '';
  private pending = '';
  push(chunk: string): void {
    const lines = (this.pending + chunk).split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines.map((l) => l.trim()).filter(Boolean)) {
      const download = /^go: downloading (\S+) (\S+)/.exec(line);
      if (download) {
        this.downloads++;
        this.current = `downloading ${download[1]} ${download[2]}`;
      } else if (/^[\w.-]+(\/[\w.~-]+)+$/.test(line)) {
        // `go install -v` prints each package as it is compiled.
        this.compiled++;
        this.current = `compiling ${line}`;
      }
    }
  }
  describe(): string {
    const counts = [`${this.downloads} modules downloaded`, `${this.compiled} packages compiled`].join(', ');
    return this.current ? `${counts}; now ${this.current}` : counts;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a build lock belongs to a process that is gone (its pid), or is older than any build. */
function staleLock(lock: string): boolean {
  try {
    const pid = Number.parseInt(readFileSync(join(lock, 'pid'), 'utf8'), 10);
    if (Number.isInteger(pid) && pid > 0) return !isAlive(pid);
  } catch {
    // Written by an older version, or not yet: fall back on its age.
  }
  try {
    return Date.now() - statSync(lock).mtimeMs > 20 * 60_000;
  } catch {
    return false;
  }
}

const seconds = (since: number) => `${Math.round((Date.now() - since) / 1000)} s`;

export interface BuildOptions {
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
  /** How often a build in progress prints what it is doing (default 15 s). */
  progressEveryMs?: number;
  /** Stops the build (Ctrl-C during a first start): `go` and everything it runs are ended. */
  signal?: AbortSignal;
}

/** Runs `go install -v` in its own process group, printing progress; the output is kept in `logFile`. */
async function goInstall(go: string, dir: string, logFile: string, options: BuildOptions): Promise<number> {
  const { env, log, signal } = options;
  const started = Date.now();
  const progress = new BuildProgress();
  const output = createWriteStream(logFile);
  const child = spawn(go, ['install', '-v', `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`], {
    env: { ...env, GOBIN: dir, CGO_ENABLED: env.CGO_ENABLED ?? '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const onData = (d: Buffer) => (output.write(d), progress.push(d.toString()));
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const killGroup = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  signal?.addEventListener('abort', killGroup, { once: true });
  const ticker = setInterval(
    () => log(`building the Temporal dev server: ${seconds(started)} so far (${progress.describe()})`),
    options.progressEveryMs ?? 15_000,
  );
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (err) => reject(new Error(`cannot run ${go}: ${err.message}`)));
      child.once('close', (code) => resolve(code ?? -1));
    });
  } finally {
    clearInterval(ticker);
    signal?.removeEventListener('abort', killGroup);
    // Whatever `go` left running (it was stopped mid-build) goes with it.
    killGroup();
    await new Promise((r) => output.end(r));
  }
}

/** `go` on PATH, else in GOROOT (default /usr/local/go, where Go's own installer puts it). */
function findGo(env: NodeJS.ProcessEnv): string | null {
  const fromRoot = join(env.GOROOT || '/usr/local/go', 'bin', 'go');
  return onPath('go', env) ?? (isExecutable(fromRoot) ? fromRoot : null);
}

/**
 * Builds the CLI into the cache once. A lock directory keeps two processes (two test runs, a test
 * run and `npm start`) from building at the same time; the loser waits for the winner's binary.
 * Returns null without Go; throws when the build fails.
 */
async function buildWithGo(options: BuildOptions): Promise<string | null> {
  const { env, log } = options;
  const go = findGo(env);
  if (!go) return null;
  const dir = temporalCliCacheDir(env);
  const binary = join(dir, 'temporal');
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, '.building');
  const waitingSince = Date.now();
  let lastWaitNote = 0;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      if (isExecutable(binary)) return binary;
      if (staleLock(lock)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() - waitingSince > 30 * 60_000) throw new Error(`another build holds ${lock} for 30 minutes`);
      if (Date.now() - lastWaitNote >= (options.progressEveryMs ?? 15_000)) {
        lastWaitNote = Date.now();
        log(`another process is building the Temporal dev server: waiting for it, ${seconds(waitingSince)} so far`);
      }
      if (options.signal?.aborted) throw new Error('stopped while waiting for the Temporal CLI build');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    if (isExecutable(binary)) return binary;
    log(
      `building the Temporal dev server (${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}), first run only, ` +
        'a few minutes; progress every 15 s...',
    );
    const started = Date.now();
    const logFile = join(dir, 'build.log');
    const code = await goInstall(go, dir, logFile, options);
    if (options.signal?.aborted) throw new Error('the Temporal CLI build was stopped');
    if (code !== 0 || !isExecutable(binary)) {
      throw new Error(`go install failed (exit ${code}); its output is in ${logFile}`);
    }
    log(`built the Temporal dev server in ${seconds(started)}: ${binary}`);
    return binary;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Returns the path of a usable `temporal` binary, or null when only the SDK's download is left. */
export async function locateTemporalCli(
  options: {
    explicitPath?: string;
    env?: NodeJS.ProcessEnv;
    log?: (line: string) => void;
    progressEveryMs?: number;
    signal?: AbortSignal;
  } = {},
): Promise<string | null> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (options.explicitPath) {
    if (!isExecutable(options.explicitPath)) {
      throw new Error(`TEMPORAL_CLI_PATH=${options.explicitPath} is not an executable file`);
    }
    return options.explicitPath;
  }
  const fromPath = onPath('temporal', env);
  if (fromPath) return fromPath;
  const cached = join(temporalCliCacheDir(env), 'temporal');
  if (existsSync(cached) && isExecutable(cached)) return cached;
  return buildWithGo({ env, log, progressEveryMs: options.progressEveryMs, signal: options.signal });
}
