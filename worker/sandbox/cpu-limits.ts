/**
 * CPU for a function, from its memory, as Lambda does: a weight in proportion to memory (busy
 * functions share the cores by it), and a ceiling of one core per 1,769 MiB, never below a floor
 * (SKIFF_CPU_FLOOR_MILLICORES, half a core by default) nor above the host, so a few small functions
 * spinning cannot take every core from the rest. While a container boots and loads its handler it
 * may use a whole core (Lambda's init boost too): a cold start is not slowed by a small function's
 * ceiling, which applies from its first call on.
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
  return limits(memoryMb, Math.min(Math.max(floorCores, memoryMb / MB_PER_CORE), Math.max(1, hostCpus)));
}

/** The limits while a container boots and loads its handler: at least one core. */
export function bootCpuLimits(memoryMb: number, hostCpus: number): CpuLimits {
  return limits(memoryMb, Math.min(Math.max(1, memoryMb / MB_PER_CORE), Math.max(1, hostCpus)));
}

function limits(memoryMb: number, cores: number): CpuLimits {
  return {
    shares: Math.max(2, Math.round((memoryMb / 128) * SHARES_PER_128MB)),
    quotaUs: Math.round(cores * PERIOD_US),
    periodUs: PERIOD_US,
  };
}
