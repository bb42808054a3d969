/**
 * CPU for a function, from its memory, as Lambda does: a weight in proportion to memory (busy
 * functions share the cores by it), and a ceiling of one core per 1,769 MiB (at least one core,
 * at most the host's), so no single function can take the whole host however busy it is.
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

export function cpuLimits(memoryMb: number, hostCpus: number): CpuLimits {
  const cores = Math.min(Math.max(1, memoryMb / MB_PER_CORE), Math.max(1, hostCpus));
  return {
    shares: Math.max(2, Math.round((memoryMb / 128) * SHARES_PER_128MB)),
    quotaUs: Math.round(cores * PERIOD_US),
    periodUs: PERIOD_US,
  };
}
