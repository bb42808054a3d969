/**
 * What the measurements stand on: private Redis and PostgreSQL (as `npm test` starts them), whole
 * platforms in this process (test/support/platform.ts), progress lines, and waiting helpers.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBenchServices, type BenchServices } from '../infra/bench/services.js';
import { startPlatform, type Platform } from '../test/support/platform.js';

export type { Platform };
export { sleep };

const began = performance.now();

export function progress(message: string): void {
  console.error(`bench [${((performance.now() - began) / 1000).toFixed(1).padStart(5)} s] ${message}`);
}

/** Starts Redis and PostgreSQL (infra/bench/services.ts) and points startPlatform at them. */
export async function startServices(): Promise<BenchServices> {
  const services = await startBenchServices();
  process.env.REDIS_URL = services.redisUrl;
  process.env.DATABASE_URL = services.databaseUrl;
  process.env.REGISTRY_URL = services.registryUrl;
  process.env.SKIFF_TEST_STATE = services.root;
  return services;
}

let platforms = 0;

/**
 * A gateway, scheduler and worker in this process. The worker id and run dir are the bench's own
 * (`bench-…`, not the tests' `w-t…`), so a concurrent `npm test` never takes them for its leftovers.
 */
export function startBenchPlatform(env: Record<string, string>): Promise<Platform> {
  const id = `bench-${process.pid}x${platforms++}`;
  return startPlatform({ SKIFF_WORKER_ID: id, SKIFF_RUN_DIR: `/run/skiff/${id}`, SKIFF_IDLE_TIMEOUT_MS: '600000', ...env });
}

export async function waitUntil(what: string, done: () => boolean, timeoutMs: number, everyMs = 2): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function poolSize(platform: Platform): number {
  return platform.worker.pool.sizes().nodejs20 ?? 0;
}

/**
 * Waits until the worker's pool holds its target of ready sandboxes of every runtime. Every one:
 * the pool fills nodejs20 first and then python3.11, and a figure measured while the second is
 * still filling pays for those creations (the pooled platform's warm throughput did, 1,230 calls/s
 * against 1,880 with the pool full).
 */
export async function waitForFullPool(platform: Platform, timeoutMs = 60_000, report = false): Promise<void> {
  const target = platform.config.worker.pool.floor;
  const sizes = (): number[] => Object.values(platform.worker.pool.sizes());
  let last = performance.now();
  await waitUntil(
    `a full pool of ${target} per runtime`,
    () => {
      if (report && performance.now() - last > 5000) {
        last = performance.now();
        progress(`  pool ${JSON.stringify(platform.worker.pool.sizes())}, ${target} each`);
      }
      return sizes().every((size) => size >= target);
    },
    timeoutMs,
  );
}

/**
 * Stops a platform, then removes the worker's run dir (runc state, sockets), which the worker
 * leaves behind; refuses if runc still lists a container there.
 */
export async function stopPlatform(platform: Platform): Promise<void> {
  await platform.stop();
  const runDir = platform.config.worker.runDir;
  const left = await readdir(join(runDir, 'runc')).catch(() => []);
  if (left.length > 0) throw new Error(`containers left behind in ${runDir}/runc: ${left.join(', ')}`);
  await rm(runDir, { recursive: true, force: true });
}
