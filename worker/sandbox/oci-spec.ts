/**
 * Builds the OCI runtime spec (config.json) of a sandbox. Pure: plain data in, plain data out, so
 * the hardening it encodes is unit-tested without runc.
 *
 * Defaults follow containerd's and Docker's: a new namespace of every kind (user included), no
 * capabilities, no new privileges, a seccomp allow-list (seccomp.ts, always on), masked /proc
 * paths, a read-only root with a private /tmp. docs/SECURITY.md says what each layer stops.
 */
import { seccompProfile } from './seccomp.js';

import type { CpuLimits } from './cpu-limits.js';

export interface SandboxSpecOptions {
  hostname: string;
  args: string[];
  env: string[];
  /** First host uid (and gid) of the 65536 ids that container ids 0..65535 map to. */
  hostIdBase: number;
  /** uid/gid the process runs as inside the container. */
  uid: number;
  memoryBytes: number;
  /** CPU weight and ceiling (cpu-limits.ts). */
  cpu: CpuLimits;
  pidsLimit: number;
  tmpSizeMb: number;
  noFileLimit: number;
  cgroupsPath: string;
  /** Host directory holding the worker's socket, bound at /run/skiff. */
  socketDir: string;
  /** Host directory where the function's code appears later, bound at /var/task (see rootfs.ts). */
  taskDir: string;
}

export const CONTAINER_ID_RANGE = 65536;

export interface OciSpec {
  ociVersion: string;
  process: Record<string, unknown>;
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: Array<{ destination: string; type: string; source: string; options?: string[] }>;
  linux: Record<string, unknown>;
}

const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export function buildSandboxSpec(o: SandboxSpecOptions): OciSpec {
  const idMap = [{ containerID: 0, hostID: o.hostIdBase, size: CONTAINER_ID_RANGE }];
  const noCaps: string[] = [];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: o.uid, gid: o.uid },
      args: o.args,
      env: o.env,
      cwd: '/tmp',
      capabilities: { bounding: noCaps, effective: noCaps, inheritable: noCaps, permitted: noCaps, ambient: noCaps },
      // Must stay at or below the worker's own hard limits: without CAP_SYS_RESOURCE (the build
      // machines' root lacks it) an rlimit above them fails the start with "operation not permitted".
      // No core dumps: a crashing process would otherwise write its whole memory into its cwd.
      rlimits: [
        { type: 'RLIMIT_NOFILE', hard: o.noFileLimit, soft: o.noFileLimit },
        { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
      ],
      noNewPrivileges: true,
      oomScoreAdj: 1000,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: o.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      {
        destination: '/tmp',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'nodev', 'mode=1777', `uid=${o.uid}`, `gid=${o.uid}`, `size=${o.tmpSizeMb}m`],
      },
      { destination: '/run/skiff', type: 'bind', source: o.socketDir, options: ['bind', 'nosuid', 'nodev', 'noexec'] },
      // rslave: a bind mount made on the host under taskDir after the container started shows
      // up inside it. That is how a pooled sandbox receives its function's code (late binding).
      { destination: '/var/task', type: 'bind', source: o.taskDir, options: ['rbind', 'ro', 'nosuid', 'nodev', 'rslave'] },
    ],
    linux: {
      uidMappings: idMap,
      gidMappings: idMap,
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'user' }],
      cgroupsPath: o.cgroupsPath,
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        memory: { limit: o.memoryBytes, swap: o.memoryBytes },
        cpu: { shares: o.cpu.shares, quota: o.cpu.quotaUs, period: o.cpu.periodUs },
        pids: { limit: o.pidsLimit },
      },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      seccomp: seccompProfile(),
    },
  };
}
