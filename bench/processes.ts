/**
 * The service's processes as the benchmark runs them (compiled, as production does, or through
 * tsx), and what is read of them from /proc: peak resident memory and CPU time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { round } from './stats.js';

/** `dist`: the compiled entry points (`npm run build`), as production runs them; `tsx`: the TypeScript. */
export type EntryMode = 'dist' | 'tsx';

/**
 * The environment, node flags and entry point of a service: compiled, exactly as its npm script
 * runs it (the script's `VAR=value` settings and node flags included); through tsx, the
 * TypeScript with node's defaults.
 */
export function entryOf(
  root: string,
  mode: EntryMode,
  name: 'worker' | 'gateway',
): { env: Record<string, string>; args: string[] } {
  if (mode === 'tsx') return { env: {}, args: ['--import', 'tsx', `src/bin/${name}.ts`] };
  const scripts = (JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { scripts: Record<string, string> })
    .scripts;
  const words = scripts[name].split(/\s+/);
  const env: Record<string, string> = {};
  while (/^[A-Z_]+=/.test(words[0])) {
    const [key, value] = words.shift()!.split('=');
    env[key] = value;
  }
  const [node, ...args] = words;
  if (node !== 'node' || !args.at(-1)?.startsWith('dist/'))
    throw new Error(`unexpected "${name}" script: ${scripts[name]}`);
  return { env, args };
}

export function startService(
  root: string,
  mode: EntryMode,
  name: 'worker' | 'gateway',
  env: Record<string, string>,
  nodeArgs: string[],
): ChildProcess {
  const entry = entryOf(root, mode, name);
  return spawn(process.execPath, [...nodeArgs, ...entry.args], {
    cwd: root,
    env: { ...entry.env, ...env },
    // BENCH_SERVICE_LOGS=1: the services' own logs (pino, on stdout) too, e.g. to see why a call failed.
    stdio: ['ignore', process.env.BENCH_SERVICE_LOGS === '1' ? 'inherit' : 'ignore', 'inherit'],
  });
}

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) the process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** Peak resident memory of a process, sampled from /proc every 200 ms, overall and per phase. */
export class RssSampler {
  peakKb = 0;
  /** Peak MB of each phase named by `phase`, in order: where the peak happens. */
  readonly byPhase: Record<string, number> = {};
  private phaseName = 'start';
  private phaseKb = 0;
  private timer: NodeJS.Timeout;
  constructor(private readonly pid: number) {
    this.timer = setInterval(() => this.sample(), 200);
  }
  private sample(): void {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      this.peakKb = Math.max(this.peakKb, kb);
      this.phaseKb = Math.max(this.phaseKb, kb);
    } catch {
      // The process is gone.
    }
  }
  phase(name: string): void {
    this.sample();
    this.byPhase[this.phaseName] = round(this.phaseKb / 1024, 1);
    this.phaseName = name;
    this.phaseKb = 0;
  }
  get peakMb(): number {
    return round(this.peakKb / 1024, 1);
  }
  stop(): number {
    this.phase('stopped');
    clearInterval(this.timer);
    return this.peakMb;
  }
}

/** The machine's load averages (1, 5, 15 min): the bench shares the machine, so every figure carries it. */
export function load(): [number, number, number] {
  const [a, b, c] = loadavg();
  return [round(a, 1), round(b, 1), round(c, 1)];
}

export const loadText = () => `load ${load().join(' / ')}`;
