/**
 * Builds Go programs from their modules into a per-user cache folder, once: the Temporal CLI (dev
 * server) and the real Temporal server are both built this way on a machine without them.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

/** `~/.cache/custody/<name>` (or under XDG_CACHE_HOME). */
export function custodyCacheDir(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'custody', name);
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export function onPath(name: string, env: NodeJS.ProcessEnv): string | null {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return null;
}

export function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd?: string,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err) => resolve({ code: -1, output: String(err) }));
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function goExecutable(env: NodeJS.ProcessEnv): string | null {
  return onPath('go', env) ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : null);
}

export interface GoInstall {
  /** What the log lines call it ("the Temporal dev server"). */
  label: string;
  /** The cache folder the binaries are installed into (GOBIN). */
  dir: string;
  /** `module/path/cmd/x@version`, one or more (several must share a module and version). */
  packages: string[];
  /** The files in `dir` that make the build complete (binaries, and whatever `after` copies). */
  outputs: string[];
  /** Runs after a successful `go install`, still under the lock (e.g. copy files out of the module). */
  after?: (go: string, env: NodeJS.ProcessEnv) => Promise<void>;
  /** How long a build may take, and how long another process waits for it (default 30 min). */
  timeoutMs?: number;
}

function complete(spec: GoInstall): boolean {
  return spec.outputs.every((name) => {
    try {
      return statSync(join(spec.dir, name)).size > 0;
    } catch {
      return false;
    }
  });
}

/**
 * Runs `go install` into the cache once; null if Go is missing or the build failed. A lock folder
 * keeps two processes (two test runs, a test run and `npm start`) from building at the same time;
 * the loser waits for the winner's outputs.
 */
export async function goInstallOnce(
  spec: GoInstall,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<boolean> {
  if (complete(spec)) return true;
  const go = goExecutable(env);
  if (!go) return false;
  const timeoutMs = spec.timeoutMs ?? 30 * 60_000;
  mkdirSync(spec.dir, { recursive: true });
  const lock = join(spec.dir, '.building');
  const deadline = Date.now() + timeoutMs;
  let waiting = false;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (complete(spec)) return true;
      if (!waiting) log(`waiting for another process building ${spec.label} (${lock})...`);
      waiting = true;
      // A lock older than the longest plausible build belongs to a dead process.
      if (Date.now() - statSync(lock).mtimeMs > timeoutMs) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) return false;
      await sleep(2000);
    }
  }
  try {
    if (complete(spec)) return true;
    log(`building ${spec.label} (${spec.packages.join(' ')}), first run only, a few minutes...`);
    const started = Date.now();
    const buildEnv = { ...env, GOBIN: spec.dir, CGO_ENABLED: env.CGO_ENABLED ?? '0' };
    const result = await run(go, ['install', ...spec.packages], buildEnv);
    if (result.code === 0 && spec.after) await spec.after(go, buildEnv);
    if (result.code !== 0 || !complete(spec)) {
      log(`building ${spec.label} failed:\n${result.output.split('\n').slice(-15).join('\n')}`);
      return false;
    }
    log(`built ${spec.label} in ${Math.round((Date.now() - started) / 1000)} s: ${spec.dir}`);
    return true;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
