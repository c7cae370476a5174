/**
 * Fault 6: `npm start` supervises what it runs. Its Temporal dev server and its embedded
 * PostgreSQL are each SIGKILLed; the supervisor starts them again, the worker and the gateway
 * reconnect, /health is ok within 30 s, and an action accepted around the crash is not lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { locateTemporalCli } from '../../src/temporal/cli.js';
import { freePort } from '../global-setup.js';
import { Api, createTeam, importBacklog, oneStoryBacklog, type Team } from '../support/api.js';

const RECOVERY_LIMIT_MS = 30_000;
const dataDir = mkdtempSync(join(tmpdir(), 'custody-supervision-'));
// The embedded PostgreSQL runs as the `postgres` user when started by root: it must reach the folder.
chmodSync(dataDir, 0o755);

let main: ChildProcess;
let output = '';
let api: Api;
let team: Team;
let story: { id: string; title: string };

/** Every process: pid, parent pid and command line (for finding children, and for failure messages). */
function processes(): { pid: number; ppid: number; cmdline: string }[] {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      found.push({ pid: Number(entry), ppid, cmdline });
    } catch {
      // The process went away while we looked.
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (a restart may be under way) for `find` to name a live process; fails with what was running. */
async function waitForPid(what: string, find: () => number | undefined, timeoutMs = 15_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = find();
    if (pid !== undefined && alive(pid)) return pid;
    if (Date.now() > deadline) {
      const tree = processes()
        .map((p) => `${p.pid} ${p.ppid} ${p.cmdline.slice(0, 120)}`)
        .join('\n');
      throw new Error(`no ${what} after ${timeoutMs} ms; processes:\n${tree}\noutput:\n${output.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The Temporal dev server: the child of `npm start` running `server start-dev`. */
const temporalPid = () =>
  waitForPid('Temporal dev server', () => {
    const child = processes().find((p) => p.ppid === main.pid && /server start-dev/.test(p.cmdline));
    return child?.pid;
  });

/** The embedded PostgreSQL's postmaster, as its own pid file names it (wherever its cluster lives). */
const postgresPid = () =>
  waitForPid('embedded PostgreSQL postmaster', () => {
    try {
      const pid = Number(readFileSync(join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  });

async function healthy(): Promise<boolean> {
  try {
    const res = await fetch(`${api.baseUrl}/health`, { signal: AbortSignal.timeout(3000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

/** SIGKILLs the child, then measures how long until /health answers ok again. */
async function killAndMeasure(find: () => Promise<number>): Promise<number> {
  const pid = await find();
  process.kill(pid, 'SIGKILL');
  const killedAt = Date.now();
  // First the gateway sees it down (or the restart is quicker than a probe), then up again.
  while (Date.now() - killedAt < 60_000) {
    if ((await healthy()) && (await find()) !== pid) return Date.now() - killedAt;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`not healthy 60 s after SIGKILL of ${pid}: ${output.slice(-2000)}`);
}

beforeAll(async () => {
  const ports = {
    PORT: await freePort(),
    TEMPORAL_PORT: await freePort(),
    TEMPORAL_UI_PORT: await freePort(),
    EMBEDDED_POSTGRES_PORT: await freePort(),
  };
  const executable = await locateTemporalCli({ explicitPath: process.env.TEMPORAL_CLI_PATH || undefined });
  if (!executable) throw new Error('no Temporal CLI');
  main = spawn(process.execPath, ['--import', 'tsx', 'src/bin/main.ts'], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/root',
      CUSTODY_DATA_DIR: dataDir,
      TEMPORAL_CLI_PATH: executable,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '0',
      ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  main.stdout!.on('data', (d) => (output += d));
  main.stderr!.on('data', (d) => (output += d));
  const deadline = Date.now() + 180_000;
  while (!output.includes('custody is running')) {
    if (main.exitCode !== null) throw new Error(`start-up exited ${main.exitCode}: ${output}`);
    if (Date.now() > deadline) throw new Error(`start-up did not finish: ${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  api = new Api(`http://127.0.0.1:${ports.PORT}`);
  team = await createTeam(api, 2, 'supervised');
  story = (await importBacklog(api, team, oneStoryBacklog())).get('1.1');
});

afterAll(async () => {
  if (main && main.exitCode === null) {
    const exited = new Promise((r) => main.once('exit', r));
    main.kill('SIGINT');
    await exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe('fault 6: npm start supervises Temporal and PostgreSQL', () => {
  it('restarts each after a SIGKILL; /health is ok within 30 s and nothing accepted is lost', async () => {
    const implementer = team.agents[0].key;
    const contract = await api.act(story.id, 'contract', implementer, { story_title: story.title, ac_count: 3 });
    expect(contract.status).toBe(200);

    const temporalMs = await killAndMeasure(temporalPid);
    expect(output.match(/the Temporal dev server exited unexpectedly/g)).toHaveLength(1);
    const claim = await api.act(story.id, 'claim', implementer, {}, { 'Idempotency-Key': 'claim-after-temporal' });
    expect(claim.status).toBe(200);

    // An action sent as PostgreSQL dies: accepted by the story, written once the database is back.
    const pgPid = await postgresPid();
    process.kill(pgPid, 'SIGKILL');
    const killedAt = Date.now();
    const during = api.act(story.id, 'start', implementer, {}, { 'Idempotency-Key': 'start-during-pg' });
    let postgresMs = -1;
    while (Date.now() - killedAt < 60_000) {
      if ((await healthy()) && (await postgresPid()) !== pgPid) {
        postgresMs = Date.now() - killedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(postgresMs, output.slice(-2000)).toBeGreaterThan(0);
    expect(output.match(/the embedded PostgreSQL exited unexpectedly/g)).toHaveLength(1);
    expect([200, 503, 504]).toContain((await during).status);

    // Nothing accepted is lost: the start is in the projection and the history, each number once.
    let row: any;
    for (const until = Date.now() + 30_000; Date.now() < until;) {
      row = (await api.get(`/api/v1/stories/${story.id}`, implementer)).body.data;
      if (row?.agent_status === 'implementing') break;
      const retry = await api.act(story.id, 'start', implementer, {}, { 'Idempotency-Key': 'start-during-pg' });
      if (retry.status === 200) continue;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(row.agent_status).toBe('implementing');
    const history = (await api.get(`/api/v1/stories/${story.id}/history`, team.admin.key)).body.data;
    const seqs = history
      .filter((h: { outcome: string }) => h.outcome === 'accepted')
      .map((h: { seq: number }) => h.seq);
    expect(seqs).toEqual([1, 2, 3]);
    expect((await api.get('/api/v1/audit/verify', team.admin.key)).body.data.ok).toBe(true);

    console.log(
      JSON.stringify({
        fault: 'npm start supervision (SIGKILL, restart by the supervisor)',
        temporal_recovery_ms: temporalMs,
        postgres_recovery_ms: postgresMs,
      }),
    );
    expect(temporalMs).toBeLessThan(RECOVERY_LIMIT_MS);
    expect(postgresMs).toBeLessThan(RECOVERY_LIMIT_MS);
  });
});
