/**
 * Assembles a worker node from its parts; used by worker/main.ts and by the end-to-end tests,
 * which run real nodes in-process.
 */
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
import { removeLeftovers } from './sandbox/leftovers.js';
import { unmountTree } from './sandbox/mounts.js';
import { OciRuntime } from './sandbox/runc.js';
import { SandboxFactory, type RuntimeImage } from './sandbox/runc-sandbox.js';
import { SandboxPool } from './sandbox/sandbox-pool.js';

export interface WorkerNode {
  agent: WorkerAgent;
  /** Resolves when an operator's drain has finished; the node should then stop. */
  drained: Promise<void>;
  instances: InstanceSet;
  pool: SandboxPool;
  stop(): Promise<void>;
}

/** Compiled runtime/ directory (bootstraps and protocol), packaged into the runtime images. */
const RUNTIME_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'runtime');
/** Memory limit of a pooled sandbox before specialization; raised or lowered to the function's. */
const POOL_SANDBOX_MB = 128;
/** Open files per container: under this host's hard limit (DESIGN.md). */
const NOFILE_LIMIT = 4096;

export async function startWorker(config: Readonly<Config>, deps: { log: Logger; tracer: Tracer }): Promise<WorkerNode> {
  const { log } = deps;
  const w = config.worker;
  const home = join(config.stateDir, 'workers', w.id);
  const sandboxesDir = join(home, 'sandboxes');
  const oci = new OciRuntime({ binary: w.runcPath, root: join(w.runDir, 'runc') });
  const factory = new SandboxFactory({
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
    log,
  });
  await agent.start();
  warmKeeper.start();

  return {
    agent,
    drained: agent.drained,
    instances,
    pool,
    async stop() {
      await warmKeeper.stop();
      await agent.stop();
      await pool.shutdown();
      await instances.shutdown();
      // Sandboxes neither pooled nor serving (a teardown under way, one being made) go too.
      await factory.destroyAll('worker stopping');
      await code.close();
      await logs.flush();
      await removeEmptyParents([factory.cgroupParent(), '/skiff']);
      await asyncCalls.close();
      await Promise.all([redis.quit(), subscriber.quit(), queueConnection.quit()]);
      await db.end();
    },
  };
}
