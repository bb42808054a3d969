/**
 * Baselines measured in the same run: a container made with `runc run` per call (the same nodejs20
 * image and OCI config a sandbox gets), a plain `node` process spawned per call, and the floor, a
 * call straight to an already-warm sandbox's socket with no gateway, queue or scheduler around it.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { removeEmptyParents } from '../worker/sandbox/cgroups.js';
import { Launcher } from '../worker/process/launcher.js';
import { mountOverlay, unmountTree } from '../worker/sandbox/mounts.js';
import { buildSandboxSpec } from '../worker/sandbox/oci-spec.js';
import type { Instance } from '../worker/instances/instance-set.js';
import { throughput, type Throughput } from './latency.js';

const run = promisify(execFile);

/** The program every per-call baseline runs: print the no-op handler's answer and exit. */
const PRINT_EMPTY_OBJECT = 'process.stdout.write("{}")';
/** Host ids of the baseline's containers: far above the ranges workers hand out from 1,000,000. */
const BASELINE_HOST_ID_BASE = 1_000_000 + 20_000 * 65_536;

export interface RuncBaselineOptions {
  /** The nodejs20 image's root file system (the overlay's read-only lower layer). */
  rootfs: string;
  /** Bundles are made below it. */
  workDir: string;
  calls: number;
  runcPath?: string;
}

/**
 * `runc run` (foreground) per call: make the bundle (overlay root, config.json), run `node -e`
 * in the container until it exits, then unmount and remove everything. Each call is timed whole.
 */
export async function runcPerCall(o: RuncBaselineOptions): Promise<number[]> {
  const runc = o.runcPath ?? 'runc';
  const runcRoot = `/run/skiff/bench-${process.pid}-runc`;
  const cgroupParent = `/skiff/bench-${process.pid}-runc`;
  const samples: number[] = [];
  // Runs the mount commands, as a worker's launcher does.
  const launcher = new Launcher();
  try {
    for (let i = 0; i < o.calls; i++) {
      const id = `b${process.pid}-${i}`;
      const dir = join(o.workDir, id);
      const started = performance.now();
      try {
        for (const sub of ['upper', 'work', 'rootfs', 'task', 'socket']) await mkdir(join(dir, sub), { recursive: true, mode: 0o755 });
        await mountOverlay(launcher, o.rootfs, join(dir, 'upper'), join(dir, 'work'), join(dir, 'rootfs'));
        const spec = buildSandboxSpec({
          hostname: 'skiff',
          args: ['/usr/bin/node', '--v8-pool-size=1', '-e', PRINT_EMPTY_OBJECT],
          env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/tmp', 'LANG=C.UTF-8'],
          hostIdBase: BASELINE_HOST_ID_BASE,
          uid: 1000,
          memoryBytes: 128 * 1024 * 1024,
          cpu: { shares: 128, quotaUs: 100_000, periodUs: 100_000 },
          pidsLimit: 64,
          tmpSizeMb: 64,
          noFileLimit: 4096,
          cgroupsPath: `${cgroupParent}/${id}`,
          socketDir: join(dir, 'socket'),
          taskDir: join(dir, 'task'),
        });
        await writeFile(join(dir, 'config.json'), JSON.stringify(spec));
        const { stdout } = await run(runc, ['--root', runcRoot, 'run', '--no-new-keyring', '--bundle', dir, id]);
        if (stdout !== '{}') throw new Error(`the container printed ${JSON.stringify(stdout)}, not {}`);
      } finally {
        await run(runc, ['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined); // gone already when it exited
        await unmountTree(launcher, join(dir, 'rootfs'));
        await rm(dir, { recursive: true, force: true });
      }
      samples.push(performance.now() - started);
    }
  } finally {
    await launcher.stop();
    await rm(runcRoot, { recursive: true, force: true });
    await removeEmptyParents([cgroupParent, '/skiff']);
  }
  return samples;
}

/** A plain `node -e` process per call on the host: no container at all. */
export async function nodeSpawnPerCall(calls: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    const { stdout } = await run(process.execPath, ['--v8-pool-size=1', '-e', PRINT_EMPTY_OBJECT]);
    if (stdout !== '{}') throw new Error(`node printed ${JSON.stringify(stdout)}, not {}`);
    samples.push(performance.now() - started);
  }
  return samples;
}

let directCalls = 0;

function directCall(instance: Instance): Promise<boolean> {
  const timeoutMs = 30_000;
  return instance.sandbox
    .invoke({ id: `bench-direct-${directCalls++}`, event: {}, deadlineMs: Date.now() + timeoutMs }, timeoutMs)
    .then((outcome) => outcome.ok);
}

/** The floor: `count` sequential invokes on a warm instance's socket (after `warmup` unmeasured). */
export async function directSocketCalls(instance: Instance, count: number, warmup = 100): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const started = performance.now();
    if (!(await directCall(instance))) throw new Error('the direct call failed');
    if (i >= warmup) samples.push(performance.now() - started);
  }
  return samples;
}

/** The floor for throughput: `inFlight` invokes at once on one warm instance's socket. */
export function directSocketThroughput(instance: Instance, inFlight: number, durationMs: number): Promise<Throughput> {
  return throughput(() => directCall(instance), inFlight, durationMs);
}
