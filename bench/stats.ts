/** Small statistics over samples of milliseconds (or any numbers). */

export interface Percentiles {
  p50: number;
  p99: number;
}

/** Nearest-rank percentile of `samples` (need not be sorted). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

export function percentiles(samples: readonly number[]): Percentiles {
  return { p50: round(percentile(samples, 50)), p99: round(percentile(samples, 99)) };
}

export function mean(samples: readonly number[]): number {
  if (samples.length === 0) throw new Error('no samples');
  return samples.reduce((sum, x) => sum + x, 0) / samples.length;
}

/** Rounds to `digits` decimals (3 by default): enough for milliseconds and MiB. */
export function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** A note for results whose run began on a busy machine (1-minute load average at the start); none if it was quiet. */
export function busyNote(loadAtStart: readonly number[]): string | undefined {
  const [load = 0] = loadAtStart;
  // The build that `npm run bench` runs just before adds about 1 to this; more means other work.
  return load > 1.5 ? `the machine was busy when the run began (load average ${load.toFixed(2)} over the last minute): figures may be pessimistic` : undefined;
}
