/**
 * Finds a Temporal CLI to run the dev server with, building it from Go modules when needed.
 * Order: TEMPORAL_CLI_PATH; `temporal` on PATH; the per-user build cache; `go install` into that
 * cache (first run only); otherwise null, and the caller falls back to the SDK's own download.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
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

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err) => resolve({ code: -1, output: String(err) }));
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/**
 * Builds the CLI into the cache once. A lock directory keeps two processes (two test runs, a test
 * run and `npm start`) from building at the same time; the loser waits for the winner's binary.
 */
async function buildWithGo(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<string | null> {
  const go = onPath('go', env) ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : null);
  if (!go) return null;
  const dir = temporalCliCacheDir(env);
  const binary = join(dir, 'temporal');
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, '.building');
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (isExecutable(binary)) return binary;
      // A lock older than the longest plausible build belongs to a dead process.
      if (Date.now() - statSync(lock).mtimeMs > 20 * 60_000) rmSync(lock, { recursive: true, force: true });
      if (Date.now() > deadline) return null;
      await sleep(2000);
    }
  }
  try {
    if (isExecutable(binary)) return binary;
    log(
      `building the Temporal dev server (${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}), first run only, a few minutes...`,
    );
    const started = Date.now();
    const result = await run(go, ['install', `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`], {
      ...env,
      GOBIN: dir,
      CGO_ENABLED: env.CGO_ENABLED ?? '0',
    });
    if (result.code !== 0 || !isExecutable(binary)) {
      log(`building the Temporal dev server failed:\n${result.output.split('\n').slice(-15).join('\n')}`);
      return null;
    }
    log(`built the Temporal dev server in ${Math.round((Date.now() - started) / 1000)} s: ${binary}`);
    return binary;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Returns the path of a usable `temporal` binary, or null when only the SDK's download is left. */
export async function locateTemporalCli(
  options: { explicitPath?: string; env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
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
  return buildWithGo(env, log);
}
