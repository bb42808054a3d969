/**
 * The deployed bench's baselines, measured before its platform is up, on a quiet machine:
 * `runc run` per call (and from it, serial container creation), `node -e` per call, and a direct
 * call on a warm container's socket with the runtime protocol and nothing of the platform on the
 * path. The socket's other end is a worker's (the bootstrap connects to it), so the direct call is
 * made by a worker in this process: an in-process platform, started for it and stopped after.
 */
import { join } from 'node:path';
import { ensureNodeImage, NODE_RUNTIME_DIR } from '../../infra/images/nodejs-rootfs.js';
import { directSocketCalls, directSocketThroughput, nodeSpawnPerCall, runcPerCall } from '../baselines.js';
import { startBenchPlatform, stopPlatform, waitForFullPool } from '../harness.js';
import { deploy, invoke, noop } from '../http.js';
import { mean, percentiles } from '../stats.js';
import type { Baselines } from './figure.js';

const PER_CALL = 10;
const DIRECT_CALLS = 2000;
const IN_FLIGHT = 32;
const DIRECT_MS = 3000;

/** Every baseline not measured (yet). */
export function noBaselines(): Baselines {
  return { runcRunPerCallMs: null, serialCreationPerSec: null, nodeSpawnPerCallMs: null, directSocketMs: null, directSocketPerSec: null, healthzPerSec: null };
}

/** Each baseline that fails is null, with a note; the others still run. */
export async function measureBaselines(root: string, progress: (line: string) => void, notes: string[]): Promise<Baselines> {
  const b = noBaselines();
  const attempt = async (what: string, work: () => Promise<void>): Promise<void> => {
    progress(what);
    await work().catch((error: Error) => {
      progress(`  failed: ${error.message}`);
      notes.push(`${what}: not measured (${error.message})`);
    });
  };
  await attempt(`baseline: runc run per call (${PER_CALL}, serial)`, async () => {
    const image = await ensureNodeImage({ runtime: 'nodejs20', nodeBinary: process.execPath, runtimeDir: NODE_RUNTIME_DIR, imagesDir: join(root, 'images') });
    const samples = await runcPerCall({ rootfs: image.rootfs, workDir: join(root, 'runc-baseline'), calls: PER_CALL });
    b.runcRunPerCallMs = percentiles(samples);
    b.serialCreationPerSec = 1000 / mean(samples);
  });
  await attempt(`baseline: node -e per call (${PER_CALL})`, async () => {
    b.nodeSpawnPerCallMs = percentiles(await nodeSpawnPerCall(PER_CALL));
  });
  await attempt(
    `baseline: direct calls on a warm container's socket (${DIRECT_CALLS} sequential, then ${IN_FLIGHT} in flight for ${DIRECT_MS / 1000} s)`,
    async () => {
      const platform = await startBenchPlatform({ SKIFF_POOL_SIZE: '1', SKIFF_WORKER_METRICS_PORT: '0' });
      try {
        await waitForFullPool(platform, 120_000);
        await deploy(platform, { name: 'direct', source: noop('direct'), concurrency: IN_FLIGHT });
        const reply = await invoke(platform.url, 'direct');
        if (reply.status !== 200) throw new Error(`the call to make the instance answered ${reply.status}: ${reply.body}`);
        const instance = platform.worker.instances.list().find((i) => i.fn.name === 'direct');
        if (!instance) throw new Error('no instance of the function');
        b.directSocketMs = percentiles(await directSocketCalls(instance, DIRECT_CALLS));
        b.directSocketPerSec = (await directSocketThroughput(instance, IN_FLIGHT, DIRECT_MS)).perSec;
      } finally {
        await stopPlatform(platform);
      }
    },
  );
  return b;
}
