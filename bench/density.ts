/**
 * How many and how fast: memory charged per idle warm instance, sandboxes created per second, and
 * a burst from zero to many concurrent instances of one function (the in-process bench); and
 * density on the deployed platform (`--density N`): N idle instances held, each answering, the
 * host's memory and threads per instance.
 */
import { readdir, readFile } from 'node:fs/promises';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cgroupVersion, memoryCharged } from '../worker/sandbox/cgroups.js';
import type { Sandbox } from '../worker/sandbox/sandbox.js';
import { deploy, invoke, newAgent, noop, type FunctionToDeploy, type Reply } from './http.js';
import { statusesOf as statusesSeen, type Caller } from './load.js';
import { instances, type Scrape } from './scrape.js';
import { poolSize, sleep, waitForFullPool, waitUntil, type Platform } from './harness.js';
import { mean, round } from './stats.js';

const MiB = 1024 * 1024;

/**
 * Takes `count` ready sandboxes out of a full pool at once and times the pool's own refill (its
 * back-to-back creations, one at a time) until it is full again. The taken ones are destroyed after.
 */
export async function createdPerSec(platform: Platform, count: number): Promise<number> {
  const target = platform.config.worker.pool.floor;
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

export interface Density {
  at: string;
  target: number;
  /** Most instances of the function that existed at once. */
  held: number;
  /** Seconds from the first call until `target` instances existed; null if never. */
  toTargetSec: number | null;
  /** Instances made per second: the most held ÷ seconds until that many first existed. */
  createdPerSec: number;
  /** The first calls: answered 200, and what else. */
  firstStatuses: Record<string, number>;
  /** The second round of calls to the held instances. */
  second: { calls: number; ok: number; warm: number; cold: number; distinctInstances: number; statuses: Record<string, number> };
  /** Mean memory cgroup charge of the idle instances. */
  instanceMiB: number | null;
  freeMemMiB: { before: number; held: number };
  /** Processes and threads (tasks) on the host: /proc entries and the thread count of every one. */
  pids: { before: number; held: number };
  threads: { before: number; held: number };
  notes: string[];
}

async function tasks(): Promise<{ pids: number; threads: number }> {
  const entries = (await readdir('/proc')).filter((e) => /^\d+$/.test(e));
  let threads = 0;
  for (const pid of entries)
    threads += await readdir(`/proc/${pid}/task`).then(
      (t) => t.length,
      () => 0,
    );
  return { pids: entries.length, threads };
}

/**
 * Holds `target` warm instances of ONE function at once: `target` concurrent calls whose handler
 * waits until a shared deadline (so each needs its own instance, concurrency 1), fired no faster
 * than creation keeps up (at most `ahead` calls waiting for an instance). Then calls it `target`
 * more times, `inFlight` at a time, and checks every answer is 200 and warm.
 */
export async function holdIdle(platform: Platform, target: number, report: (line: string) => void, inFlight = 32, ahead = 64): Promise<Density> {
  const name = 'dense';
  // Each instance's module is loaded once: its id tells instances apart in the answers.
  const source = `const id = require('node:crypto').randomUUID();
exports.handler = async (event) => {
  const wait = (event && event.until ? event.until : 0) - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  return { id };
};
`;
  const notes: string[] = [];
  // Assumes at least 5 creations a second; the handler's timeout covers the wait.
  const holdMs = Math.ceil(target / 5) * 1000 + 10_000;
  await deploy(platform, {
    name,
    source,
    memoryMb: 64,
    concurrency: 1,
    maxInstances: target,
    idleTimeoutMs: 3_600_000,
    timeoutMs: Math.min(900_000, holdMs + 60_000),
  });
  const before = await tasks();
  const freeBefore = freemem() / MiB;
  const agent = newAgent(target + 16);
  const count = (): number => platform.worker.instances.list().filter((i) => i.fn.name === name).length;

  const started = performance.now();
  const until = Date.now() + holdMs;
  let held = 0;
  let toHeldSec = 0;
  let toTargetSec: number | null = null;
  let lastReport = started;
  const watcher = setInterval(() => {
    const now = count();
    if (now > held) [held, toHeldSec] = [now, (performance.now() - started) / 1000];
    if (now >= target && toTargetSec === null) toTargetSec = (performance.now() - started) / 1000;
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      report(`  ${now}/${target} instances after ${((lastReport - started) / 1000).toFixed(0)} s`);
    }
  }, 20);
  const calls: Array<Promise<Reply | undefined>> = [];
  try {
    for (let i = 0; i < target; i++) {
      while (i - count() >= ahead && Date.now() < until) await sleep(20);
      calls.push(invoke(platform.url, name, { until }, agent).catch(() => undefined));
    }
    await waitUntil(`${target} instances`, () => toTargetSec !== null || Date.now() > until, holdMs + 5000, 100);
  } catch (error) {
    notes.push((error as Error).message);
  }
  const heldThreads = await tasks();
  const freeHeld = freemem() / MiB;
  const first = await Promise.all(calls);
  clearInterval(watcher);
  const firstStatuses = statusesOf(first);
  const failures = new Set(first.filter((r) => r && r.status !== 200).map((r) => `${r?.status}: ${r?.body.slice(0, 200)}`));
  if (failures.size > 0) notes.push(`first calls not answered 200: ${[...failures].slice(0, 3).join(' | ')}`);
  const heldNow = count();
  if (heldNow < held) notes.push(`${held - heldNow} instances were gone by the end of the first round`);

  const parent = `/skiff/${platform.config.worker.id}`;
  const idle = platform.worker.instances.list().filter((i) => i.fn.name === name && i.inFlight === 0);
  const charges = await Promise.all(
    idle.map((i) =>
      memoryCharged(`${parent}/${i.sandbox.id}`).then(
        (b) => b / MiB,
        () => undefined,
      ),
    ),
  );
  const measured = charges.filter((c): c is number => c !== undefined);
  const instanceMiB = measured.length > 0 ? round(mean(measured), 2) : null;

  const second: Array<Reply | undefined> = [];
  let next = 0;
  const caller = async (): Promise<void> => {
    while (next++ < target) second.push(await invoke(platform.url, name, {}, agent).catch(() => undefined));
  };
  await Promise.all(Array.from({ length: inFlight }, caller));
  agent.destroy();
  const ids = new Set(second.map((r) => (r?.status === 200 ? (JSON.parse(r.body) as { id?: string }).id : undefined)).filter(Boolean));
  const elapsed = toTargetSec ?? toHeldSec;
  return {
    at: new Date().toISOString(),
    target,
    held,
    toTargetSec: toTargetSec === null ? null : round(toTargetSec, 2),
    createdPerSec: round(held / elapsed, 2),
    firstStatuses,
    second: {
      calls: second.length,
      ok: second.filter((r) => r?.status === 200).length,
      warm: second.filter((r) => r?.cold === false).length,
      cold: second.filter((r) => r?.cold === true).length,
      distinctInstances: ids.size,
      statuses: statusesOf(second),
    },
    instanceMiB,
    freeMemMiB: { before: round(freeBefore, 0), held: round(freeHeld, 0) },
    pids: { before: before.pids, held: heldThreads.pids },
    threads: { before: before.threads, held: heldThreads.threads },
    notes,
  };
}

function statusesOf(replies: Array<Reply | undefined>): Record<string, number> {
  const statuses: Record<string, number> = {};
  for (const reply of replies) {
    const key = reply ? String(reply.status) : 'no answer';
    statuses[key] = (statuses[key] ?? 0) + 1;
  }
  return statuses;
}

/** What `holdDeployed` needs of the deployed bench (deployed/figure.ts's context has it all). */
export interface DeployedTarget {
  workerId: string;
  caller: Caller;
  deploy(fn: FunctionToDeploy): Promise<void>;
  invokeUrl(name: string): string;
  scrape(): Promise<Scrape>;
}

export interface DeployedDensity {
  at: string;
  target: number;
  /** Most instances that existed at once (the worker's skiff_instances gauge). */
  held: number;
  toTargetSec: number | null;
  createdPerSec: number;
  /** Every holding call: answered 200, and what else. */
  firstStatuses: Record<string, number>;
  /** Every held instance called once more, all at once: each must answer, warm, from its own instance. */
  second: { calls: number; ok: number; warm: number; cold: number; distinctInstances: number; statuses: Record<string, number> };
  /** Host memory in use (MemTotal − MemAvailable, as `free` computes it) before the calls and with the instances idle. */
  usedMiB: { before: number; held: number };
  hostMiBPerInstance: number | null;
  /** Memory cgroup charge of all the worker's containers, and per instance. */
  chargedMiB: number | null;
  chargedMiBPerInstance: number | null;
  threads: { before: number; held: number };
  threadsPerInstance: number | null;
  /** Tasks (threads) in the worker's containers' pids cgroup, and per instance. */
  containerTasks: number | null;
  containerTasksPerInstance: number | null;
  pids: { before: number; held: number };
  /** kernel.pid_max: every thread takes one. */
  pidMax: number;
  notes: string[];
}

async function usedMiB(): Promise<number> {
  const info = await readFile('/proc/meminfo', 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(info)?.[1] ?? NaN);
  return (kib('MemTotal') - kib('MemAvailable')) / 1024;
}

/** Tasks (threads) in a worker's containers, from their parent pids cgroup; null when it is not there. */
export async function containerTasks(workerId: string): Promise<number | null> {
  const file = cgroupVersion() === 1 ? `/sys/fs/cgroup/pids/skiff/${workerId}/pids.current` : `/sys/fs/cgroup/skiff/${workerId}/pids.current`;
  return readFile(file, 'utf8').then(
    (text) => Number(text.trim()),
    () => null,
  );
}

/**
 * Holds `target` instances of ONE function on the deployed platform: holders in the caller
 * process (load-child.ts) each keep one call in flight, whose handler waits `holdMs` (so each
 * needs its own instance, concurrency 1), calling again as soon as it is answered; no more than
 * `ahead` holders beyond the instances the worker reports. A call that ends frees its instance
 * and the holder's next call takes it again, so the count only grows. Once `target` exist (or
 * none was added for `stallMs`), the holders stop; with the instances idle, the host's memory and
 * threads are read; then every instance is called once more, all at once (each call waiting a
 * few seconds, so none can serve two), and each must answer warm.
 */
export async function holdDeployed(
  t: DeployedTarget,
  target: number,
  report: (line: string) => void,
  o: { ahead?: number; holdMs?: number; stallMs?: number } = {},
): Promise<DeployedDensity> {
  const { ahead = 64, holdMs = 20_000, stallMs = 90_000 } = o;
  const name = 'dense';
  // Each instance's module is loaded once: its id tells instances apart in the answers.
  const source = `const id = require('node:crypto').randomUUID();
exports.handler = async (event) => {
  const wait = (event && event.until ? event.until : 0) - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  return { id };
};
`;
  const notes: string[] = [];
  await t.deploy({ name, source, memoryMb: 64, concurrency: 1, maxInstances: target, idleTimeoutMs: 3_600_000, timeoutMs: holdMs + 60_000 });
  const pidMax = Number((await readFile('/proc/sys/kernel/pid_max', 'utf8')).trim());
  const before = { tasks: await tasks(), used: await usedMiB() };
  const url = t.invokeUrl(name);

  const started = performance.now();
  let holding = 0;
  let held = 0;
  let toHeldSec = 0;
  let toTargetSec: number | null = null;
  let lastReport = started;
  while (toTargetSec === null) {
    const now = instances(await t.scrape());
    const at = (performance.now() - started) / 1000;
    if (now > held) [held, toHeldSec] = [now, at];
    if (now >= target) toTargetSec = at;
    else if (at - toHeldSec > stallMs / 1000) {
      notes.push(`no instance was added for ${stallMs / 1000} s: ${held} of ${target} held`);
      break;
    }
    const more = Math.min(target - holding, ahead - (holding - now));
    if (more > 0) {
      await t.caller.send({ op: 'hold', url, count: more, holdMs });
      holding += more;
    }
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      report(`  ${now}/${target} instances after ${at.toFixed(0)} s`);
    }
    await sleep(200);
  }
  report(`  ${held}/${target} instances after ${toHeldSec.toFixed(0)} s; releasing the holders (their last calls end within ${holdMs / 1000} s)`);
  const first = (await t.caller.send({ op: 'release' })).calls;
  const firstStatuses = statusesSeen(first);
  const failures = new Set(first.filter((c) => c.status !== 200).map((c) => `${c.status}: ${c.body.slice(0, 200)}`));
  if (failures.size > 0) notes.push(`holding calls not answered 200: ${[...failures].slice(0, 3).join(' | ')}`);

  await sleep(2000); // the answered instances settle into idle before the host is read
  const idle = instances(await t.scrape());
  if (idle < held) notes.push(`${held - idle} instances were gone by the end of the first round`);
  const heldTasks = await tasks();
  const heldUsed = await usedMiB();
  const charged = await memoryCharged(`/skiff/${t.workerId}`).then(
    (bytes) => bytes / MiB,
    () => null,
  );
  const inContainers = await containerTasks(t.workerId);

  report(`  calling each of the ${idle} idle instances once, all at once`);
  const second = (await t.caller.send({ op: 'burst', url, count: idle, body: { until: Date.now() + Math.max(15_000, idle * 10) } })).calls;
  const ids = new Set(second.map((c) => (c.status === 200 ? (JSON.parse(c.body) as { id?: string }).id : undefined)).filter(Boolean));
  const unanswered = new Set(second.filter((c) => c.status !== 200).map((c) => `${c.status}: ${c.body.slice(0, 200)}`));
  if (unanswered.size > 0) notes.push(`second round not answered 200: ${[...unanswered].slice(0, 3).join(' | ')}`);
  const elapsed = toTargetSec ?? toHeldSec;
  return {
    at: new Date().toISOString(),
    target,
    held,
    toTargetSec: toTargetSec === null ? null : round(toTargetSec, 2),
    createdPerSec: round(held / Math.max(0.001, elapsed), 2),
    firstStatuses,
    second: {
      calls: second.length,
      ok: second.filter((c) => c.status === 200).length,
      warm: second.filter((c) => c.cold === false).length,
      cold: second.filter((c) => c.cold === true).length,
      distinctInstances: ids.size,
      statuses: statusesSeen(second),
    },
    usedMiB: { before: round(before.used, 0), held: round(heldUsed, 0) },
    hostMiBPerInstance: idle > 0 ? round((heldUsed - before.used) / idle, 2) : null,
    chargedMiB: charged === null ? null : round(charged, 0),
    chargedMiBPerInstance: charged === null || idle === 0 ? null : round(charged / idle, 2),
    threads: { before: before.tasks.threads, held: heldTasks.threads },
    threadsPerInstance: idle > 0 ? round((heldTasks.threads - before.tasks.threads) / idle, 2) : null,
    containerTasks: inContainers,
    containerTasksPerInstance: inContainers === null || idle === 0 ? null : round(inContainers / idle, 2),
    pids: { before: before.tasks.pids, held: heldTasks.pids },
    pidMax,
    notes,
  };
}
