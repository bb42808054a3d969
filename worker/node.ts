/**
 * Assembles a worker node from its parts; used by worker/main.ts and by the end-to-end tests,
 * which run real nodes in-process.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { availableParallelism, freemem, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Tracer } from '@opentelemetry/api';
import type { Config } from '../infra/config.js';
import { isSkiffError } from '../infra/errors.js';
import { openDatabase } from '../infra/db/database.js';
import { InvocationRecords } from '../infra/db/invocation-records.js';
import { LogStore } from '../infra/db/log-store.js';
import { RUNTIMES } from '../infra/functions/version.js';
import { CURRENT_TAG, runtimeRepository } from '../infra/images/names.js';
import { RegistryClient } from '../infra/registry/client.js';
import type { Logger } from '../infra/log.js';
import { keySpace } from '../infra/queue/names.js';
import { closeRedis, openRedis } from '../infra/queue/connections.js';
import { logErrors } from '../infra/outage-log.js';
import { FunctionStore } from '../infra/db/function-store.js';
import { FleetRegistry } from '../infra/fleet/registry.js';
import { openAsyncCalls } from '../infra/calls/async-calls.js';
import { WorkerAgent } from './agent.js';
import { WarmKeeper } from './instances/warm-keeper.js';
import { CodeCache, rootOf } from './code/code-cache.js';
import { ImageCache } from './images/image-cache.js';
import { LayerStore } from './images/layer-store.js';
import { InstanceSet } from './instances/instance-set.js';
import { removeEmptyParents } from './sandbox/cgroups.js';
import { assertReachableByContainers } from './sandbox/host-checks.js';
import { IdRanges } from './sandbox/id-ranges.js';
import { EgressNetwork } from './sandbox/egress-network.js';
import { removeLeftovers } from './sandbox/leftovers.js';
import { unmountTree } from './sandbox/mounts.js';
import { OciRuntime } from './sandbox/runc.js';
import { Launcher } from './process/launcher.js';
import { RuncSandboxFactory } from './sandbox/runc-sandbox.js';
import type { RuntimeImage, SandboxPool } from './sandbox/sandbox.js';
import { ReadySandboxPool } from './sandbox/sandbox-pool.js';
import { WorkerMetrics, serveMetrics, type MetricsServer } from './metrics.js';

export interface WorkerNode {
  agent: WorkerAgent;
  /** Resolves when an operator's drain has finished; the node should then stop. */
  drained: Promise<void>;
  instances: InstanceSet;
  pool: SandboxPool;
  images: ImageCache;
  /** Unmounts code no instance runs (after SKIFF_IMAGE_GRACE_MS) and removes layers over the disk
   *  budget that nothing uses; runs every 30 s by itself. Returns the removed layers. */
  collectImages(): Promise<string[]>;
  /** This node's Prometheus metrics; served over HTTP when SKIFF_WORKER_METRICS_PORT is not 0. */
  metrics: { registry: WorkerMetrics['registry']; server: MetricsServer | undefined };
  stop(): Promise<void>;
}

/** Memory limit of a pooled sandbox before specialization; raised or lowered to the function's. */
const POOL_SANDBOX_MB = 128;
/** Where Debian's containernetworking-plugins are. */
const CNI_PATH = '/usr/lib/cni';
/** Open files per container: below the worker's hard limit (20000 on the build machines). */
const NOFILE_LIMIT = 4096;

/**
 * `functionsPort`: the gateway's functions listener port when it is not the configured one (an
 * in-process test platform binds port 0 after starting its worker); by default
 * `config.gateway.functions.port`, the one host port egress functions may reach.
 */
export async function startWorker(
  config: Readonly<Config>,
  deps: { log: Logger; tracer: Tracer; functionsPort?: () => number | undefined },
): Promise<WorkerNode> {
  const { log } = deps;
  const w = config.worker;
  const home = join(config.stateDir, 'workers', w.id);
  const sandboxesDir = join(home, 'sandboxes');
  // Spawns the host commands (runc, mount, CNI, iptables): the worker does not fork for them.
  const launcher = new Launcher({ log });
  await launcher.start();
  const oci = new OciRuntime({ binary: w.runcPath, root: join(w.runDir, 'runc'), launcher });
  // Egress needs the CNI plugins; without them functions asking for it fail with a clear error.
  const egress = existsSync(join(CNI_PATH, 'bridge'))
    ? new EgressNetwork({
        workerId: w.id,
        cniPath: CNI_PATH,
        dataDir: join(w.runDir, 'cni'),
        log,
        launcher,
        functions: { host: config.gateway.functions.host, port: deps.functionsPort ?? (() => config.gateway.functions.port) },
      })
    : undefined;
  if (!egress) log.warn({ cniPath: CNI_PATH }, 'CNI plugins not found: no network egress for functions');
  const factory = new RuncSandboxFactory({
    egress,
    oci,
    launcher,
    hostCpus: availableParallelism(),
    workerId: w.id,
    sandboxesDir,
    socketsDir: join(w.runDir, 'sockets'),
    idRanges: new IdRanges(w.uidBase),
    pidsLimit: w.pidsLimit,
    cpuFloorCores: w.cpuFloorCores,
    tmpSizeMb: w.tmpSizeMb,
    noFileLimit: NOFILE_LIMIT,
    logLimitBytes: w.logLimitBytes,
    // The runtime refuses a larger result itself; the worker stops a sandbox that sends one anyway.
    maxResultBytes: config.gateway.resultLimitBytes,
    maxStreamBytes: config.gateway.streamLimitBytes,
    logLineLimitBytes: w.logLineLimitBytes,
    bootTimeoutMs: w.bootTimeoutMs,
    maxConcurrentCreates: w.maxConcurrentCreates,
    log,
  });
  await removeLeftovers(oci, launcher, [sandboxesDir, join(w.runDir, 'sockets')], factory.cgroupParent(), log);
  // A previous run of this worker may have left egress rules, leases and netns handles (a crash).
  await egress?.removeLeftovers();
  // Code directories stay (a cache), but their mounts from a previous run go.
  await unmountTree(launcher, join(home, 'code'));
  await mkdir(sandboxesDir, { recursive: true, mode: 0o755 });
  assertReachableByContainers(sandboxesDir);

  const db = openDatabase(config.databaseUrl, config.databaseSchema, 4, { timeouts: config.databaseClient, log, component: 'worker' });
  // All wait for Redis while it is away: a call running then is answered when it is back.
  const redisDeps = { log, component: `worker-${w.id}` };
  const redis = openRedis(config.redisUrl, 'consumer', config.redisClient, redisDeps);
  const subscriber = openRedis(config.redisUrl, 'subscriber', config.redisClient, redisDeps);
  const queueConnection = openRedis(config.redisUrl, 'blocking', config.redisClient, redisDeps);
  // Reads of the calls gateways send straight to this node's warm instances block on their own.
  const straightConnection = openRedis(config.redisUrl, 'blocking', config.redisClient, { log, component: `worker-${w.id}-straight` });
  const records = new InvocationRecords(db, (error) => log.error({ err: error }, 'could not record invocations'));
  // Layers are shared by every worker of the host; manifests, configs and code mounts are per worker.
  const imageCache = new ImageCache({
    registry: new RegistryClient(config.registry),
    layers: new LayerStore(join(config.imagesDir, 'layers'), launcher),
    dir: join(home, 'images'),
    budgetBytes: w.imageCacheMb * 1024 * 1024,
    log,
    // The metrics are made after the pool, which needs the runtime images: pulls report through this.
    observer: { pulled: (seconds, bytes) => onPull(seconds, bytes) },
  });
  let onPull = (seconds: number, bytes: number): void => void log.debug({ seconds, bytes }, 'image pull before metrics');
  const code = new CodeCache(imageCache, join(home, 'code'), launcher);
  const images = await runtimeImages(imageCache, log);
  // The pool only fills while the worker and the host have memory to spare (instances are served first).
  let freeMb = (): number => w.capacityMb;
  // Sandboxes are pre-created only for the runtimes SKIFF_POOL_RUNTIMES names; the others' are made per call.
  const pooled = new Map([...images].filter(([runtime]) => (w.pool.runtimes as readonly string[]).includes(runtime)));
  const pool = new ReadySandboxPool(factory, pooled, {
    sizing: w.pool,
    concurrency: Math.min(w.pool.refillConcurrency, w.maxConcurrentCreates),
    memoryMb: POOL_SANDBOX_MB,
    footprintMb: w.pool.footprintMb,
    freeMb: () => freeMb(),
    hostSpareMb: hostSpareMb(),
    log,
  });
  const keys = keySpace(config.keyPrefix);
  const logs = new LogStore(db, { redis, channel: keys.logs }, (error) => log.error({ err: error }, 'could not store function logs'));
  const instances = new InstanceSet(pool, factory, images, code, {
    capacityMb: w.capacityMb,
    onOutput: (fn, sandboxId, line) => logs.append({ functionName: fn.name, functionVersion: fn.version, sandboxId, ...line }),
    log,
  });
  freeMb = () => instances.freeMb();
  instances.start();
  pool.start();
  const metrics = new WorkerMetrics(w.id, { capacityMb: w.capacityMb, instances, pool, imageCacheBytes: () => imageCache.bytes() });
  metrics.measure(factory);
  onPull = (seconds, bytes) => metrics.imagePulled(seconds, bytes);
  const fleet = new FleetRegistry(redis, keys, config.scheduler.heartbeatTtlMs);
  const warmKeeper = new WarmKeeper({
    selfId: w.id,
    instances,
    functions: new FunctionStore(db),
    activeNodes: async () => (await fleet.live()).filter((b) => b.state === 'active').map((b) => b.id),
    everyMs: w.warmCheckEveryMs,
    preloadOnDeploy: w.preloadOnDeploy,
    log,
  });
  const asyncCalls = openAsyncCalls(config, redis, records, db);
  logErrors(asyncCalls.queue, log, 'invocation queue (retries)');
  const agent = new WorkerAgent({
    images: () => imageCache.ready(),
    prefetch: (image) =>
      void code.prepareImage(image).catch((error: unknown) => log.warn({ err: error, image }, 'could not prepare a deployed image ahead of its calls')),
    asyncCalls,
    id: w.id,
    keys,
    redis,
    subscriber,
    queueConnection,
    straightConnection,
    concurrency: w.concurrency,
    capacityMb: w.capacityMb,
    heartbeatMs: w.heartbeatMs,
    heartbeatTtlMs: config.scheduler.heartbeatTtlMs,
    instances,
    pool,
    warmKeeper,
    records,
    recordResultLimitBytes: config.gateway.asyncResultLimitBytes,
    tracer: deps.tracer,
    metrics,
    log,
  });
  await agent.start();
  warmKeeper.start();
  // Code of versions no longer run is unmounted after a grace time; then layers over the disk
  // budget that nothing mounts are removed.
  const collectImages = async (): Promise<string[]> => {
    await code.releaseUnused(w.imageGraceMs, new Set(instances.list().map((i) => i.fn.image)));
    return imageCache.collect();
  };
  const imageGc = setInterval(() => {
    void collectImages().catch((error: unknown) => log.error({ err: error }, 'image cache collection failed'));
  }, w.imageGcEveryMs);
  imageGc.unref();
  const metricsServer = await startMetricsServer(metrics, config, log);

  return {
    agent,
    drained: agent.drained,
    instances,
    pool,
    images: imageCache,
    collectImages,
    metrics: { registry: metrics.registry, server: metricsServer },
    async stop() {
      clearInterval(imageGc);
      await metricsServer?.close();
      await warmKeeper.stop();
      await agent.stop();
      await pool.shutdown();
      await instances.shutdown();
      // Sandboxes neither pooled nor serving (a teardown under way, one being made) go too.
      await factory.destroyAll('worker stopping');
      await egress?.tearDown();
      await code.close();
      await logs.flush();
      await removeEmptyParents([factory.cgroupParent(), '/skiff']);
      await asyncCalls.close();
      await Promise.all([closeRedis(redis), closeRedis(subscriber), closeRedis(queueConnection), closeRedis(straightConnection)]);
      await db.end();
      await launcher.stop();
    },
  };
}

/**
 * The host memory the pool may still take, in MiB: the host's available memory (os.freemem is
 * MemAvailable on Linux) less a tenth of it all, kept for everything else. Read at most every
 * 250 ms: the pool asks on every take, and the answer moves slowly.
 */
function hostSpareMb(): () => number {
  const keptMb = totalmem() / 1024 / 1024 / 10;
  let readAt = 0;
  let spare = 0;
  return () => {
    const now = Date.now();
    if (now - readAt >= 250) [readAt, spare] = [now, freemem() / 1024 / 1024 - keptMb];
    return spare;
  };
}

/**
 * The runtime images this worker pools sandboxes of: each runtime's current base image, pulled if
 * missing. A runtime the registry does not have is not pooled (its functions still run, from their
 * own images' layers); an unreachable registry stops the start.
 */
async function runtimeImages(cache: ImageCache, log: Logger): Promise<Map<string, RuntimeImage>> {
  const images = new Map<string, RuntimeImage>();
  for (const runtime of RUNTIMES) {
    const reference = `${runtimeRepository(runtime)}:${CURRENT_TAG}`;
    try {
      images.set(runtime, rootOf(await cache.image(reference), cache, true));
    } catch (error) {
      if (!isSkiffError(error, 'ImageNotFound')) throw error;
      log.warn({ runtime, image: reference }, `no ${runtime} base image in the registry: ${runtime} sandboxes are not pooled on this worker`);
    }
  }
  return images;
}

/**
 * Serves the node's metrics when a port is configured. A port already taken (another worker on
 * this host, say) is logged and does not stop the node: its metrics stay readable in-process.
 */
async function startMetricsServer(metrics: WorkerMetrics, config: Readonly<Config>, log: Logger): Promise<MetricsServer | undefined> {
  const { host, port } = config.workerMetrics;
  if (port === 0) return undefined;
  try {
    const server = await serveMetrics(metrics.registry, host, port, log);
    log.info({ url: server.url }, 'worker metrics served');
    return server;
  } catch (error) {
    log.error({ err: error, host, port }, 'could not serve worker metrics (SKIFF_WORKER_METRICS_HOST/PORT); running without');
    return undefined;
  }
}
