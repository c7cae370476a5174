/**
 * `npm start` as a new user meets it: from a private folder as root, as an ordinary user, and
 * every way it can fail to start (a port in use, no Go and no Temporal CLI, a data folder it cannot
 * write, a second start on the same folder, a database that does not answer). Each run is the real
 * `npm start`, as a child process in its own process group; each failure must end with exit code 1
 * and one line on stderr naming the part and the next step, and no process it started may be left
 * (the process table is read: its process group, and anything naming its data folder or ports).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../global-setup.js';

const PROJECT = fileURLToPath(new URL('../..', import.meta.url));
const isRoot = process.getuid?.() === 0;
const scratch = mkdtempSync(join(tmpdir(), 'custody-first-run-'));
// Folders below are made per case; this one only has to be enterable by the ordinary user.
chmodSync(scratch, 0o755);
const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

/** npm's own script, run by this Node: PATH then needs nothing but `node` and `sh`. */
const npmCli = (() => {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      return realpathSync(join(dir, 'npm'));
    } catch {
      // Not in this folder.
    }
  }
  throw new Error('npm not found on PATH');
})();

/** A folder holding only `node` and `sh`: a PATH with no `go` and no `temporal` on it. */
const bareBin = join(scratch, 'bin');
mkdirSync(bareBin);
symlinkSync(process.execPath, join(bareBin, 'node'));
symlinkSync('/bin/sh', join(bareBin, 'sh'));

interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** An ordinary (non-root) account: this one, or, under root, a system user made for these tests. */
function ordinaryAccount(): Account {
  if (!isRoot) return { name: 'me', uid: process.getuid!(), gid: process.getgid!() };
  const name = 'custody-firstrun';
  const lookUp = () => ({
    name,
    uid: Number(
      execFileSync('id', ['-u', name], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim(),
    ),
    gid: Number(
      execFileSync('id', ['-g', name], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim(),
    ),
  });
  try {
    return lookUp();
  } catch {
    try {
      execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', name]);
    } catch {
      // Another test file made it at the same moment.
    }
    return lookUp();
  }
}

/** A folder owned by `account`, private to it (mode 700). */
function privateFolder(account: Account | null, prefix: string): string {
  const dir = mkdtempSync(join(scratch, prefix));
  if (account && isRoot) chownSync(dir, account.uid, account.gid);
  return dir;
}

/** Something readable by every user: a hard link (or copy) of `file` in a folder of mode 755. */
function shared(file: string): string {
  const dir = mkdtempSync(join(scratch, 'shared-'));
  chmodSync(dir, 0o755);
  const target = join(dir, file.split('/').pop()!);
  try {
    linkSync(file, target);
  } catch {
    cpSync(file, target);
  }
  chmodSync(target, 0o755);
  return target;
}

async function ports() {
  return {
    PORT: await freePort(),
    TEMPORAL_PORT: await freePort(),
    TEMPORAL_UI_PORT: await freePort(),
    EMBEDDED_POSTGRES_PORT: await freePort(),
  };
}
type Ports = Awaited<ReturnType<typeof ports>>;

interface Start {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** Strings that only this start's processes carry on their command lines. */
  markers: string[];
}

function npmStart(options: {
  cwd?: string;
  env: Record<string, string>;
  ports: Ports;
  account?: Account | null;
  dataDir?: string;
}): Start {
  const { ports: p } = options;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    npm_config_update_notifier: 'false',
    ...Object.fromEntries(Object.entries(p).map(([k, v]) => [k, String(v)])),
    ...options.env,
  };
  const account = options.account && isRoot ? options.account : null;
  const child = spawn(process.execPath, [npmCli, 'start'], {
    cwd: options.cwd ?? PROJECT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, as a terminal gives it: Ctrl-C goes to the group, and the group is checked after.
    detached: true,
    ...(account ? { uid: account.uid, gid: account.gid } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code, signal) => r(code ?? 128 + sig(signal))));
  const markers = [`--port ${p.TEMPORAL_PORT} `, `-p ${p.EMBEDDED_POSTGRES_PORT} `];
  if (options.dataDir) markers.push(options.dataDir);
  return { child, stdout: () => stdout, stderr: () => stderr, exited, markers };
}

function sig(signal: NodeJS.Signals | null): number {
  return signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : signal === 'SIGKILL' ? 9 : 0;
}

/** Live processes in `group`, or whose command line carries one of `markers`. */
function processesOf(group: number, markers: string[]): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      const cmdline = `${readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ')} `;
      if (Number(pgrp) === group || markers.some((m) => cmdline.includes(m))) {
        found.push(`${entry}: ${cmdline.slice(0, 200)}`);
      }
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** Asserts that nothing the start ran is still alive (a moment's grace for the kernel to reap). */
async function expectNothingLeft(start: Start): Promise<void> {
  let left = processesOf(start.child.pid!, start.markers);
  for (let i = 0; i < 20 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = processesOf(start.child.pid!, start.markers);
  }
  expect(left, 'processes left behind').toEqual([]);
}

/** A failed start: exit code 1, exactly one line on stderr, and nothing left running. */
async function expectFailure(start: Start, line: RegExp): Promise<string> {
  expect(await start.exited, `stdout: ${start.stdout()}\nstderr: ${start.stderr()}`).toBe(1);
  const lines = start.stderr().trimEnd().split('\n');
  expect(lines, start.stderr()).toHaveLength(1);
  expect(lines[0]).toMatch(/^start-up failed: /);
  expect(lines[0]).toMatch(line);
  expect(start.stdout() + start.stderr()).not.toMatch(/^\s+at /m);
  await expectNothingLeft(start);
  return lines[0];
}

async function untilRunning(start: Start, timeoutMs = 150_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!start.stdout().includes('custody is running')) {
    if (start.child.exitCode !== null) throw new Error(`exited ${start.child.exitCode}: ${start.stderr()}`);
    if (Date.now() > deadline) throw new Error(`did not start: ${start.stdout()} ${start.stderr()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function expectHealthy(port: number): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/health`);
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ status: 'ok' });
}

/** Ctrl-C, as a terminal sends it (to the whole group): exit 130 or 0, and nothing left. */
async function ctrlC(start: Start): Promise<void> {
  process.kill(-start.child.pid!, 'SIGINT');
  expect([0, 130]).toContain(await start.exited);
  await expectNothingLeft(start);
}

function listenOn(port: number): Promise<Server> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => ok(server));
  });
}

const said = (label: string, line: string) => process.stdout.write(`[first-run] ${label}: ${line}\n`);

describe.skipIf(!isRoot)('npm start as root, from a private (mode 700) folder', () => {
  it('starts (PostgreSQL runs as `postgres` from files it can reach), answers /health, and stops tidily', async () => {
    // The whole project in a folder no other user may enter, as under /root: sources copied,
    // node_modules hard-linked (same files, no copy), the data folder left at its default, .data.
    const home = mkdtempSync(join(tmpdir(), 'custody-private-'));
    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    expect(lstatSync(home).mode & 0o777).toBe(0o700);
    const project = join(home, 'custody');
    mkdirSync(project);
    for (const part of ['package.json', 'tsconfig.json', 'src', 'workflows', 'activities', 'migrations']) {
      cpSync(join(PROJECT, part), join(project, part), { recursive: true });
    }
    execFileSync('cp', ['-al', join(PROJECT, 'node_modules'), join(project, 'node_modules')]);
    const cluster = join(project, '.data', 'postgres');
    cleanups.push(() => {
      // The cluster moved out of the private folder; it goes with the test.
      try {
        rmSync(resolve(dirname(cluster), readlinkSync(cluster)), { recursive: true, force: true });
      } catch {
        // Never made.
      }
    });
    const p = await ports();
    const start = npmStart({
      cwd: project,
      ports: p,
      dataDir: join(project, '.data'),
      env: { TEMPORAL_CLI_PATH: inject('temporalCliPath'), WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath') },
    });
    await untilRunning(start);
    await expectHealthy(p.PORT);
    expect(lstatSync(cluster).isSymbolicLink()).toBe(true);
    said(
      'root, private folder',
      start
        .stdout()
        .split('\n')
        .find((l) => l.includes('data folder is private'))!,
    );
    await ctrlC(start);
    expect(start.stderr()).toBe('');
  });
});

describe('npm start as an ordinary user', () => {
  const account = ordinaryAccount();
  const dataDir = join(privateFolder(account, 'user-'), 'data');
  // What that user can reach: the Temporal CLI and the workflow bundle (root's copies live under /root).
  const env = () => ({
    HOME: dirname(dataDir),
    TEMPORAL_CLI_PATH: shared(inject('temporalCliPath')),
    WORKFLOW_BUNDLE_PATH: shared(inject('workflowBundlePath')),
    CUSTODY_DATA_DIR: dataDir,
  });
  let first: Start;
  let firstPorts: Ports;

  it('starts and answers /health', async () => {
    firstPorts = await ports();
    first = npmStart({ env: env(), ports: firstPorts, account, dataDir });
    await untilRunning(first);
    await expectHealthy(firstPorts.PORT);
    expect(first.stderr()).toBe('');
  });

  it('a second npm start on the same data folder stops with one line, and the first runs on', async () => {
    const second = npmStart({ env: env(), ports: await ports(), account });
    const line = await expectFailure(
      second,
      new RegExp(`the data folder ${dataDir}: already in use by another npm start \\(pid \\d+\\); .*CUSTODY_DATA_DIR`),
    );
    said('second start on one data folder', line);
    await expectHealthy(firstPorts.PORT);
  });

  it('Ctrl-C stops it and leaves nothing behind', async () => {
    await ctrlC(first);
  });
});

/** A process's start time (in clock ticks since boot): with the pid, it names one process, never a reused pid. */
function startTime(pid: string): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? null : fields[19];
  } catch {
    return null;
  }
}

describe('npm start after the previous one was SIGKILLed', () => {
  it('stops the Temporal dev server and PostgreSQL it left running, starts, and nothing of the first run is left', async () => {
    const p = await ports();
    const dataDir = join(privateFolder(null, 'killed-'), 'data');
    const env = { CUSTODY_DATA_DIR: dataDir, TEMPORAL_CLI_PATH: inject('temporalCliPath') };
    const first = npmStart({ ports: p, dataDir, env });
    await untilRunning(first);
    await expectHealthy(p.PORT);
    // Every process of the first run, as pid and start time.
    const firstRun = processesOf(first.child.pid!, first.markers).map((line) => line.split(':')[0]);
    const identities = new Map(firstRun.map((pid) => [pid, startTime(pid)]));
    const main = readFileSync(join(dataDir, 'npm-start.pid'), 'utf8').trim();
    const temporal = readFileSync(join(dataDir, 'temporal.pid'), 'utf8').trim();
    const postmaster = readFileSync(join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0];
    expect(firstRun).toEqual(expect.arrayContaining([main, temporal, postmaster]));

    // Only the main process dies: its servers are orphaned, still holding their ports.
    process.kill(Number(main), 'SIGKILL');
    await first.exited;
    expect(startTime(temporal), 'the dev server outlived its npm start').not.toBeNull();
    expect(startTime(postmaster), 'PostgreSQL outlived its npm start').not.toBeNull();

    const second = npmStart({ ports: p, dataDir, env });
    await untilRunning(second);
    await expectHealthy(p.PORT);
    expect(second.stdout()).toContain(`stopping the Temporal dev server (pid ${temporal})`);
    expect(second.stdout()).toContain(`stopping the embedded PostgreSQL (pid ${postmaster})`);
    said(
      'start after a SIGKILL',
      second
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('stopping the'))
        .join(' / '),
    );
    const left = [...identities].filter(([pid, started]) => started !== null && startTime(pid) === started);
    expect(
      left.map(([pid]) => pid),
      'processes of the first run still alive',
    ).toEqual([]);
    await ctrlC(second);
  });
});

describe('start-up failures: exit code 1, one line, nothing left running', () => {
  it.each([
    ['PORT', 'the gateway'],
    ['TEMPORAL_PORT', 'the Temporal dev server'],
    ['EMBEDDED_POSTGRES_PORT', 'the embedded PostgreSQL'],
  ] as const)('a port in use (%s) names the port and the setting that moves it', async (setting, part) => {
    const p = await ports();
    const holder = await listenOn(p[setting]);
    try {
      const dataDir = join(privateFolder(null, 'port-'), 'data');
      const start = npmStart({
        ports: p,
        dataDir,
        env: { CUSTODY_DATA_DIR: dataDir, TEMPORAL_CLI_PATH: inject('temporalCliPath') },
      });
      const line = await expectFailure(
        start,
        new RegExp(`^start-up failed: ${part}: port ${p[setting]} is in use; .*set ${setting} to a free port$`),
      );
      said(`port in use (${setting})`, line);
    } finally {
      holder.close();
    }
  });

  it('no Go and no Temporal CLI: install Go, or set TEMPORAL_CLI_PATH', async () => {
    const home = privateFolder(null, 'nogo-');
    const dataDir = join(home, 'data');
    // PATH without go or temporal, GOROOT empty, and a cache folder with no CLI built in it
    // (the real cache under ~/.cache is left alone).
    mkdirSync(join(home, 'goroot'));
    const start = npmStart({
      ports: await ports(),
      dataDir,
      env: {
        PATH: bareBin,
        HOME: home,
        XDG_CACHE_HOME: join(home, 'cache'),
        GOROOT: join(home, 'goroot'),
        CUSTODY_DATA_DIR: dataDir,
      },
    });
    const line = await expectFailure(
      start,
      /^start-up failed: the Temporal dev server: no Temporal CLI found, and no Go to build one; install Go .*set TEMPORAL_CLI_PATH/,
    );
    said('no Go, no Temporal CLI', line);
  });

  it('a data folder it cannot write says so and names CUSTODY_DATA_DIR', async () => {
    const account = ordinaryAccount();
    // Root may write anywhere: the start runs as the ordinary user, in a folder owned by root.
    const parent = mkdtempSync(join(scratch, 'readonly-'));
    chmodSync(parent, 0o555);
    const dataDir = join(parent, 'data');
    const start = npmStart({
      ports: await ports(),
      account,
      dataDir,
      env: {
        HOME: privateFolder(account, 'home-'),
        CUSTODY_DATA_DIR: dataDir,
        TEMPORAL_CLI_PATH: shared(inject('temporalCliPath')),
      },
    });
    const line = await expectFailure(
      start,
      new RegExp(
        `^start-up failed: the data folder ${dataDir}: not writable by user \\S+ \\(EACCES\\); .*CUSTODY_DATA_DIR`,
      ),
    );
    said('data folder not writable', line);
  });

  it('a database that does not answer stops the Temporal dev server it had started', async () => {
    const p = await ports();
    const dataDir = join(privateFolder(null, 'nodb-'), 'data');
    const start = npmStart({
      ports: p,
      dataDir,
      env: {
        CUSTODY_DATA_DIR: dataDir,
        TEMPORAL_CLI_PATH: inject('temporalCliPath'),
        // A port nothing listens on (it was free a moment ago).
        DATABASE_URL: `postgres://custody@127.0.0.1:${await freePort()}/custody`,
      },
    });
    // The dev server really ran before the failure: its log holds its start.
    const line = await expectFailure(
      start,
      /^start-up failed: the database at DATABASE_URL: .*ECONNREFUSED.*; start that PostgreSQL, or correct DATABASE_URL$/,
    );
    expect(readFileSync(join(dataDir, 'temporal.sqlite')).length).toBeGreaterThan(0);
    said('database unreachable', line);
  });
});
