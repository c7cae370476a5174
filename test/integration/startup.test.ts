/**
 * `npm start`'s code path with nothing configured: it starts its own Temporal dev server and an
 * embedded PostgreSQL under its data folder, migrates, and serves; a restart keeps the data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { freePort } from '../global-setup.js';
import { Api } from '../support/api.js';

const dataDir = mkdtempSync(join(tmpdir(), 'custody-start-'));
// The embedded PostgreSQL runs as the `postgres` user when started by root: it must reach the folder.
chmodSync(dataDir, 0o755);
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function boot(ports: Record<string, number>): Promise<{ child: ChildProcess; output: () => string }> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    CUSTODY_DATA_DIR: dataDir,
    TEMPORAL_CLI_PATH: inject('temporalCliPath'),
    HOST: '127.0.0.1',
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/bin/main.ts'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const deadline = Date.now() + 150_000;
  while (!output.includes('custody is running')) {
    if (child.exitCode !== null) throw new Error(`start-up exited ${child.exitCode}: ${output}`);
    if (Date.now() > deadline) throw new Error(`start-up did not finish: ${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { child, output: () => output };
}

/** Ctrl-C: the process ends (0, or 130 as for any SIGINT) and leaves no server behind. */
async function stop(child: ChildProcess, ports: Record<string, number>): Promise<void> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGINT');
  expect([0, 130]).toContain(await exited);
  for (const port of [ports.TEMPORAL_PORT, ports.EMBEDDED_POSTGRES_PORT, ports.PORT]) {
    expect(await listening(port), `port ${port} still open`).toBe(false);
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

describe('npm start on embedded defaults', () => {
  it('boots Temporal and PostgreSQL, migrates, answers /health, and keeps data across a restart', async () => {
    const ports = {
      PORT: await freePort(),
      TEMPORAL_PORT: await freePort(),
      TEMPORAL_UI_PORT: await freePort(),
      EMBEDDED_POSTGRES_PORT: await freePort(),
      TEMPORAL_METRICS_PORT: await freePort(),
    };
    const api = new Api(`http://127.0.0.1:${ports.PORT}`);
    const first = await boot(ports);
    const health = await api.get('/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok' });
    expect(first.output()).toContain(`Temporal UI  http://localhost:${ports.TEMPORAL_UI_PORT}`);
    // Our metrics and the Temporal SDK's worker metrics, on one page. The SDK exports a metric
    // once the worker has recorded it (its first polls), which can take a moment on a busy machine.
    let metrics = '';
    for (let attempt = 0; attempt < 30 && !/^temporal_\w+/m.test(metrics); attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 500));
      metrics = await fetch(`http://127.0.0.1:${ports.PORT}/metrics`).then((r) => r.text());
    }
    expect(metrics).toContain('custody_transitions_total');
    expect(metrics).toMatch(/^temporal_\w+/m);
    const ui = await fetch(`http://127.0.0.1:${ports.TEMPORAL_UI_PORT}/`);
    expect(ui.status).toBe(200);
    const signup = await api.post('/api/v1/tenants', undefined, { name: 'persisted' });
    expect(signup.status).toBe(201);
    const key = signup.body.data.api_key.key as string;
    await stop(first.child, ports);

    const second = await boot(ports);
    const me = await api.get('/api/v1/tenants/me', key);
    expect(me.status).toBe(200);
    expect(me.body.data.name).toBe('persisted');
    await stop(second.child, ports);
    // Two whole start-ups (PostgreSQL's initdb, the Temporal dev server, migrations) in one test.
  }, 300_000);

  it('stops with one readable line on a bad setting', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/bin/worker.ts'], {
      env: { PATH: process.env.PATH ?? '', PORT: 'not-a-port' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^configuration error: PORT /);
  });
});
