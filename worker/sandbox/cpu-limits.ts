/**
 * CPU for a function, from its memory, as Lambda does: a weight in proportion to memory (busy
 * functions share the cores by it), and a ceiling of one core per 1,769 MiB, never below a floor
 * (SKIFF_CPU_FLOOR_MILLICORES) nor above the host, so no function can take every core of a host
 * with more than one. The floor is a whole core by default: half a core measured no better for a
 * neighbour's latency on 2 cores (docs/BENCHMARKS.md) and halves a small function's speed; an
 * operator of a large host may lower it towards Lambda's 1/14 core at 128 MiB. While a container
 * boots and loads its handler it may use at least a core (Lambda's init boost too), so a low floor
 * does not slow cold starts; it applies from the first call on.
 */
export interface CpuLimits {
  /** cgroup v1 cpu.shares (v2 weight is derived from it). */
  shares: number;
  quotaUs: number;
  periodUs: number;
}

const SHARES_PER_128MB = 128;
const MB_PER_CORE = 1769;
const PERIOD_US = 100_000;

/** The limits a function's handler runs under. */
export function cpuLimits(memoryMb: number, hostCpus: number, floorCores: number): CpuLimits {
  const cores = Math.min(Math.max(floorCores, memoryMb / MB_PER_CORE), Math.max(1, hostCpus));
  return {
    shares: Math.max(2, Math.round((memoryMb / 128) * SHARES_PER_128MB)),
    quotaUs: Math.round(cores * PERIOD_US),
    periodUs: PERIOD_US,
  };
}

/** The limits while a container boots and loads its handler: the same, with a floor of a core. */
export function bootCpuLimits(memoryMb: number, hostCpus: number): CpuLimits {
  return cpuLimits(memoryMb, hostCpus, 1);
}
