/**
 * `npm run bench -- --in-process` (and `--noisy`, `--tenancy`): the one-process bench. Measures
 * Skiff through its real gateway over HTTP on loopback, with gateway, scheduler, worker and client
 * in this one process, beside baselines run in the same process; prints a table and writes
 * bench/results/in-process.json. main.ts imports this module to run it; the default run is the
 * deployed shape (deployed.ts).
 *
 * Order: private Redis and PostgreSQL; the per-call baselines (`runc run`, `node` spawn) on a quiet
 * machine; a platform with a pool of 200 (creation rate, pooled cold starts, warm latency and
 * throughput with the direct-socket floor, idle memory, the burst); a platform with no pool
 * (cold starts that make the container on the call path). Everything is removed at the end, on
 * failure and on Ctrl-C too. A figure that could not be measured is null, with a note saying why.
 */
import { readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNodeImage } from '../infra/images/nodejs-rootfs.js';
import { mountPointsUnder } from '../worker/sandbox/mounts.js';
import { directSocketCalls, directSocketThroughput, nodeSpawnPerCall, runcPerCall } from './baselines.js';
import { burst, createdPerSec, holdIdle, idleMemory, type Density } from './density.js';
import { closeClient, deploy, invoke, noop } from './http.js';
import { progress, startBenchPlatform, startServices, stopPlatform, waitForFullPool, type Platform } from './harness.js';
import { coldStarts, httpThroughput, warmCalls } from './latency.js';
import { noisyNeighbour } from './noisy.js';
import { tracingOverhead } from './tracing.js';
import { imageFigures } from './images.js';
import { keyCheckCost } from './tenancy.js';
import { lambdaInvokeCost } from './lambda-invoke.js';
import { providedCost } from './provided.js';
import { table, writeResults, type Results } from './report.js';
import { busyNote, mean, percentiles, round } from './stats.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const RESULTS_FILE = join(HERE, '..', '..', 'bench', 'results', 'in-process.json');
/** Compiled runtime/ directory, as the worker packages it into the nodejs20 image. */
const RUNTIME_DIR = join(HERE, '..', 'runtime');

const N = {
  coldStarts: 20,
  warmCalls: 2000,
  perCallBaseline: 10,
  inFlight: 32,
  throughputMs: 5000,
  floorThroughputMs: 3000,
  idleInstances: 50,
  created: 20,
  burst: 200,
  /** Ready sandboxes the pooled platform keeps: enough for the burst to take one each. */
  pool: 200,
  burstSleepMs: 5000,
  /** Sequential calls to the noisy neighbours' victim, alone and under attack: enough that the p99 is not a handful of calls. */
  victimCalls: 2000,
  /** Asynchronous calls each attacker keeps going. */
  attackersInFlight: 3,
  tracingMs: 5000,
  imagePulls: 3,
  /** Sequential warm calls of each of the Runtime API figure's three functions. */
  providedCalls: 500,
};

/** `--in-process --density N`: only hold N idle warm instances of one function, in this process (minutes). */
const densityArg = process.argv.indexOf('--density');
const densityTarget = densityArg === -1 ? undefined : Number(process.argv[densityArg + 1]);
/** `--noisy`: only the noisy-neighbour measurement (a minute), to repeat it on a noisy machine. */
const noisyOnly = process.argv.includes('--noisy');
/** `--tenancy`: only the cost of the tenant and role check (warm calls with a key beside calls without) and of the Lambda Invoke API's SigV4 check. */
const tenancyOnly = process.argv.includes('--tenancy');
if (
  (densityTarget !== undefined && !(Number.isInteger(densityTarget) && densityTarget > 0)) ||
  [noisyOnly, tenancyOnly, densityTarget !== undefined].filter(Boolean).length > 1
) {
  console.error('usage: npm run bench -- --in-process [--density N | --noisy | --tenancy]');
  process.exit(2);
}

/** The last results written, to carry a `--density` figure over a default run and back. */
const previous = await readFile(RESULTS_FILE, 'utf8').then(
  (text) => JSON.parse(text) as Partial<Results>,
  () => undefined,
);

const results: Results = {
  at: new Date().toISOString(),
  machine: { cpus: cpus().length, node: process.version, kernel: release(), loadavg: { start: loadavg(), end: [] } },
  coldPooledMs: null,
  coldUnpooledMs: null,
  warmMs: null,
  warmPerSec: null,
  warmErrors: null,
  idleInstanceMiB: null,
  createdPerSec: null,
  burst200Sec: null,
  burst: null,
  noisyNeighbour: null,
  tracingOverhead: null,
  images: null,
  ...(previous?.density ? { density: previous.density } : {}),
  baselines: { runcRunPerCallMs: null, nodeSpawnPerCallMs: null, directSocketMs: null, directSocketPerSec: null, pooledSandboxMiB: null, runcRunPerSec: null },
  samples: {},
  notes: [
    'all figures are client-side wall time over HTTP on loopback; gateway, scheduler, worker and client share this one Node.js process',
    `cold starts: ${N.coldStarts} functions, each with its own code, one call each; pooled calls wait for a full pool first`,
    `p99 of ${N.coldStarts} cold starts and of ${N.perCallBaseline} per-call baseline runs is their slowest sample`,
  ],
};

/** Undo steps, run last-in first-out at the end, on failure and on SIGINT/SIGTERM. */
const cleanups: Array<() => Promise<void>> = [];

function onCleanup(step: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  const once = (): Promise<void> => (done ??= step());
  cleanups.push(once);
  return once;
}

async function cleanUp(): Promise<void> {
  for (let step = cleanups.pop(); step; step = cleanups.pop()) {
    await step().catch((error: unknown) => {
      console.error(`bench: cleanup failed: ${(error as Error).message}`);
      process.exitCode = 1;
    });
  }
  closeClient();
}

/** Runs one measurement; on failure records a note and returns undefined, so the others still run. */
async function phase<T>(what: string, work: () => Promise<T>): Promise<T | undefined> {
  progress(what);
  try {
    return await work();
  } catch (error) {
    progress(`  failed: ${(error as Error).message}`);
    results.notes.push(`${what}: not measured (${(error as Error).message})`);
    return undefined;
  }
}

function instanceOf(platform: Platform, name: string) {
  const instance = platform.worker.instances.list().find((i) => i.fn.name === name);
  if (!instance) throw new Error(`no instance of ${name}`);
  return instance;
}

async function perCallBaselines(root: string): Promise<void> {
  const imagesDir = join(root, 'images');
  const runc = await phase(`baseline: runc run per call (${N.perCallBaseline})`, async () => {
    const image = await ensureNodeImage({ runtime: 'nodejs20', nodeBinary: process.execPath, runtimeDir: RUNTIME_DIR, imagesDir });
    return runcPerCall({ rootfs: image.rootfs, workDir: join(root, 'runc-baseline'), calls: N.perCallBaseline });
  });
  if (runc) {
    results.baselines.runcRunPerCallMs = percentiles(runc);
    results.baselines.runcRunPerSec = round(1000 / mean(runc), 2);
  }
  const spawned = await phase(`baseline: node spawn per call (${N.perCallBaseline})`, () => nodeSpawnPerCall(N.perCallBaseline));
  if (spawned) results.baselines.nodeSpawnPerCallMs = percentiles(spawned);
}

async function pooledPlatform(): Promise<void> {
  let stop: (() => Promise<void>) | undefined;
  const platform = await phase(`platform with a pool of ${N.pool}: starting, filling the pool`, async () => {
    // Every figure's functions are one tenant's: its quotas must not be what a figure measures.
    const started = await startBenchPlatform({
      SKIFF_POOL_SIZE: String(N.pool),
      SKIFF_WORKER_CAPACITY_MB: '100000',
      SKIFF_TENANT_MAX_INSTANCES: '10000',
      SKIFF_TENANT_MAX_MEMORY_MB: '100000',
    });
    stop = onCleanup(() => stopPlatform(started));
    await waitForFullPool(started, 300_000, true);
    // Warm the gateway's and worker's own code paths (JIT) before anything is measured.
    await deploy(started, { name: 'warmup', source: noop('warmup') });
    for (let i = 0; i < 50; i++) await invoke(started.url, 'warmup');
    await waitForFullPool(started);
    return started;
  });
  if (!platform) return;

  const created = await phase(`sandboxes created per second (${N.created} taken from the pool, timing its refill)`, () => createdPerSec(platform, N.created));
  if (created !== undefined) results.createdPerSec = round(created, 2);

  const cold = await phase(`cold starts with a pooled sandbox (${N.coldStarts})`, () => coldStarts(platform, 'cold-pooled', N.coldStarts));
  if (cold) results.coldPooledMs = percentiles(cold);

  const warm = await phase(`warm calls (${N.warmCalls} sequential)`, async () => {
    await deploy(platform, { name: 'warm', source: noop('warm') });
    await invoke(platform.url, 'warm');
    await waitForFullPool(platform);
    return warmCalls(platform, 'warm', N.warmCalls);
  });
  if (warm) results.warmMs = percentiles(warm);

  const keyed = await phase(`the tenant and role check: warm calls with a key beside calls without (${N.warmCalls} each, interleaved)`, () =>
    keyCheckCost(platform, N.warmCalls),
  );
  if (keyed) results.keyCheck = keyed;
  await lambdaInvokePhase(platform);

  const provided = await phase(`the Runtime API: warm calls of provided functions beside nodejs20 (${N.providedCalls} each, interleaved)`, () =>
    providedCost(platform, N.providedCalls),
  );
  if (provided) results.providedCost = provided;

  const floor = await phase(`baseline: direct calls to the warm sandbox's socket (${N.warmCalls})`, () =>
    directSocketCalls(instanceOf(platform, 'warm'), N.warmCalls),
  );
  if (floor) results.baselines.directSocketMs = percentiles(floor);

  const tput = await phase(`warm throughput (${N.inFlight} in flight, ${N.throughputMs / 1000} s, concurrency ${N.inFlight})`, async () => {
    await deploy(platform, { name: 'tput', source: noop('tput'), concurrency: N.inFlight });
    await invoke(platform.url, 'tput');
    await waitForFullPool(platform);
    // As the tracing figure does: the path's code JIT-compiled and the sockets open, unmeasured.
    await httpThroughput(platform, 'tput', N.inFlight, 1500);
    return httpThroughput(platform, 'tput', N.inFlight, N.throughputMs);
  });
  if (tput) {
    results.warmPerSec = round(tput.perSec, 1);
    results.warmErrors = tput.errors;
    const served = platform.worker.instances.list().filter((i) => i.fn.name === 'tput').length;
    results.notes.push(`warm throughput: ${tput.ok} calls, ${tput.errors} errors in ${round(tput.seconds, 2)} s, served by ${served} instance(s)`);
  }

  const floorTput = await phase(`baseline: direct socket throughput (${N.inFlight} in flight, ${N.floorThroughputMs / 1000} s)`, () =>
    directSocketThroughput(instanceOf(platform, 'tput'), N.inFlight, N.floorThroughputMs),
  );
  if (floorTput) results.baselines.directSocketPerSec = round(floorTput.perSec, 1);

  const idle = await phase(`idle memory (${N.idleInstances} warm idle instances)`, () => idleMemory(platform, N.idleInstances));
  if (idle) {
    results.idleInstanceMiB = round(idle.instanceMiB, 2);
    results.baselines.pooledSandboxMiB = round(idle.pooledMiB, 2);
    results.notes.push(`idle memory: mean memory cgroup charge of ${idle.instances} idle instances; pooled baseline over ${idle.pooled} pooled sandboxes`);
  }

  const burstResult = await phase(
    `burst: ${N.burst} concurrent calls, handler sleeps ${N.burstSleepMs} ms, concurrency 1, maxInstances ${N.burst}, memoryMb 64`,
    () => burst(platform, N.burst, N.burstSleepMs),
  );
  if (burstResult) {
    results.burst = burstResult;
    results.burst200Sec = burstResult.toAllSec === null ? null : round(burstResult.toAllSec, 2);
    if (burstResult.toAllSec === null) {
      results.notes.push(`burst: ${N.burst} instances never existed at once; 0 → ${burstResult.maxInstances} took ${round(burstResult.toMaxSec, 2)} s`);
    }
  }
  progress('stopping the pooled platform');
  await stop?.();
}

async function unpooledPlatform(): Promise<void> {
  let stop: (() => Promise<void>) | undefined;
  const platform = await phase('platform with no pool: starting', async () => {
    const started = await startBenchPlatform({ SKIFF_POOL_SIZE: '0' });
    stop = onCleanup(() => stopPlatform(started));
    // One unmeasured cold start and some warm calls, so the first measured call is not the first.
    await deploy(started, { name: 'warmup', source: noop('warmup') });
    for (let i = 0; i < 50; i++) await invoke(started.url, 'warmup');
    return started;
  });
  if (!platform) return;
  const cold = await phase(`cold starts with no pool (${N.coldStarts})`, () => coldStarts(platform, 'cold-unpooled', N.coldStarts));
  if (cold) results.coldUnpooledMs = percentiles(cold);
  progress('stopping the unpooled platform');
  await stop?.();
}

async function imagePlatform(root: string): Promise<void> {
  let stop: (() => Promise<void>) | undefined;
  const platform = await phase('platform for images: starting', async () => {
    const started = await startBenchPlatform({ SKIFF_POOL_SIZE: '0' });
    stop = onCleanup(() => stopPlatform(started));
    return started;
  });
  if (!platform) return;
  const figures = await phase(
    `images: cold pull of a function image into an empty cache (${N.imagePulls}), beside downloading its blobs alone; a second function`,
    () => imageFigures(platform, root, N.imagePulls),
  );
  if (figures) results.images = figures;
  progress('stopping the images platform');
  await stop?.();
}

async function noisyPlatform(): Promise<void> {
  let stop: (() => Promise<void>) | undefined;
  const platform = await phase('platform for the noisy neighbours (pool of 8, no async retries): starting', async () => {
    const started = await startBenchPlatform({ SKIFF_POOL_SIZE: '8', SKIFF_WORKER_CAPACITY_MB: '8192', SKIFF_ASYNC_RETRIES: '0' });
    stop = onCleanup(() => stopPlatform(started));
    await waitForFullPool(started, 120_000);
    return started;
  });
  if (!platform) return;
  const noisy = await phase(
    `noisy neighbour: ${N.victimCalls} calls to a no-op alone, then beside a fork bomb and a memory bomb, then a CPU burner too (${N.attackersInFlight} async calls each)`,
    () => noisyNeighbour(platform, N.victimCalls, N.attackersInFlight),
  );
  if (noisy) results.noisyNeighbour = noisy;
  progress("stopping the noisy neighbours' platform");
  await stop?.();
}

/** The Lambda Invoke API beside the native invoke route (bench/lambda-invoke.ts). */
async function lambdaInvokePhase(platform: Platform): Promise<void> {
  const cost = await phase(`the Lambda Invoke API: SigV4-signed warm calls beside native invoke calls (${N.warmCalls} each, interleaved)`, () =>
    lambdaInvokeCost(platform, N.warmCalls),
  );
  if (cost) results.lambdaInvoke = cost;
}

async function tenancyPlatform(): Promise<void> {
  let stop: (() => Promise<void>) | undefined;
  const platform = await phase('platform for the tenant and role check (pool of 2): starting', async () => {
    const started = await startBenchPlatform({ SKIFF_POOL_SIZE: '2' });
    stop = onCleanup(() => stopPlatform(started));
    await waitForFullPool(started, 120_000);
    return started;
  });
  if (!platform) return;
  const keyed = await phase(`the tenant and role check: warm calls with a key beside calls without (${N.warmCalls} each, interleaved)`, () =>
    keyCheckCost(platform, N.warmCalls),
  );
  if (keyed) results.keyCheck = keyed;
  await lambdaInvokePhase(platform);
  progress('stopping the platform');
  await stop?.();
}

async function densityRun(target: number): Promise<void> {
  let stop: (() => Promise<void>) | undefined;
  const platform = await phase(`platform for ${target} instances: starting`, async () => {
    const headroom = String(target + 64);
    const started = await startBenchPlatform({
      SKIFF_POOL_SIZE: '0',
      SKIFF_WORKER_CAPACITY_MB: String(target * 64 + 4096),
      SKIFF_WORKER_CONCURRENCY: headroom,
      SKIFF_SCHEDULER_CONCURRENCY: headroom,
      SKIFF_MAX_PENDING_PER_FUNCTION: headroom,
      SKIFF_QUEUE_WAIT_MS: '900000',
      SKIFF_IDLE_TIMEOUT_MS: '3600000',
      // One tenant holds them all: its quotas must not be what stops the count.
      SKIFF_TENANT_MAX_INSTANCES: headroom,
      SKIFF_TENANT_MAX_MEMORY_MB: String(target * 64 + 4096),
    });
    stop = onCleanup(() => stopPlatform(started));
    return started;
  });
  if (!platform) return;
  const held: Density | undefined = await phase(
    `density: ${target} concurrent calls to one function (memoryMb 64, concurrency 1), then ${target} more to the held instances`,
    () => holdIdle(platform, target, progress),
  );
  if (held) {
    results.density = held;
    progress(`  ${JSON.stringify(held)}`);
  }
  progress(`stopping the platform of ${target} instances`);
  await stop?.();
}

async function main(): Promise<void> {
  progress('starting Redis and PostgreSQL');
  const services = await startServices();
  onCleanup(async () => {
    const leftMounts = await mountPointsUnder([services.root]);
    if (leftMounts.length > 0) throw new Error(`mounts left behind, keeping ${services.root}: ${leftMounts.join(', ')}`);
    await rm(services.root, { recursive: true, force: true });
  });
  onCleanup(() => services.stop());
  if (densityTarget !== undefined) {
    await densityRun(densityTarget);
    return;
  }
  if (noisyOnly) {
    await noisyPlatform();
    return;
  }
  if (tenancyOnly) {
    await tenancyPlatform();
    return;
  }
  await perCallBaselines(services.root);
  await pooledPlatform();
  await unpooledPlatform();
  await imagePlatform(services.root);
  await noisyPlatform();
  const traced = await phase(
    `tracing overhead: warm throughput at ${N.inFlight} in flight, ${N.tracingMs / 1000} s, exported over OTLP/HTTP vs not (a child process each)`,
    () => tracingOverhead(N.inFlight, N.tracingMs),
  );
  if (traced) results.tracingOverhead = traced;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (error) {
  results.notes.push(`the run stopped early: ${(error as Error).message}`);
  console.error(`bench: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
} finally {
  progress('cleaning up');
  await cleanUp();
}
results.machine.loadavg.end = loadavg();
const busy = busyNote(results.machine.loadavg.start);
if (busy) results.notes.push(busy);
results.samples = {
  coldStarts: N.coldStarts,
  warmCalls: N.warmCalls,
  perCallBaseline: N.perCallBaseline,
  inFlight: N.inFlight,
  idleInstances: N.idleInstances,
  created: N.created,
  burst: N.burst,
  burstSleepMs: N.burstSleepMs,
  victimCalls: N.victimCalls,
  attackersInFlight: N.attackersInFlight,
  tracingMs: N.tracingMs,
  imagePulls: N.imagePulls,
};
// A `--density` run changes only the density figure of the last results (its own `at` says when).
// A `--noisy` run changes only the noisy-neighbour figure.
const written: Results =
  densityTarget !== undefined && previous?.at
    ? { ...(previous as Results), ...(results.density ? { density: results.density } : {}) }
    : noisyOnly && previous?.at
      ? { ...(previous as Results), ...(results.noisyNeighbour ? { noisyNeighbour: results.noisyNeighbour } : {}) }
      : tenancyOnly && previous?.at
        ? {
            ...(previous as Results),
            ...(results.keyCheck ? { keyCheck: results.keyCheck } : {}),
            ...(results.lambdaInvoke ? { lambdaInvoke: results.lambdaInvoke } : {}),
          }
        : results;
if (densityTarget !== undefined && !results.density)
  written.notes = [...written.notes, ...results.notes.filter((n) => n.startsWith('density') || n.startsWith('platform for'))];
await writeResults(RESULTS_FILE, written);
console.log(`\n${table(written)}\n\nwritten to ${RESULTS_FILE}`);
