/** The supervisor `npm start` keeps its servers with, on a plain `sleep` process. */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Supervisor, type RunningService } from '../../src/supervisor.js';

function sleeper(): RunningService {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid: child.pid,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(probe: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

let supervisor: Supervisor | undefined;
afterEach(async () => supervisor?.stop());

describe('Supervisor', () => {
  it('starts a killed service again, with one log line', async () => {
    const lines: string[] = [];
    supervisor = await Supervisor.start({ name: 'sleep', start: async () => sleeper(), log: (l) => lines.push(l) });
    const first = supervisor.pid!;
    process.kill(first, 'SIGKILL');
    await until(() => supervisor!.restarts === 1);
    expect(supervisor.pid).not.toBe(first);
    expect(alive(supervisor.pid!)).toBe(true);
    expect(lines).toEqual(['sleep exited unexpectedly; restarting it in 500 ms']);
  });

  it('backs off while the service will not start, doubling the delay', async () => {
    const lines: string[] = [];
    let failures = 2;
    supervisor = await Supervisor.start({
      name: 'flaky',
      initialDelayMs: 10,
      start: async () => {
        if (lines.length > 0 && failures-- > 0) throw new Error('port in use');
        return sleeper();
      },
      log: (l) => lines.push(l),
    });
    process.kill(supervisor.pid!, 'SIGKILL');
    await until(() => supervisor!.restarts === 1);
    expect(lines).toEqual([
      'flaky exited unexpectedly; restarting it in 10 ms',
      'flaky did not start again (port in use); next try in 20 ms',
      'flaky did not start again (port in use); next try in 40 ms',
    ]);
  });

  it('does not restart what it was asked to stop', async () => {
    const lines: string[] = [];
    supervisor = await Supervisor.start({ name: 'sleep', start: async () => sleeper(), log: (l) => lines.push(l) });
    const pid = supervisor.pid!;
    await supervisor.stop();
    supervisor = undefined;
    expect(alive(pid)).toBe(false);
    await new Promise((r) => setTimeout(r, 700));
    expect(lines).toEqual([]);
  });
});
