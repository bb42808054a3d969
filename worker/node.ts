/**
 * Assembles a worker node from its parts; used by worker/main.ts and by the end-to-end tests,
 * which run real nodes in-process.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { Tracer } from '@opentelemetry/api';
import type { Config } from '../infra/config.js';
import { openDatabase } from '../infra/db/database.js';
import { InvocationRecords } from '../infra/db/invocation-records.js';
import { LogStore } from '../infra/db/log-store.js';
import { ensureNodeImage } from '../infra/images/nodejs-rootfs.js';
import { ensurePythonImage, pythonAvailable, PYTHON_BINARY, PYTHON_COMMAND, PYTHON_RUNTIME, PYTHON_RUNTIME_DIR } from '../infra/images/python-rootfs.js';
import type { Logger } from '../infra/log.js';
import { keySpace } from '../infra/queue/names.js';
import { FunctionStore } from '../infra/db/function-store.js';
import type { WorkerHeartbeat } from '../infra/queue/jobs.js';
import { openAsyncCalls } from '../infra/queue/async-calls.js';
import { WorkerAgent } from './agent.js';
import { WarmKeeper } from './instances/warm-keeper.js';
import { CodeCache } from './code/code-cache.js';
import { InstanceSet } from './instances/instance-set.js';
import { removeEmptyParents } from './sandbox/cgroups.js';
import { assertReachableByContainers } from './sandbox/host-checks.js';
import { IdRanges } from './sandbox/id-ranges.js';
import { EgressNetwork } from './sandbox/egress-network.js';
import { removeLeftovers } from './sandbox/leftovers.js';
import { unmountTree } from './sandbox/mounts.js';
import { OciRuntime } from './sandbox/runc.js';
import { SandboxFactory, type RuntimeImage } from './sandbox/runc-sandbox.js';
import { SandboxPool } from './sandbox/sandbox-pool.js';
import { WorkerMetrics, serveMetrics, type MetricsServer } from './metrics.js';

export interface WorkerNode {
  agent: WorkerAgent;
  /** Resolves when an operator's drain has finished; the node should then stop. */
  drained: Promise<void>;
  instances: InstanceSet;
  pool: SandboxPool;
  /** This node's Prometheus metrics; served over HTTP when SKIFF_WORKER_METRICS_PORT is not 0. */
  metrics: { registry: WorkerMetrics['registry']; server: MetricsServer | undefined };
  stop(): Promise<void>;
}

/** Compiled runtime/ directory (bootstraps and protocol), packaged into the runtime images. */
const RUNTIME_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'runtime');
/** Memory limit of a pooled sandbox before specialization; raised or lowered to the function's. */
const POOL_SANDBOX_MB = 128;
/** Where Debian's containernetworking-plugins are. */
const CNI_PATH = '/usr/lib/cni';
/** Open files per container: under this host's hard limit (DESIGN.md). */
const NOFILE_LIMIT = 4096;

export async function startWorker(config: Readonly<Config>, deps: { log: Logger; tracer: Tracer }): Promise<WorkerNode> {
  const { log } = deps;
  const w = config.worker;
  const home = join(config.stateDir, 'workers', w.id);
  const sandboxesDir = join(home, 'sandboxes');
  const oci = new OciRuntime({ binary: w.runcPath, root: join(w.runDir, 'runc') });
  // Egress needs the CNI plugins; without them functions asking for it fail with a clear error.
  const egress = existsSync(join(CNI_PATH, 'bridge'))
    ? new EgressNetwork({ workerId: w.id, cniPath: CNI_PATH, dataDir: join(w.runDir, 'cni'), log })
    : undefined;
  if (!egress) log.warn({ cniPath: CNI_PATH }, 'CNI plugins not found: no network egress for functions');
  const factory = new SandboxFactory({
    egress,
    oci,
    workerId: w.id,
    sandboxesDir,
    socketsDir: join(w.runDir, 'sockets'),
    idRanges: new IdRanges(w.uidBase),
    pidsLimit: w.pidsLimit,
    tmpSizeMb: w.tmpSizeMb,
    noFileLimit: NOFILE_LIMIT,
    logLimitBytes: w.logLimitBytes,
    bootTimeoutMs: 10_000,
    log,
  });
  await removeLeftovers(oci, [sandboxesDir, join(w.runDir, 'sockets')], factory.cgroupParent(), log);
  // Code directories stay (a cache), but their mounts from a previous run go.
  await unmountTree(join(home, 'code'));
  await mkdir(sandboxesDir, { recursive: true, mode: 0o755 });
  assertReachableByContainers(sandboxesDir);

  const node = await ensureNodeImage({ nodeBinary: process.execPath, runtimeDir: RUNTIME_DIR, imagesDir: config.imagesDir });
  const images = new Map<string, RuntimeImage>([
    ['nodejs20', { runtime: 'nodejs20', rootfs: node.rootfs, command: ['/usr/bin/node', '--v8-pool-size=1', '/opt/skiff/runtime/nodejs/bootstrap.js'] }],
  ]);
  // Python is offered only where Debian's interpreter is installed (infra/system/prepare.sh does it).
  if (!(await pythonAvailable())) {
    log.warn({ runtime: PYTHON_RUNTIME, binary: PYTHON_BINARY }, `${PYTHON_BINARY} not found: this worker does not offer ${PYTHON_RUNTIME}`);
  } else {
    try {
      const python = await ensurePythonImage({ pythonBinary: PYTHON_BINARY, runtimeDir: PYTHON_RUNTIME_DIR, imagesDir: config.imagesDir });
      images.set(PYTHON_RUNTIME, { runtime: PYTHON_RUNTIME, rootfs: python.rootfs, command: PYTHON_COMMAND });
    } catch (error) {
      log.error({ err: error, runtime: PYTHON_RUNTIME }, `could not build the ${PYTHON_RUNTIME} image: this worker does not offer it`);
    }
  }

  const db = openDatabase(config.databaseUrl, config.databaseSchema, 4);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const subscriber = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const queueConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const records = new InvocationRecords(db, (error) => log.error({ err: error }, 'could not record invocations'));
  const code = new CodeCache(db, join(home, 'code'), {
    maxEntries: config.gateway.maxZipEntries,
    maxUnpackedBytes: config.gateway.maxUnpackedBytes,
  });
  // The pool only fills while the worker has memory to spare (instances are served first).
  let freeMb = (): number => w.capacityMb;
  const pool = new SandboxPool(factory, images, { target: w.poolSize, memoryMb: POOL_SANDBOX_MB, freeMb: () => freeMb(), log });
  const keys = keySpace(config.keyPrefix);
  const logs = new LogStore(db, { redis, channel: keys.logs }, (error) => log.error({ err: error }, 'could not store function logs'));
  const instances = new InstanceSet(pool, factory, images, code, {
    capacityMb: w.capacityMb,
    onOutput: (fn, sandboxId, line) => logs.append({ functionName: fn.name, functionVersion: fn.version, sandboxId, ...line }),
    log,
  });
  freeMb = () => instances.freeMb();
  instances.start();
  const metrics = new WorkerMetrics(w.id, { capacityMb: w.capacityMb, instances, pool });
  metrics.measure(factory);
  const warmKeeper = new WarmKeeper({
    selfId: w.id,
    instances,
    functions: new FunctionStore(db),
    activeNodes: async () => {
      const beats = Object.values(await redis.hgetall(keys.workers)).map((json) => JSON.parse(json) as WorkerHeartbeat);
      return beats.filter((b) => b.state === 'active' && Date.now() - b.at <= config.scheduler.heartbeatTtlMs).map((b) => b.id);
    },
    everyMs: 2000,
    log,
  });
  const asyncCalls = openAsyncCalls(config, redis, records, db);
  const agent = new WorkerAgent({
    asyncCalls,
    id: w.id,
    keys,
    redis,
    subscriber,
    queueConnection,
    concurrency: w.concurrency,
    capacityMb: w.capacityMb,
    heartbeatMs: w.heartbeatMs,
    heartbeatTtlMs: config.scheduler.heartbeatTtlMs,
    instances,
    pool,
    warmKeeper,
    records,
    tracer: deps.tracer,
    metrics,
    log,
  });
  await agent.start();
  warmKeeper.start();
  const metricsServer = await startMetricsServer(metrics, config, log);

  return {
    agent,
    drained: agent.drained,
    instances,
    pool,
    metrics: { registry: metrics.registry, server: metricsServer },
    async stop() {
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
      await Promise.all([redis.quit(), subscriber.quit(), queueConnection.quit()]);
      await db.end();
    },
  };
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
