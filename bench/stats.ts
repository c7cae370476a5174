/** Small statistics helpers for the benchmark. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export const median = (values: number[]) => percentile(values, 50);

export function summary(values: number[]): { n: number; median_ms: number; p99_ms: number } {
  return { n: values.length, median_ms: round(median(values)), p99_ms: round(percentile(values, 99)) };
}

export const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Peak resident memory of a process, sampled from /proc every 200 ms. */
export class RssSampler {
  peakKb = 0;
  private timer: NodeJS.Timeout;
  constructor(
    private readonly pid: number,
    readFile: (path: string) => string,
  ) {
    this.timer = setInterval(() => {
      try {
        const status = readFile(`/proc/${this.pid}/status`);
        const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
        this.peakKb = Math.max(this.peakKb, kb);
      } catch {
        // The process is gone.
      }
    }, 200);
  }
  stop(): number {
    clearInterval(this.timer);
    return round(this.peakKb / 1024, 1);
  }
}
