/**
 * How many and how fast: memory charged per idle warm instance, sandboxes created per second, and
 * a burst from zero to many concurrent instances of one function.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cgroupVersion, memoryCharged } from '../worker/sandbox/cgroups.js';
import type { Sandbox } from '../worker/sandbox/sandbox.js';
import { deploy, invoke, noop, type Reply } from './http.js';
import { poolSize, sleep, waitForFullPool, waitUntil, type Platform } from './harness.js';
import { mean, round } from './stats.js';

const MiB = 1024 * 1024;

/**
 * Takes `count` ready sandboxes out of a full pool at once and times the pool's own refill (its
 * back-to-back creations, one at a time) until it is full again. The taken ones are destroyed after.
 */
export async function createdPerSec(platform: Platform, count: number): Promise<number> {
  const target = platform.config.worker.poolSize;
  if (target < count) throw new Error(`the pool holds ${target}, fewer than the ${count} to take`);
  await waitForFullPool(platform);
  const taken: Sandbox[] = [];
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const sandbox = platform.worker.pool.take('nodejs20');
    if (sandbox) taken.push(sandbox);
  }
  try {
    await waitUntil('the pool to refill', () => poolSize(platform) >= target, 60_000);
    return taken.length / ((performance.now() - started) / 1000);
  } finally {
    await Promise.all(taken.map((sandbox) => sandbox.destroy('bench')));
  }
}

export interface IdleMemory {
  /** Average memory charged to an idle, specialized (warm) instance's cgroup. */
  instanceMiB: number;
  /** Average charged to a pooled sandbox not yet specialized: the container and bootstrap alone. */
  pooledMiB: number;
  instances: number;
  pooled: number;
}

/** Makes `count` warm idle instances (one call each to distinct functions), then reads their cgroups. */
export async function idleMemory(platform: Platform, count: number, inFlight = 8): Promise<IdleMemory> {
  const names = Array.from({ length: count }, (_, i) => `idle-${i}`);
  for (const name of names) await deploy(platform, { name, source: noop(name) });
  let next = 0;
  const caller = async (): Promise<void> => {
    for (let i = next++; i < names.length; i = next++) {
      const reply = await invoke(platform.url, names[i] as string);
      if (reply.status !== 200) throw new Error(`call to ${names[i]} answered ${reply.status}: ${reply.body}`);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, caller));
  await waitForFullPool(platform);
  await sleep(1000); // let the instances settle into idle

  const parent = `/skiff/${platform.config.worker.id}`;
  const idle = platform.worker.instances.list().filter((i) => names.includes(i.fn.name) && i.inFlight === 0);
  if (idle.length !== count) throw new Error(`expected ${count} idle instances, found ${idle.length}`);
  const instanceIds = new Set(platform.worker.instances.list().map((i) => i.sandbox.id));
  const cgroupDir = cgroupVersion() === 1 ? join('/sys/fs/cgroup/memory', parent) : join('/sys/fs/cgroup', parent);
  const pooledIds = (await readdir(cgroupDir, { withFileTypes: true })).filter((e) => e.isDirectory() && !instanceIds.has(e.name)).map((e) => e.name);
  const charged = (ids: string[]): Promise<number[]> => Promise.all(ids.map(async (id) => (await memoryCharged(`${parent}/${id}`)) / MiB));
  const instanceMiB = mean(await charged(idle.map((i) => i.sandbox.id)));
  const pooledMiB = mean(await charged(pooledIds));
  return { instanceMiB, pooledMiB, instances: idle.length, pooled: pooledIds.length };
}

export interface Burst {
  calls: number;
  /** Seconds from the first request until `calls` instances of the function existed; null if never. */
  toAllSec: number | null;
  /** Most instances that existed at once, and when that was first reached. */
  maxInstances: number;
  toMaxSec: number;
  /** Seconds until every call was answered. */
  answeredSec: number;
  non2xx: number;
  statuses: Record<string, number>;
}

/**
 * `calls` concurrent calls to one function whose handler sleeps `sleepMs`, so each needs its own
 * instance (concurrency 1). Counts that function's instances every few ms from the first request.
 */
export async function burst(platform: Platform, calls: number, sleepMs: number): Promise<Burst> {
  const name = 'burst';
  const source = `exports.handler = () => new Promise((resolve) => setTimeout(() => resolve({}), ${sleepMs}));\n`;
  await deploy(platform, { name, source, memoryMb: 64, concurrency: 1, maxInstances: calls, timeoutMs: 60_000 });
  await waitForFullPool(platform, 120_000);
  await sleep(200);

  const instances = (): number => platform.worker.instances.list().filter((i) => i.fn.name === name).length;
  const started = performance.now();
  let maxInstances = 0;
  let toMaxSec = 0;
  let toAllSec: number | null = null;
  const watcher = setInterval(() => {
    const now = instances();
    const at = (performance.now() - started) / 1000;
    if (now > maxInstances) [maxInstances, toMaxSec] = [now, at];
    if (now >= calls && toAllSec === null) toAllSec = at;
  }, 5);
  let replies: Array<Reply | undefined>;
  try {
    replies = await Promise.all(Array.from({ length: calls }, () => invoke(platform.url, name).catch(() => undefined)));
  } finally {
    clearInterval(watcher);
  }
  const answeredSec = (performance.now() - started) / 1000;
  const statuses: Record<string, number> = {};
  for (const reply of replies) {
    const key = reply ? String(reply.status) : 'no answer';
    statuses[key] = (statuses[key] ?? 0) + 1;
  }
  const non2xx = replies.filter((r) => !r || r.status < 200 || r.status > 299).length;
  const sec = (value: number): number => round(value, 3);
  return { calls, toAllSec: toAllSec === null ? null : sec(toAllSec), maxInstances, toMaxSec: sec(toMaxSec), answeredSec: sec(answeredSec), non2xx, statuses };
}
