/**
 * Once per test run: one real Temporal dev server (in memory, random port) and one workflow
 * bundle for every test file. Each file gets its own database and task queue (test/support/stack.ts).
 */
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildClients } from '../src/bin/build-clients.js';
import { locateTemporalCli } from '../src/temporal/cli.js';
import { startDevServer, type DevServer } from '../src/temporal/dev-server.js';
import { writeWorkflowBundle } from '../src/temporal/workflow-bundle.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalCliPath: string;
    workflowBundlePath: string;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let server: DevServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  // The MCP server and the CLI are tested as shipped: compiled afresh (esbuild, tens of ms).
  await buildClients();
  const executable = await locateTemporalCli({ explicitPath: process.env.TEMPORAL_CLI_PATH || undefined });
  if (!executable)
    throw new Error('no Temporal CLI: install Go so the dev server can be built, or set TEMPORAL_CLI_PATH');
  const dir = mkdtempSync(join(tmpdir(), 'custody-test-'));
  server = await startDevServer({ executable, port: await freePort(), logFile: join(dir, 'temporal.log') });
  // The bundle as the build makes it (its shared modules included).
  const bundlePath = join(dir, 'workflow-bundle.js');
  await writeWorkflowBundle(bundlePath);
  project.provide('temporalAddress', server.address);
  project.provide('temporalCliPath', executable);
  project.provide('workflowBundlePath', bundlePath);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
