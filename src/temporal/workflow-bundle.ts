/**
 * The workflow bundle: `workflows/` compiled by webpack (through the Temporal SDK) into one file.
 * Run as a script (`node --import tsx src/temporal/workflow-bundle.ts <out.js>`) it writes the
 * bundle there; the worker runs it so as a child process, so webpack never lives in the worker's
 * own memory (about 200 MB it would keep for its whole life).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../../workflows/index.ts', import.meta.url));
/**
 * Loaded once per workflow thread and shared by every workflow in it, not instantiated again per
 * cached workflow: the signature check (noble's curve and its tables, the trusted keys' decoded
 * points). Stateless but for caches whose content never changes an answer.
 */
const SHARED_MODULES = [fileURLToPath(new URL('../custody/identity.ts', import.meta.url))];
const THIS_FILE = fileURLToPath(import.meta.url);
const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Bundles the workflows into `out` (errors only are logged, to stderr). */
export async function writeWorkflowBundle(out: string): Promise<void> {
  const noop = () => undefined;
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    preloadModules: SHARED_MODULES,
    logger: {
      log: noop,
      trace: noop,
      debug: noop,
      info: noop,
      warn: noop,
      error: (message: string) => void process.stderr.write(`${message}\n`),
    },
  });
  writeFileSync(out, code);
}

/**
 * Bundles the workflows in a child process and returns the bundle's path (in a fresh temporary
 * folder, the caller's to remove): webpack's memory goes away with the child.
 */
export async function bundleWorkflowsInChild(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'custody-workflows-'));
  const out = join(dir, 'workflow-bundle.js');
  // From the project's root, wherever the worker was started from, so `tsx` resolves.
  const child = spawn(process.execPath, ['--import', 'tsx', THIS_FILE, out], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`bundling the workflows failed (exit ${code}): ${stderr.trim().split('\n').slice(-5).join(' | ')}`);
  }
  return out;
}

// Run as the script itself; not when compiled into an entry point (dist/bin/*.js), which is then THIS_FILE too.
if (process.argv[1] === THIS_FILE && /workflow-bundle\.[jt]s$/.test(THIS_FILE)) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write('usage: workflow-bundle <out.js>\n');
    process.exit(2);
  }
  await writeWorkflowBundle(out);
}
