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
