/**
 * Reads what the kernel's cgroups say about a container: whether the OOM killer struck, and how
 * much memory it is charged. Handles cgroup v1 (controllers under /sys/fs/cgroup/<controller>) and
 * v2 (one unified tree), since hosts differ (the build machines mount the v1 controllers, and their
 * v2 unified tree has none of them).
 */
import { existsSync } from 'node:fs';
import { readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CpuLimits } from './cpu-limits.js';

const ROOT = '/sys/fs/cgroup';
const V1_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids', 'cpuset', 'devices', 'freezer', 'blkio', 'systemd'];

let version: 1 | 2 | undefined;

/** Which cgroup layout the host has: read once (it does not change while the worker runs). */
export function cgroupVersion(): 1 | 2 {
  version ??= existsSync(join(ROOT, 'memory', 'memory.limit_in_bytes')) ? 1 : 2;
  return version;
}

/** Number of processes the OOM killer has killed in the cgroup (0 if it is gone). */
export async function oomKills(cgroupPath: string): Promise<number> {
  const file = cgroupVersion() === 1 ? join(ROOT, 'memory', cgroupPath, 'memory.oom_control') : join(ROOT, cgroupPath, 'memory.events');
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    // The cgroup is gone, or being removed (ENODEV) as its last process exits.
    if (error.code === 'ENOENT' || error.code === 'ENODEV') return '';
    throw error;
  });
  const match = /^oom_kill (\d+)$/m.exec(text);
  return match?.[1] ? Number(match[1]) : 0;
}

/** Memory charged to the cgroup, in bytes. */
export async function memoryCharged(cgroupPath: string): Promise<number> {
  const file = cgroupVersion() === 1 ? join(ROOT, 'memory', cgroupPath, 'memory.usage_in_bytes') : join(ROOT, cgroupPath, 'memory.current');
  return Number((await readFile(file, 'utf8')).trim());
}

/**
 * Removes the (empty) parent cgroups runc leaves behind, e.g. `/skiff/<worker>` and `/skiff`.
 * A directory still in use (another worker's) is left alone.
 */
export async function removeEmptyParents(paths: string[]): Promise<void> {
  const dirs = cgroupVersion() === 1 ? V1_CONTROLLERS.map((c) => join(ROOT, c)) : [ROOT];
  for (const path of paths) {
    for (const dir of dirs) {
      await rmdir(join(dir, path)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT' && error.code !== 'EBUSY' && error.code !== 'ENOTEMPTY') throw error;
      });
    }
  }
}

/**
 * Sets the memory limit of a running container (used when a pooled sandbox is specialized for a
 * function with its own `memoryMb`). Writes the cgroup files directly: no runc process on the
 * call path. Swap is not granted beyond the limit.
 */
export async function setMemoryLimit(cgroupPath: string, bytes: number): Promise<void> {
  if (cgroupVersion() === 1) {
    const dir = join(ROOT, 'memory', cgroupPath);
    const current = Number((await readFile(join(dir, 'memory.limit_in_bytes'), 'utf8')).trim());
    const memsw = join(dir, 'memory.memsw.limit_in_bytes');
    const hasMemsw = existsSync(memsw);
    // memsw must stay >= limit at every step: raise memsw first, lower the limit first.
    if (bytes > current) {
      if (hasMemsw) await writeFile(memsw, String(bytes));
      await writeFile(join(dir, 'memory.limit_in_bytes'), String(bytes));
    } else {
      await writeFile(join(dir, 'memory.limit_in_bytes'), String(bytes));
      if (hasMemsw) await writeFile(memsw, String(bytes));
    }
  } else {
    await writeFile(join(ROOT, cgroupPath, 'memory.max'), String(bytes));
    await writeFile(join(ROOT, cgroupPath, 'memory.swap.max'), '0').catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error; // no swap accounting on this host
    });
  }
}

/** Sets a running container's CPU weight and ceiling (specialization, like setMemoryLimit). */
export async function setCpuLimits(cgroupPath: string, limits: CpuLimits): Promise<void> {
  if (cgroupVersion() === 1) {
    const dir = join(ROOT, 'cpu', cgroupPath);
    await writeFile(join(dir, 'cpu.shares'), String(limits.shares));
    await writeFile(join(dir, 'cpu.cfs_period_us'), String(limits.periodUs));
    await writeFile(join(dir, 'cpu.cfs_quota_us'), String(limits.quotaUs));
  } else {
    // The same conversion runc makes from shares to cgroup v2 weight.
    const weight = Math.round(1 + ((limits.shares - 2) * 9999) / 262142);
    await writeFile(join(ROOT, cgroupPath, 'cpu.weight'), String(weight));
    await writeFile(join(ROOT, cgroupPath, 'cpu.max'), `${limits.quotaUs} ${limits.periodUs}`);
  }
}

/** Sets only a running container's CPU ceiling (its weight stays): one file, on the cold-start path. */
export async function setCpuCeiling(cgroupPath: string, limits: CpuLimits): Promise<void> {
  if (cgroupVersion() === 1) await writeFile(join(ROOT, 'cpu', cgroupPath, 'cpu.cfs_quota_us'), String(limits.quotaUs));
  else await writeFile(join(ROOT, cgroupPath, 'cpu.max'), `${limits.quotaUs} ${limits.periodUs}`);
}

/**
 * Removes a container's cgroup in every controller, if the OCI runtime left it: a memory cgroup
 * whose process the OOM killer just took may refuse removal (EBUSY) for a moment, so it is tried
 * again for up to a second.
 */
export async function removeCgroup(cgroupPath: string): Promise<void> {
  const dirs = cgroupVersion() === 1 ? V1_CONTROLLERS.map((c) => join(ROOT, c, cgroupPath)) : [join(ROOT, cgroupPath)];
  for (const dir of dirs) {
    for (let attempt = 0; ; attempt++) {
      const error = await rmdir(dir).then(
        () => undefined,
        (e: NodeJS.ErrnoException) => e,
      );
      if (!error || error.code === 'ENOENT') break;
      if (error.code !== 'EBUSY' || attempt >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
